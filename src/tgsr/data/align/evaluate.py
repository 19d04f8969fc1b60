"""Word-boundary accuracy of an aligner against reference timings.

Hypothesis and reference words are matched on their normalised text in order (longest
common subsequence via ``difflib``), so recognition errors of Whisper backends lower the
matched count instead of pairing unrelated words. The error of a matched word is
``|start - ref_start|`` and ``|end - ref_end|``; the report gives their mean over all
boundaries of all matched words.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

import numpy as np

from ...records import Word

_NORM = re.compile(r"[^a-z0-9']+")


def normalize(text: str) -> str:
    return _NORM.sub("", text.lower().replace("\u2019", "'"))


def match_words(hyp: list[Word], ref: list[Word]) -> list[tuple[Word, Word]]:
    """Pairs (hypothesis word, reference word) with equal normalised text, in order."""
    a, b = [normalize(w.text) for w in hyp], [normalize(w.text) for w in ref]
    sm = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    pairs = []
    for block in sm.get_matching_blocks():
        for k in range(block.size):
            pairs.append((hyp[block.a + k], ref[block.b + k]))
    return pairs


@dataclass
class BoundaryReport:
    ref_words: int = 0
    matched: int = 0
    errors: list[float] = field(default_factory=list)  # seconds, two per matched word

    def add(self, hyp: list[Word], ref: list[Word]) -> None:
        self.ref_words += len(ref)
        for h, r in match_words(hyp, ref):
            self.matched += 1
            self.errors += [abs(h.start - r.start), abs(h.end - r.end)]

    @property
    def mean_ms(self) -> float:
        return float(np.mean(self.errors) * 1000) if self.errors else float("nan")

    @property
    def median_ms(self) -> float:
        return float(np.median(self.errors) * 1000) if self.errors else float("nan")

    def within(self, tol: float) -> float:
        """Share of boundaries within ``tol`` seconds of the reference."""
        return float(np.mean(np.asarray(self.errors) <= tol)) if self.errors else float("nan")

    def as_dict(self) -> dict:
        return {"ref_words": self.ref_words, "matched": self.matched, "mean_abs_ms": round(self.mean_ms, 1),
                "median_abs_ms": round(self.median_ms, 1), "within_50ms": round(self.within(0.05), 3)}


__all__ = ["normalize", "match_words", "BoundaryReport"]
