"""Shared driver for Whisper backends: optional VAD chunking, offsets, clean-up."""

from __future__ import annotations

import numpy as np

from ...records import Word
from .base import SAMPLE_RATE, Aligner, check_audio, finalize_words


class ChunkedWhisperAligner(Aligner):
    """Runs ``_align_chunk`` on the whole clip, or on VAD speech chunks of long clips.

    ``vad``: ``"auto"`` uses VAD only on clips longer than ``vad_min_seconds``, ``True``
    always, ``False`` never. Transcripts are not used: Whisper recognises the words.
    """

    def __init__(self, *, vad: bool | str = "auto", vad_min_seconds: float = 30.0, max_chunk: float = 28.0,
                 language: str | None = None):
        self.vad = vad
        self.max_chunk = max_chunk
        self.vad_min_seconds = vad_min_seconds
        self.language = language

    def _align_chunk(self, audio: np.ndarray) -> list[Word]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _use_vad(self, duration: float) -> bool:
        return self.vad is True or (self.vad == "auto" and duration > self.vad_min_seconds)

    def align(self, audio_16k: np.ndarray, transcript: str | None = None) -> list[Word]:
        audio = check_audio(audio_16k)
        duration = audio.size / SAMPLE_RATE
        if not self._use_vad(duration):
            return finalize_words(self._align_chunk(audio), duration)
        from .vad import speech_chunks

        words: list[Word] = []
        for start, end in speech_chunks(audio, self.max_chunk):
            piece = audio[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)]
            if piece.size < SAMPLE_RATE // 10:
                continue
            for w in self._align_chunk(piece):
                words.append(Word(text=w.text, start=w.start + start, end=w.end + start, confidence=w.confidence))
        return finalize_words(words, duration)

    def transcribe(self, audio_16k: np.ndarray) -> str:
        return " ".join(w.text for w in self.align(audio_16k))
