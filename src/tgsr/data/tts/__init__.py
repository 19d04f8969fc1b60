"""Text-to-speech engines that return audio together with exact word timings.

Every engine implements :class:`Engine`: ``synthesize(text, voice) -> (audio, words)`` where
``audio`` is 16 kHz mono float32 and ``words`` are :class:`tgsr.records.Word` with start and
end in seconds relative to the start of ``audio``, one per whitespace-separated token of
``text`` (punctuation stripped), in order. Timings come from the synthesizer itself, never
from an aligner, so they are exact up to the engine's own resolution.

Engines are optional except espeak-ng (bundled by the ``espeakng-loader`` package):
``available_engines()`` lists those that can run here and ``get_engine(name)`` raises
:class:`EngineUnavailable` with the install hint for one that cannot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ...errors import TgsrError
from ...records import Word

ENGINE_NAMES = ("espeak", "festival", "piper")

_TOKEN_STRIP = re.compile(r"^[^\w']+|[^\w']+$")


class EngineUnavailable(TgsrError):
    """A TTS engine that is not installed here (the message says how to install it)."""


class SynthesisError(TgsrError):
    """The engine ran but its output cannot be used (no audio, words it could not time ...)."""


@dataclass(frozen=True)
class Voice:
    """One speaking voice: engine voice id plus prosody settings.

    ``rate`` multiplies the engine's default speaking rate; ``pitch`` is a base-pitch level
    on espeak's 0-99 scale (50 = the voice's default), mapped by each engine as well as it
    can; ``sex`` ("male"/"female") is what the voice sounds like, used for descriptions.
    """

    engine: str
    name: str
    accent: str = ""
    variant: str = ""
    rate: float = 1.0
    pitch: int = 50
    sex: str = ""

    @property
    def key(self) -> str:
        """A stable identifier of the whole configuration (used to keep splits disjoint)."""
        return f"{self.engine}:{self.name}:rate={self.rate:.2f}:pitch={self.pitch:d}"

    def to_dict(self) -> dict:
        return {"engine": self.engine, "name": self.name, "accent": self.accent, "variant": self.variant,
                "rate": round(float(self.rate), 3), "pitch": int(self.pitch), "sex": self.sex, "key": self.key}


class Engine(Protocol):
    name: str

    def synthesize(self, text: str, voice: Voice) -> tuple[np.ndarray, list[Word]]: ...

    def voices(self) -> list[Voice]:
        """The base voices of this engine (rate and pitch at their defaults)."""
        ...

    def voice_types(self, base: Voice) -> list[tuple[int, tuple[int, ...]]]:
        """(voice type, pitch settings) pairs a base voice can realise (see ``data.voices``)."""
        ...


def tokenize(text: str) -> list[tuple[str, int, int]]:
    """Whitespace tokens of ``text`` as (word without surrounding punctuation, char start, char end).

    Tokens that are only punctuation are dropped. Offsets index into ``text``.
    """
    out = []
    for m in re.finditer(r"\S+", text):
        word = _TOKEN_STRIP.sub("", m.group())
        if word:
            out.append((word, m.start(), m.end()))
    return out


def get_engine(name: str) -> Engine:
    """An engine instance by name (``espeak``, ``festival``, ``piper``)."""
    if name == "espeak":
        from .espeak import EspeakEngine

        return EspeakEngine()
    if name == "festival":
        from .festival import FestivalEngine

        return FestivalEngine()
    if name == "piper":
        from .piper import PiperEngine

        return PiperEngine()
    raise EngineUnavailable(f"unknown TTS engine {name!r}; expected one of {', '.join(ENGINE_NAMES)}")


def available_engines() -> list[str]:
    """Names of the engines that can run on this machine."""
    names = []
    for name in ENGINE_NAMES:
        try:
            get_engine(name)
        except EngineUnavailable:
            continue
        names.append(name)
    return names


__all__ = ["ENGINE_NAMES", "Engine", "EngineUnavailable", "SynthesisError", "Voice", "tokenize",
           "get_engine", "available_engines"]
