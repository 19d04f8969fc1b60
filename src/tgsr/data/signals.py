"""Synthetic speech-like clips for benchmarks: audio that is never silence and costs nothing to make.

A voiced source (five harmonics over a slowly moving pitch, 90-240 Hz), a syllable-rate
envelope (3-5 Hz) and a little noise: the feature extractor and the audio encoder see
speech-shaped input, so nothing is timed on zeros. Not speech: for training or evaluation
data use ``tgsr data synth``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000


def speechlike(seconds: float, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    f0 = rng.uniform(90, 240) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(3, 5) * t + rng.uniform(0, 6)), 0, None)
    return (0.2 * voiced * envelope + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def write_speechlike_clips(folder: str | Path, n: int, seconds: float, seed: int = 0) -> list[str]:
    """``n`` distinct clips ``clip_0000.wav`` ... in ``folder``; their paths."""
    from ..audio import save_audio

    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"clip_{i:04d}.wav"
        save_audio(path, speechlike(seconds, rng))
        paths.append(str(path))
    return paths


__all__ = ["speechlike", "write_speechlike_clips"]
