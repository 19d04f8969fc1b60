"""The voice configurations of the corpus and their train/test split.

A configuration is an engine voice (accent x variant) with a speaking-rate level and a pitch
setting. Every configuration belongs to one of four voice types (``lexicon.VOICE_TYPES``:
deep male ~65-85 Hz, light male ~105-135 Hz, low female ~150-210 Hz, high female ~240-330 Hz
median F0 with espeak; the female types also differ in timbre), and to one of four rate levels
separated by a factor of about 1.3, so that "who speaks fastest" and "who has the highest
voice" have clear acoustic answers (questions are asked only when the measured contrast is
clear, see ``questions``).

Each configuration is assigned to exactly one split, so test clips use voices that training
never heard (the attributes themselves, e.g. an accent, are shared).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tts import Voice

RATE_LEVELS = (0.75, 1.0, 1.3, 1.65)
TEST_FRACTION = 0.25


@dataclass(frozen=True)
class VoiceConfig:
    voice: Voice
    vtype: int        # index into lexicon.VOICE_TYPES
    rate_level: int   # index into RATE_LEVELS


def engine_configs(engine) -> list[VoiceConfig]:
    """Every configuration an engine offers, in a stable order.

    ``engine.voice_types(base)`` says which voice types a base voice can realise and with
    which pitch settings.
    """
    out = []
    for base in engine.voices():
        for vtype, pitches in engine.voice_types(base):
            for pitch in pitches:
                for level, rate in enumerate(RATE_LEVELS):
                    v = Voice(base.engine, base.name, accent=base.accent, variant=base.variant,
                              rate=rate, pitch=pitch, sex=base.sex)
                    out.append(VoiceConfig(v, vtype, level))
    return out


def split_configs(configs: list[VoiceConfig], seed: int) -> dict[str, list[VoiceConfig]]:
    """Partition configurations into train and test, stratified by (engine, type, rate level)."""
    groups: dict[tuple, list[VoiceConfig]] = {}
    for c in configs:
        groups.setdefault((c.voice.engine, c.vtype, c.rate_level), []).append(c)
    out: dict[str, list[VoiceConfig]] = {"train": [], "test": []}
    for key in sorted(groups):
        members = sorted(groups[key], key=lambda c: c.voice.key)
        rng = np.random.default_rng([seed, 7919, *[ord(ch) for ch in key[0]], key[1], key[2]])
        order = rng.permutation(len(members))
        n_test = max(1, int(round(TEST_FRACTION * len(members)))) if len(members) > 1 else 0
        test_idx = set(int(i) for i in order[:n_test])
        for i, c in enumerate(members):
            (out["test"] if i in test_idx else out["train"]).append(c)
    return out


__all__ = ["RATE_LEVELS", "VoiceConfig", "engine_configs", "split_configs"]
