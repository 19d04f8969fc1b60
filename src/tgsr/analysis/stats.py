"""Paired statistics for comparing two models scored on the same items.

* ``exact_binomial_p``: the exact binomial test (two-sided by the method of small p-values,
  as ``scipy.stats.binomtest``; or one-sided), from exact integer binomial coefficients.
* ``mcnemar_exact``: McNemar's exact test for paired correctness, i.e. the binomial test with
  p = 1/2 on the discordant pairs (items exactly one of the two models got right).
* ``paired_bootstrap``: a percentile bootstrap interval for the accuracy difference, resampling
  items (both models' scores of an item travel together, which keeps the pairing).
* ``above_chance``: accuracy against a chance rate (exact binomial, one-sided), or against
  per-item chance rates (exact Poisson binomial) when items have different numbers of options.

Inputs are per-item correctness (bools or 0/1) in the same item order; unequal lengths are an
error, never silently truncated.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal, Sequence

import numpy as np

from ..errors import TgsrError

Alternative = Literal["two-sided", "greater", "less"]
# relative tolerance for "as likely as the observed count" (scipy's binomtest uses 1 + 1e-7)
_RTOL = 1 + 1e-7


def _pmf(k: int, n: int, p: float) -> float:
    if p in (0.0, 1.0):
        return float(k == (n if p == 1.0 else 0))
    return math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                    + k * math.log(p) + (n - k) * math.log1p(-p))


def exact_binomial_p(k: int, n: int, p: float, alternative: Alternative = "two-sided") -> float:
    """P-value of ``k`` successes in ``n`` trials under success rate ``p``.

    Two-sided: the total probability of every count no more likely than ``k`` (the method of
    small p-values, which is what ``scipy.stats.binomtest`` reports)."""
    if not (0 <= k <= n) or not (0.0 <= p <= 1.0):
        raise TgsrError(f"binomial test needs 0 <= k <= n and 0 <= p <= 1, got k={k}, n={n}, p={p}")
    if alternative not in ("two-sided", "greater", "less"):
        raise TgsrError(f"alternative must be two-sided, greater or less, got {alternative!r}")
    pmf = [_pmf(i, n, p) for i in range(n + 1)]
    if alternative == "greater":
        return min(1.0, math.fsum(pmf[k:]))
    if alternative == "less":
        return min(1.0, math.fsum(pmf[:k + 1]))
    return min(1.0, math.fsum(q for q in pmf if q <= pmf[k] * _RTOL))


def _paired(a: Sequence, b: Sequence) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape:
        raise TgsrError(f"paired scores need two equal-length lists, got {a.shape} and {b.shape}")
    if a.size == 0:
        raise TgsrError("paired scores: no items")
    if not (np.isin(a, (0.0, 1.0)).all() and np.isin(b, (0.0, 1.0)).all()):
        raise TgsrError("paired scores must be per-item correctness (0/1 or booleans)")
    return a, b


@dataclass(frozen=True)
class McNemarResult:
    n: int
    only_a: int          # items A got right and B got wrong
    only_b: int
    pvalue: float
    alternative: str

    def to_dict(self) -> dict:
        return asdict(self)


def mcnemar_exact(a: Sequence, b: Sequence, alternative: Alternative = "two-sided") -> McNemarResult:
    """McNemar's exact test of A vs B on the same items. ``greater``: A is better than B."""
    a, b = _paired(a, b)
    only_a, only_b = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
    d = only_a + only_b
    p = exact_binomial_p(only_a, d, 0.5, alternative) if d else 1.0
    return McNemarResult(int(a.size), only_a, only_b, p, alternative)


@dataclass(frozen=True)
class BootstrapInterval:
    difference: float    # mean(a) - mean(b)
    low: float
    high: float
    confidence: float
    n_resamples: int

    def to_dict(self) -> dict:
        return asdict(self)


def paired_bootstrap(a: Sequence, b: Sequence, *, n_resamples: int = 10_000, confidence: float = 0.95,
                     seed: int = 0) -> BootstrapInterval:
    """Percentile interval of accuracy(A) - accuracy(B), items resampled with replacement."""
    a, b = _paired(a, b)
    if not 0 < confidence < 1:
        raise TgsrError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 100:
        raise TgsrError(f"n_resamples must be at least 100, got {n_resamples}")
    diff = a - b
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, 1000):  # bounded memory for large item counts
        stop = min(n_resamples, start + 1000)
        idx = rng.integers(0, diff.size, size=(stop - start, diff.size))
        means[start:stop] = diff[idx].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return BootstrapInterval(float(diff.mean()), float(low), float(high), confidence, n_resamples)


@dataclass(frozen=True)
class ChanceTest:
    hits: int
    n: int
    chance: float
    pvalue: float        # one-sided: accuracy above chance

    @property
    def accuracy(self) -> float:
        return self.hits / self.n if self.n else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "accuracy": self.accuracy}


