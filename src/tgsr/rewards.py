"""Rewards for GRPO in TRL's reward-function convention.

Each reward is a callable ``reward(completions, **dataset_columns) -> list[float]``:
``completions`` holds strings or chat-message lists (the way TRL passes them), and every
dataset column arrives as a keyword list with one entry per completion. TRL's extra keywords
(``prompts``, ``completion_ids``, ``trainer_state`` ...) are accepted and ignored.

Rewards (paper Eq. 1 and Eq. 2, plus two beyond the paper):

* ``answer``: 1.0 when the letter on the last non-empty line (``tgsr.answers.extract_choice``)
  equals the gold letter (column ``answer`` or ``label``), else 0.0.
* ``compaction``: R_tg over k citations: 0 if k = 0; C_max if k <= k_ref; C_min if
  k >= k_max; linear in between. k counts distinct valid spans (``count="distinct"``) or the
  paper plugin's pattern matches (``count="paper"``). ``no_compaction=True`` (registry name
  ``compaction_flat``) gives C_max for any k >= 1: the "GRPO w/o compaction" ablation.
* ``grounding_iou``: mean over cited spans of each span's best IoU with a gold ``evidence``
  span; spans outside [0, ``duration``] or with start >= end score 0; no citation scores 0.
* ``grounding_f1``: precision *and* recall of the cited spans against the gold ``evidence``:
  P = mean over cited spans of each one's best IoU with a gold span (``grounding_iou``),
  R = mean over gold spans of each one's best IoU with a valid cited span, F1 = 2PR / (P + R).
  Citing only the easiest of several evidence spans earns P but not R, so it pays less than
  citing them all; no citation scores 0.
* ``combined``: a weighted sum of the others, set by config (paper: answer 1 + compaction 1).

Rewards never raise: any completion that cannot be scored (None, empty, binary, larger than
``max_chars``, a missing column) scores 0.0 and the problem is counted in ``REWARD_STATS``
(``REWARD_STATS.snapshot()`` gives ``{"<reward>/<problem>": count}`` for the trainer to log).
"""

from __future__ import annotations

import math
import numbers
import threading
from collections import Counter
from typing import Any, Callable, Iterable, Mapping, Sequence

from .answers import LETTERS, completion_text, extract_choice
from .spans import count_citations, find_spans, span_iou

__all__ = [
    "RewardStats", "REWARD_STATS", "RewardFunction", "REWARDS", "get_reward",
    "build_reward_funcs", "compaction_value", "normalize_letter", "MAX_CHARS",
]

# Longer completions are not parsed: a real generation is far shorter, and a runaway one
# should not earn reward. 200k characters is ~50k tokens.
MAX_CHARS = 200_000


