"""Session fixtures for the alignment tests: short synthetic speech with exact word times."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

SENTENCES = (
    "I think we should meet at the station tomorrow morning.",
    "Please bring the green umbrella and two sandwiches.",
)


@dataclass
class SpeechClip:
    text: str
    audio: np.ndarray          # 16 kHz mono float32
    words: list                # tgsr.records.Word with exact synthesis timings


def _synthesize(text: str) -> SpeechClip:
    from tgsr.data.tts import Voice, get_engine

    audio, words = get_engine("espeak").synthesize(text, Voice("espeak", "en-us+m1", accent="en-us", variant="m1"))
    return SpeechClip(text=text, audio=audio, words=words)


@pytest.fixture(scope="session")
def speech_clips() -> list[SpeechClip]:
    """Two ~3 s espeak sentences (the synthetic corpus' engine), with exact word timings."""
    pytest.importorskip("espeakng_loader")
    return [_synthesize(t) for t in SENTENCES]