def poisson_binomial_sf(k: int, chances: Sequence[float]) -> float:
    """P(at least ``k`` hits) when item i is a hit with probability ``chances[i]`` independently
    (items with different numbers of options); exact, by convolving the items one at a time."""
    dist = np.zeros(len(chances) + 1)
    dist[0] = 1.0
    for i, p in enumerate(chances):
        dist[1:i + 2] = dist[1:i + 2] * (1 - p) + dist[:i + 1] * p
        dist[0] *= 1 - p
    return float(min(1.0, dist[k:].sum()))


def above_chance(correct: Sequence, chance: float | Sequence[float]) -> ChanceTest:
    """One-sided exact test of accuracy above chance; ``chance`` is one rate or one per item
    (then the null is the Poisson binomial, and ``ChanceTest.chance`` their mean)."""
    c = np.asarray(correct, dtype=float)
    hits, n = int(c.sum()), int(c.size)
    if np.ndim(chance) == 0:
        return ChanceTest(hits, n, float(chance), exact_binomial_p(hits, n, float(chance), "greater") if n else 1.0)
    rates = [float(x) for x in chance]
    if len(rates) != n:
        raise TgsrError(f"{len(rates)} chance rates for {n} items")
    return ChanceTest(hits, n, float(np.mean(rates)) if n else 0.0, poisson_binomial_sf(hits, rates) if n else 1.0)


@dataclass(frozen=True)
class Contrast:
    """Two models on the same items: accuracies, the paired interval and McNemar's test."""

    a: str
    b: str
    accuracy_a: float
    accuracy_b: float
    interval: BootstrapInterval
    mcnemar: McNemarResult

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "accuracy_a": self.accuracy_a, "accuracy_b": self.accuracy_b,
                "interval": self.interval.to_dict(), "mcnemar": self.mcnemar.to_dict()}


def contrast(name_a: str, a: Sequence, name_b: str, b: Sequence, *, seed: int = 0,
             n_resamples: int = 10_000) -> Contrast:
    av, bv = _paired(a, b)
    return Contrast(name_a, name_b, float(av.mean()), float(bv.mean()),
                    paired_bootstrap(av, bv, n_resamples=n_resamples, seed=seed), mcnemar_exact(av, bv))


def contrast_runs(run_a, run_b, *, seed: int = 0, n_resamples: int = 10_000, on_items_of_b: bool = False) -> dict:
    """``contrast`` of two ``tgsr eval run`` folders on the same items (paired by id).

    The two runs must hold the same item ids: items in only one are an error (with a few of
    them named), never dropped. With ``on_items_of_b`` run A may hold more items (e.g. the
    own-audio run of a model whose listening control ran on its first items) and the contrast
    is taken on B's items, every one of which must be in A. An item that could not be run or
    whose answer could not be parsed counts as wrong, as in the runs' own accuracy; their
    numbers are reported."""
    from pathlib import Path

    from ..records import Prediction, read_jsonl

    preds = {}
    for label, d in (("a", run_a), ("b", run_b)):
        path = Path(d) / "predictions.jsonl"
        if not path.is_file():
            raise TgsrError(f"{d}: not an evaluation run folder (no predictions.jsonl)")
        rows = read_jsonl(path, Prediction, resolve_audio=False, unique="id").records
        preds[label] = {p.id: p for p in rows}
    if on_items_of_b:
        preds["a"] = {i: p for i, p in preds["a"].items() if i in preds["b"]}
    only_a = sorted(set(preds["a"]) - set(preds["b"]))
    only_b = sorted(set(preds["b"]) - set(preds["a"]))
    if only_a or only_b:
        raise TgsrError(f"the runs hold different items: {len(only_a)} only in {run_a} (e.g. {only_a[:3]}), "
                        f"{len(only_b)} only in {run_b} (e.g. {only_b[:3]})")
    ids = sorted(preds["a"])
    if not ids:
        raise TgsrError(f"{run_a}: no predictions")
    a = [preds["a"][i].correct is True for i in ids]
    b = [preds["b"][i].correct is True for i in ids]
    c = contrast(str(run_a), a, str(run_b), b, seed=seed, n_resamples=n_resamples)
    unscored = {label: sum(1 for p in preds[label].values() if p.error or p.parse_error) for label in ("a", "b")}
    return {**c.to_dict(), "n": len(ids), "errors_or_unparsed_a": unscored["a"], "errors_or_unparsed_b": unscored["b"]}


__all__ = ["contrast_runs", "exact_binomial_p", "mcnemar_exact", "McNemarResult", "paired_bootstrap",
           "BootstrapInterval", "above_chance", "ChanceTest", "poisson_binomial_sf", "contrast", "Contrast"]
