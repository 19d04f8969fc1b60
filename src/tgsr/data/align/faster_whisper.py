"""faster-whisper (CTranslate2) recognition with word timestamps.

Model: a faster-whisper folder, or ``tiny.en`` / ``base`` from the offline PyPI weight
packages. ``compute_type="int8"`` is the fast CPU default. Decoding uses temperature 0
only (no sampling fallback), so reruns and resumed runs give the same words.
"""

from __future__ import annotations

import numpy as np

from ...records import Word
from ._chunked import ChunkedWhisperAligner
from .base import AlignmentError, describe_model, resolve_ct2_model


class FasterWhisperAligner(ChunkedWhisperAligner):
    backend = "faster-whisper"

    def __init__(self, model: str | None = None, *, compute_type: str = "int8", beam_size: int = 5,
                 cpu_threads: int = 1, **kwargs):
        super().__init__(**kwargs)
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise AlignmentError("the faster-whisper backend needs the faster-whisper package "
                                 "(pip install tgsr[align])") from None
        path = resolve_ct2_model(model)
        self.model_name = describe_model(model)
        self.beam_size = beam_size
        self._model = WhisperModel(str(path), device="cpu", compute_type=compute_type, cpu_threads=cpu_threads)
        if self.language is None and not self._model.model.is_multilingual:
            self.language = "en"

    def _align_chunk(self, audio: np.ndarray) -> list[Word]:
        segments, _ = self._model.transcribe(audio.astype(np.float32), language=self.language or "en",
                                             beam_size=self.beam_size, word_timestamps=True, vad_filter=False,
                                             condition_on_previous_text=False, temperature=0.0)
        out = []
        for seg in segments:  # a generator: decoding happens here
            for w in seg.words or []:
                out.append(Word(text=w.word, start=float(w.start), end=float(w.end), confidence=float(w.probability)))
        return out


__all__ = ["FasterWhisperAligner"]