class RewardStats:
    """Counts of completions a reward could not score normally, by reward and problem."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def count(self, reward: str, problem: str, n: int = 1) -> None:
        with self._lock:
            self._counts[f"{reward}/{problem}"] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> dict[str, int]:
        """Return the counts and start again (e.g. once per logging step)."""
        with self._lock:
            out = dict(self._counts)
            self._counts.clear()
            return out

    def __getitem__(self, key: str) -> int:
        with self._lock:
            return self._counts.get(key, 0)


REWARD_STATS = RewardStats()


def compaction_value(k: int, *, k_ref: int = 1, k_max: int = 5, c_max: float = 0.5,
                     c_min: float = 0.1, no_compaction: bool = False) -> float:
    """Paper Eq. 2: the timestamp-grounding reward for k citations."""
    if k <= 0:
        return 0.0
    if no_compaction or k <= k_ref:
        return float(c_max)
    if k >= k_max:
        return float(c_min)
    return float(c_max - (c_max - c_min) * (k - k_ref) / (k_max - k_ref))


def normalize_letter(gold: Any) -> str | None:
    """A gold answer as a lower-case letter: "b", "(B)", "B." or a 0-based int index."""
    if isinstance(gold, bool) or gold is None:
        return None
    if isinstance(gold, numbers.Integral):  # also numpy integers from datasets
        gold = int(gold)
        return LETTERS[gold] if 0 <= gold < len(LETTERS) else None
    if isinstance(gold, str):
        g = gold.strip().strip("().[] ").lower()
        if len(g) == 1 and g in LETTERS:
            return g
    return None


def _column(columns: Mapping[str, Any], name: str, i: int) -> Any:
    col = columns.get(name)
    if col is None or isinstance(col, (str, bytes)):
        return None
    try:
        return col[i]
    except (IndexError, KeyError, TypeError):
        return None


class RewardFunction:
    """A named TRL reward: call with ``(completions, **columns)``; ``__name__`` is logged."""

    def __init__(self, name: str, score: Callable[[str, int, Mapping[str, Any]], float],
                 params: Mapping[str, Any] | None = None, max_chars: int = MAX_CHARS,
                 stats: RewardStats | None = None):
        self.__name__ = name
        self.params = dict(params or {})
        self._score = score
        self.max_chars = max_chars
        self.stats = stats or REWARD_STATS

    def __repr__(self) -> str:
        return f"RewardFunction({self.__name__!r}, {self.params})"

    def __reduce__(self):
        spec = getattr(self, "_spec", None)
        if spec is None:
            raise TypeError(f"reward {self.__name__!r} was not built by get_reward and cannot be pickled")
        return (_rebuild_reward, spec)

    def text_of(self, completion: Any) -> str | None:
        """Plain text to score, or None (problem counted) when it cannot be scored."""
        if completion is None:
            self.stats.count(self.__name__, "none")
            return None
        if not isinstance(completion, (str, bytes, bytearray, list, tuple, dict)):
            self.stats.count(self.__name__, "not_text")
            return None
        text = completion_text(completion)
        if not text.strip():
            self.stats.count(self.__name__, "empty")
            return None
        if len(text) > self.max_chars:
            self.stats.count(self.__name__, "too_long")
            return None
        if "\x00" in text:
            self.stats.count(self.__name__, "binary")
            return None
        return text

    def score_one(self, completion: Any, i: int, columns: Mapping[str, Any]) -> float:
        try:
            text = self.text_of(completion)
            if text is None:
                return 0.0
            value = float(self._score(text, i, columns))
            if not math.isfinite(value):
                self.stats.count(self.__name__, "non_finite")
                return 0.0
            return value
        except Exception as e:  # a reward must never stop training
            self.stats.count(self.__name__, f"error:{type(e).__name__}")
            return 0.0

    def __call__(self, completions: Any = None, **columns: Any) -> list[float]:
        if completions is None:
            return []
        if isinstance(completions, (str, bytes, dict)):
            completions = [completions]
        try:
            items = list(completions)
        except TypeError:
            self.stats.count(self.__name__, "not_a_list")
            return []
        return [self.score_one(c, i, columns) for i, c in enumerate(items)]


# ------------------------------------------------------------------------------ scorers

def _answer_scorer(stats: RewardStats, name: str):
    def score(text: str, i: int, columns: Mapping[str, Any]) -> float:
        choices = _column(columns, "choices", i)
        if not isinstance(choices, (list, tuple)):
            choices = None
        gold_raw = _column(columns, "answer", i)
        if gold_raw is None:
            gold_raw = _column(columns, "label", i)
        gold = normalize_letter(gold_raw)
        if gold is None:
            stats.count(name, "missing_gold")
            return 0.0
        got = extract_choice(text, choices)
        if got.letter is None:
            stats.count(name, "no_answer")
            return 0.0
        return 1.0 if got.letter == gold else 0.0
    return score


def _compaction_scorer(count: str, k_ref: int, k_max: int, c_max: float, c_min: float,
                       no_compaction: bool):
    if count not in ("distinct", "paper"):
        raise ValueError(f"compaction count must be 'distinct' or 'paper', got {count!r}")
    if not (k_max > k_ref >= 0):
        raise ValueError(f"compaction needs k_max > k_ref >= 0, got k_ref={k_ref}, k_max={k_max}")

    def score(text: str, i: int, columns: Mapping[str, Any]) -> float:
        k = count_citations(text, count)
        return compaction_value(k, k_ref=k_ref, k_max=k_max, c_max=c_max, c_min=c_min,
                                no_compaction=no_compaction)
    return score


def _evidence_pairs(raw: Any) -> list[tuple[float, float]]:
    pairs = []
    for item in raw or []:
        if isinstance(item, Mapping):
            s, e = item.get("start"), item.get("end")
        else:
            s, e = item
        s, e = float(s), float(e)
        if math.isfinite(s) and math.isfinite(e) and e > s:
            pairs.append((s, e))
    return pairs


def _cited_against_gold(stats: RewardStats, name: str, tolerance: float, text: str, i: int,
                        columns: Mapping[str, Any]):
    """(all citations, the ones inside the clip, gold evidence) for the grounding rewards; None when the
    row cannot be scored (problem counted) or the text cites nothing. A span outside the clip or with
    start >= end covers no audio: it is in the first list only, so it lowers precision."""
    duration = _column(columns, "duration", i)
    if duration is None or isinstance(duration, bool):
        stats.count(name, "missing_duration")
        return None
    duration = float(duration)
    gold = _evidence_pairs(_column(columns, "evidence", i))
    if not gold:
        stats.count(name, "no_evidence")
        return None
    spans = find_spans(text)
    if not spans:
        return None
    valid = [(s.start, s.end) for s in spans if s.valid and s.start >= 0 and s.end <= duration + tolerance]
    return spans, valid, gold


def _grounding_scorer(stats: RewardStats, name: str, tolerance: float):
    def score(text: str, i: int, columns: Mapping[str, Any]) -> float:
        found = _cited_against_gold(stats, name, tolerance, text, i, columns)
        if found is None:
            return 0.0
        spans, valid, gold = found
        return sum(max(span_iou(c, g) for g in gold) for c in valid) / len(spans)
    return score


def _grounding_f1_scorer(stats: RewardStats, name: str, tolerance: float):
    def score(text: str, i: int, columns: Mapping[str, Any]) -> float:
        found = _cited_against_gold(stats, name, tolerance, text, i, columns)
        if found is None or not found[1]:
            return 0.0
        spans, valid, gold = found
        precision = sum(max(span_iou(c, g) for g in gold) for c in valid) / len(spans)
        recall = sum(max(span_iou(c, g) for c in valid) for g in gold) / len(gold)
        return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return score


# ------------------------------------------------------------------------------ registry

def _make_answer(*, stats: RewardStats | None = None, max_chars: int = MAX_CHARS,
                 name: str = "answer") -> RewardFunction:
    st = stats or REWARD_STATS
    return RewardFunction(name, _answer_scorer(st, name), {}, max_chars, st)


def _make_compaction(*, count: str = "distinct", k_ref: int = 1, k_max: int = 5,
                     c_max: float = 0.5, c_min: float = 0.1, no_compaction: bool = False,
                     stats: RewardStats | None = None, max_chars: int = MAX_CHARS,
                     name: str | None = None) -> RewardFunction:
    name = name or ("compaction_flat" if no_compaction else "compaction")
    params = dict(count=count, k_ref=k_ref, k_max=k_max, c_max=c_max, c_min=c_min,
                  no_compaction=no_compaction)
    return RewardFunction(name, _compaction_scorer(count, k_ref, k_max, c_max, c_min, no_compaction),
                          params, max_chars, stats)


def _make_compaction_flat(**params: Any) -> RewardFunction:
    params["no_compaction"] = True
    return _make_compaction(**params)


def _make_grounding(*, tolerance: float = 0.01, stats: RewardStats | None = None,
                    max_chars: int = MAX_CHARS, name: str = "grounding_iou") -> RewardFunction:
    st = stats or REWARD_STATS
    return RewardFunction(name, _grounding_scorer(st, name, tolerance), {"tolerance": tolerance},
                          max_chars, st)


def _make_grounding_f1(*, tolerance: float = 0.01, stats: RewardStats | None = None,
                       max_chars: int = MAX_CHARS, name: str = "grounding_f1") -> RewardFunction:
    st = stats or REWARD_STATS
    return RewardFunction(name, _grounding_f1_scorer(st, name, tolerance), {"tolerance": tolerance},
                          max_chars, st)


def _make_combined(*, components: Mapping[str, Any] | None = None,
                   stats: RewardStats | None = None, max_chars: int = MAX_CHARS,
                   name: str = "combined", **weights: Any) -> RewardFunction:
    """Weighted sum. ``components`` (or keywords) map reward name -> weight, or -> a dict
    ``{"weight": w, ...params}``. Default: the paper's answer 1 + compaction 1."""
    spec = dict(components or {})
    spec.update(weights)
    if not spec:
        spec = {"answer": 1.0, "compaction": 1.0}
    funcs, ws = build_reward_funcs(spec, stats=stats, max_chars=max_chars)
    if any(f.__name__ == "combined" for f in funcs):
        raise ValueError("combined cannot contain itself")

    def score(text: str, i: int, columns: Mapping[str, Any]) -> float:
        return sum(w * f.score_one(text, i, columns) for f, w in zip(funcs, ws))

    params = {f.__name__: {"weight": w, **f.params} for f, w in zip(funcs, ws)}
    return RewardFunction(name, score, params, max_chars, stats)


