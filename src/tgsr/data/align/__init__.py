"""Word-level timestamps for real speech: one module per aligner backend.

``get_aligner(backend, model=None)`` returns an :class:`Aligner` with
``align(audio_16k, transcript=None) -> list[Word]``, ``align_detailed(...) -> Alignment``
(timed words plus the transcript words that could not be timed) and ``transcribe(audio_16k) -> str``.

Backends:
- ``whisper-timestamped``: the paper's tool (openai-whisper + cross-attention DTW);
- ``faster-whisper``: CTranslate2 Whisper with ``word_timestamps=True``;
- ``pocketsphinx``: forced alignment of a known transcript (fast and precise).
"""

from __future__ import annotations

from .base import (
    BACKENDS,
    DEFAULT_MODEL,
    OFFLINE_MODELS,
    Aligner,
    Alignment,
    AlignmentError,
    ModelNotFound,
    resolve_ct2_model,
)


def get_aligner(backend: str, model: str | None = None, **options) -> Aligner:
    """An aligner by backend name; ``model`` is a path or a model name (see each backend)."""
    if backend == "whisper-timestamped":
        from .whisper_timestamped import WhisperTimestampedAligner

        return WhisperTimestampedAligner(model, **options)
    if backend == "faster-whisper":
        from .faster_whisper import FasterWhisperAligner

        return FasterWhisperAligner(model, **options)
    if backend == "pocketsphinx":
        from .pocketsphinx import PocketsphinxAligner

        return PocketsphinxAligner(model, **options)
    raise AlignmentError(f"unknown aligner backend {backend!r}; expected one of {', '.join(BACKENDS)}")


__all__ = ["get_aligner", "Aligner", "Alignment", "AlignmentError", "ModelNotFound", "BACKENDS", "OFFLINE_MODELS",
           "DEFAULT_MODEL", "resolve_ct2_model"]
