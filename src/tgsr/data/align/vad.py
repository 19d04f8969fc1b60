"""Speech segments from the ``silero-vad`` package (its model ships inside the wheel).

Long recordings are cut into speech chunks of at most ``max_chunk`` seconds before a
Whisper backend sees them: Whisper decodes 30 s windows, and long silences or music make
it hallucinate text and timings. Chunks start and end in non-speech where possible.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np

from .base import SAMPLE_RATE, AlignmentError

_MODEL = None
_LOCK = threading.Lock()


def _model():
    global _MODEL
    if _MODEL is None:
        try:
            from silero_vad import load_silero_vad
        except ImportError:
            raise AlignmentError("VAD needs the silero-vad package (pip install tgsr[align])") from None
        with warnings.catch_warnings():  # the package uses a deprecated importlib.resources call
            warnings.simplefilter("ignore", DeprecationWarning)
            _MODEL = load_silero_vad(onnx=True)
    return _MODEL


def speech_segments(audio_16k: np.ndarray, *, threshold: float = 0.5, min_silence: float = 0.3,
                    pad: float = 0.1) -> list[tuple[float, float]]:
    """(start, end) seconds of the speech regions in ``audio_16k``."""
    import torch
    from silero_vad import get_speech_timestamps

    with _LOCK:
        stamps = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(audio_16k, dtype=np.float32)),
                                       _model(), threshold=threshold, sampling_rate=SAMPLE_RATE,
                                       min_silence_duration_ms=int(min_silence * 1000),
                                       speech_pad_ms=int(pad * 1000))
    return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]


def merge_into_chunks(segments: list[tuple[float, float]], max_chunk: float = 28.0) -> list[tuple[float, float]]:
    """Group consecutive speech segments into chunks no longer than ``max_chunk`` seconds.

    A single segment longer than ``max_chunk`` is split into equal parts (Whisper would
    otherwise cut it at 30 s anyway, mid-word).
    """
    pieces: list[tuple[float, float]] = []
    for s, e in segments:
        n = max(1, int(np.ceil((e - s) / max_chunk)))
        step = (e - s) / n
        pieces += [(s + i * step, s + (i + 1) * step) for i in range(n)]
    chunks: list[tuple[float, float]] = []
    for s, e in pieces:
        if chunks and e - chunks[-1][0] <= max_chunk:
            chunks[-1] = (chunks[-1][0], e)
        else:
            chunks.append((s, e))
    return chunks


def speech_chunks(audio_16k: np.ndarray, max_chunk: float = 28.0) -> list[tuple[float, float]]:
    return merge_into_chunks(speech_segments(audio_16k), max_chunk)


__all__ = ["speech_segments", "merge_into_chunks", "speech_chunks"]
