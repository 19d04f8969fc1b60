"""Measurements of synthesized speech used to decide paralinguistic answers: pitch and rate.

Answers such as "the highest-pitched speaker" are decided from what the audio contains, not
from the engine settings, so they stay right for every engine (and a question is only asked
when the contrast is clear).
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000


def frame_f0(audio: np.ndarray, sr: int = SAMPLE_RATE, *, fmin: float = 60.0, fmax: float = 400.0,
             frame: float = 0.04, hop: float = 0.02, threshold: float = 0.2) -> np.ndarray:
    """Fundamental frequency (Hz) of each voiced frame, YIN style.

    The cumulative-mean-normalised difference function (from the autocorrelation) is
    searched for its first dip below ``threshold``, which avoids the octave errors of a
    plain autocorrelation peak. Frames quieter than 1/10 of the loudest frame or without
    such a dip are unvoiced and left out.
    """
    n, h = int(frame * sr), int(hop * sr)
    if audio.size < n:
        return np.zeros(0, np.float32)
    idx = np.arange(n)[None, :] + h * np.arange(1 + (audio.size - n) // h)[:, None]
    frames = audio[idx].astype(np.float64)
    frames -= frames.mean(axis=1, keepdims=True)
    energy = (frames ** 2).sum(axis=1)
    frames = frames[energy > 0.1 * energy.max()]
    if frames.size == 0:
        return np.zeros(0, np.float32)
    ac = np.fft.irfft(np.abs(np.fft.rfft(frames, 2 * n, axis=1)) ** 2, axis=1)[:, :n]
    ac *= n / (n - np.arange(n))[None, :]  # unbiased: fewer overlapping samples at long lags
    diff = 2.0 * (ac[:, :1] - ac)  # squared difference at each lag, assuming stationarity
    cum = np.cumsum(diff[:, 1:], axis=1)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] * np.arange(1, n)[None, :] / np.maximum(cum, 1e-12)
    lo, hi = max(2, int(sr / fmax)), min(int(sr / fmin), n - 2)
    region = cmnd[:, lo:hi]
    below = region < threshold
    has = below.any(axis=1)
    first = np.argmax(below, axis=1)
    f0 = []
    for row, ok, k in zip(region, has, first):
        if not ok:
            continue
        while k + 1 < row.size and row[k + 1] < row[k]:  # walk down to the local minimum
            k += 1
        f0.append(sr / (lo + k))
    return np.asarray(f0, np.float32)


def median_f0(audio: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Median F0 over voiced frames (0.0 when nothing is voiced)."""
    f0 = frame_f0(audio, sr)
    return float(np.median(f0)) if f0.size else 0.0


def speaking_rate(texts: list[str], durations: list[float]) -> float:
    """Letters per second of speech: an engine-independent measure of how fast someone talks."""
    letters = sum(sum(ch.isalpha() for ch in t) for t in texts)
    seconds = sum(durations)
    return letters / seconds if seconds > 0 else 0.0


__all__ = ["frame_f0", "median_f0", "speaking_rate"]