_FACTORIES: dict[str, Callable[..., RewardFunction]] = {
    "answer": _make_answer,
    "compaction": _make_compaction,
    "compaction_flat": _make_compaction_flat,
    "grounding_iou": _make_grounding,
    "grounding_f1": _make_grounding_f1,
    "combined": _make_combined,
}



def get_reward(name: str, **params: Any) -> RewardFunction:
    """A reward by registry name, configured with ``params`` (e.g. ``count="paper"``)."""
    if name not in _FACTORIES:
        raise KeyError(f"unknown reward {name!r}; known: {', '.join(sorted(_FACTORIES))}")
    func = _FACTORIES[name](**params)
    # Remember how it was built so it pickles (worker processes) by rebuilding; a custom
    # stats object is not carried over (the copy counts into REWARD_STATS).
    func._spec = (name, {k: v for k, v in params.items() if k != "stats"})
    return func


def build_reward_funcs(spec: Mapping[str, Any] | Iterable[str], *, stats: RewardStats | None = None,
                       max_chars: int = MAX_CHARS) -> tuple[list[RewardFunction], list[float]]:
    """Reward functions and weights from a config, for ``GRPOTrainer(reward_funcs=...)`` and
    ``GRPOConfig(reward_weights=...)``.

    ``spec`` maps name -> weight, or name -> ``{"weight": w, **params}``; a plain list of
    names gives weight 1 each. Example: ``{"answer": 1, "compaction": {"weight": 1,
    "count": "paper"}}``.
    """
    if isinstance(spec, str):
        spec = [spec]
    items: Sequence[tuple[str, Any]] = (list(spec.items()) if isinstance(spec, Mapping)
                                        else [(n, 1.0) for n in spec])
    funcs: list[RewardFunction] = []
    weights: list[float] = []
    for name, value in items:
        if isinstance(value, Mapping):
            params = dict(value)
            weight = float(params.pop("weight", 1.0))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            params, weight = {}, float(value)
        else:
            raise ValueError(f"reward {name!r}: expected a weight or a mapping, got {value!r}")
        extra = {"max_chars": max_chars}
        if stats is not None:
            extra["stats"] = stats
        funcs.append(get_reward(str(name), **extra, **params))
        weights.append(weight)
    return funcs, weights


# Ready-to-use rewards with default parameters; ``get_reward`` builds configured ones.
REWARDS: dict[str, RewardFunction] = {name: get_reward(name) for name in _FACTORIES}


def _rebuild_reward(name: str, params: dict) -> RewardFunction:
    return get_reward(name, **params)

# Module-level names for direct use (``from tgsr.rewards import answer_reward``).
answer_reward = REWARDS["answer"]
compaction_reward = REWARDS["compaction"]
grounding_iou_reward = REWARDS["grounding_iou"]
grounding_f1_reward = REWARDS["grounding_f1"]
combined_reward = REWARDS["combined"]
