"""Per-clip audio features, computed once and reused.

Run the way a stock processor runs it (every clip padded to the 30 s window) for each of the
G copies of a clip and again for every log-prob pass, log-mel extraction is about half of a
tiny Omni GRPO step; at the clip's own length it is still 15-20% (docs/training.md, Speed).
``FeatureCache`` keys features by the audio file (path, size, mtime), so a clip is read and
featurised once per run (LRU-bounded), and every row that uses the clip shares the same tensors.

With ``enabled=False`` nothing is kept: every request reads and featurises again. That is
the baseline ``benchmarks/bench_grpo_step.py`` compares against.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

from ..audio import load_audio


def clip_key(path: str) -> tuple:
    st = os.stat(path)
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns)


class FeatureCache:
    """Maps audio paths to the adapter's per-clip features; counts hits and misses."""

    def __init__(self, featurize_one: Callable[[np.ndarray], Any], *, enabled: bool = True,
                 max_clips: int = 4096):
        self._featurize_one = featurize_one
        self.enabled = enabled
        self.max_clips = max(0, int(max_clips))
        self._store: OrderedDict[tuple, Any] = OrderedDict()
        self._step: dict[tuple, Any] = {}
        self.hits = 0
        self.misses = 0

    def get(self, path: str) -> Any:
        if not self.enabled:
            self.misses += 1
            return self._featurize_one(load_audio(path))
        key = clip_key(path)
        if key in self._step:
            self.hits += 1
            return self._step[key]
        if key in self._store:
            self.hits += 1
            self._store.move_to_end(key)
            feats = self._store[key]
        else:
            self.misses += 1
            feats = self._featurize_one(load_audio(path))
            if self.max_clips:
                self._store[key] = feats
                while len(self._store) > self.max_clips:
                    self._store.popitem(last=False)
        self._step[key] = feats
        return feats

    def end_step(self) -> None:
        """Forget the within-step map (the LRU keeps what fits)."""
        self._step.clear()

    def __len__(self) -> int:
        return len(self._store)

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "clips": len(self._store)}


__all__ = ["FeatureCache", "clip_key"]
