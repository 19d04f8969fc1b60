"""Timestamp metrics: interval IoU, the IoU >= 0.7 rate and event-based SED-F1.

Spans are ``(start, end)`` pairs in seconds (anything with ``.start``/``.end`` works too).

SED-F1 follows the event-based definition used for sound event detection (DCASE): a
predicted span matches a reference span when its onset lies within ``onset_collar``
seconds of the reference onset and its offset within ``max(offset_collar,
offset_fraction * reference length)`` of the reference offset. Each reference and each
prediction is used at most once; the pairing is a maximum bipartite matching, so the
number of true positives never depends on the order spans are listed in. Precision,
recall and F1 are computed from the summed counts (micro average over clips), which is
how the event-based metric aggregates a test set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from ..spans import span_iou

IOU_THRESHOLD = 0.7
ONSET_COLLAR = 0.2           # seconds
OFFSET_COLLAR = 0.2          # seconds, lower bound of the offset collar
OFFSET_FRACTION = 0.2        # offset collar grows to 20% of the reference length


def _pair(span: Any) -> tuple[float, float]:
    if hasattr(span, "start") and hasattr(span, "end"):
        return float(span.start), float(span.end)
    s, e = span
    return float(s), float(e)


def iou(a: Any, b: Any) -> float:
    """Intersection over union of two intervals (tuples or objects with start/end).

    Delegates to the span grammar's ``span_iou``: disjoint, empty or reversed intervals
    (start > end: an invalid prediction, never swapped) score 0.
    """
    return span_iou(_pair(a), _pair(b))


def best_iou(pred_spans: Iterable[Any], ref_spans: Any) -> float:
    """The highest IoU between any predicted span and any reference span (0 if either is empty).

    ``ref_spans`` may be one span or a list of spans.
    """
    refs = [ref_spans] if _is_single_span(ref_spans) else list(ref_spans)
    preds = list(pred_spans)
    return max((iou(p, r) for p in preds for r in refs), default=0.0)


def _is_single_span(x: Any) -> bool:
    if hasattr(x, "start") and hasattr(x, "end"):
        return True
    return (isinstance(x, (tuple, list)) and len(x) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in x))


def iou_rate(ious: Sequence[float], threshold: float = IOU_THRESHOLD) -> float:
    """Share of items whose IoU reaches ``threshold`` (0 for an empty list)."""
    return sum(1 for v in ious if v >= threshold) / len(ious) if ious else 0.0


@dataclass
class SedCounts:
    """Event counts; add them over clips, then read precision/recall/F1."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: "SedCounts") -> "SedCounts":
        return SedCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        denom = 2 * self.tp + self.fp + self.fn
        # nothing predicted and nothing to find is a perfect score, as in sed_eval
        return 2 * self.tp / denom if denom else 1.0

    def __float__(self) -> float:
        return self.f1

    def as_dict(self) -> dict:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": self.precision,
                "recall": self.recall, "f1": self.f1}


def spans_match(pred: Any, ref: Any, *, onset_collar: float = ONSET_COLLAR,
                offset_collar: float = OFFSET_COLLAR, offset_fraction: float = OFFSET_FRACTION) -> bool:
    """Whether ``pred`` matches ``ref`` under the event-based onset/offset collars."""
    (ps, pe), (rs, re_) = _pair(pred), _pair(ref)
    off = max(offset_collar, offset_fraction * (re_ - rs))
    return abs(ps - rs) <= onset_collar + 1e-9 and abs(pe - re_) <= off + 1e-9


def _max_matching(adj: list[list[int]], n_right: int) -> int:
    """Size of a maximum bipartite matching (augmenting paths; inputs are tiny)."""
    match_right = [-1] * n_right

    def augment(u: int, seen: list[bool]) -> bool:
        for v in adj[u]:
            if not seen[v]:
                seen[v] = True
                if match_right[v] == -1 or augment(match_right[v], seen):
                    match_right[v] = u
                    return True
        return False

    return sum(1 for u in range(len(adj)) if augment(u, [False] * n_right))


def sed_f1(pred_spans: Iterable[Any], ref_spans: Iterable[Any], collar: float = ONSET_COLLAR, *,
           offset_collar: float | None = None, offset_fraction: float = OFFSET_FRACTION) -> SedCounts:
    """Event-based detection counts for one clip (``float(result)`` is its F1).

    ``collar`` is the onset collar in seconds; the offset collar is
    ``max(offset_collar, offset_fraction * reference length)`` with ``offset_collar``
    defaulting to ``collar``. Sum the returned counts over clips for a test-set F1.
    """
    preds = [_pair(p) for p in pred_spans]
    refs = [_pair(r) for r in ref_spans]
    off = collar if offset_collar is None else offset_collar
    adj = [[j for j, p in enumerate(preds)
            if spans_match(p, r, onset_collar=collar, offset_collar=off, offset_fraction=offset_fraction)]
           for r in refs]
    tp = _max_matching(adj, len(preds))
    return SedCounts(tp=tp, fp=len(preds) - tp, fn=len(refs) - tp)


def first_cited_span(text: str | None) -> tuple[float, float] | None:
    """The span an STA answer states: its first valid citation (``tgsr.spans.find_spans``)."""
    from ..spans import find_spans

    return next(((s.start, s.end) for s in find_spans(text or "") if s.valid), None)


def score_spans(outputs: Sequence[str | None], refs: Sequence[Any], *, n_items: int | None = None) -> dict:
    """The one STA scorer (``tgsr train sta``'s held-out check and ``tgsr eval``): fractions, not percent.

    ``outputs[i]`` is the model's text for reference span ``refs[i]``; None marks an item that
    failed (an error). Each item scores the IoU of its first valid citation (0 when it has
    none, counted in ``no_span``). SED counts every valid citation as a detection. Items
    never predicted (``n_items`` above ``len(outputs)``) stay in every denominator: IoU 0
    and a missed reference event.
    """
    from ..spans import find_spans

    if len(outputs) != len(refs):
        raise ValueError(f"{len(outputs)} outputs for {len(refs)} reference spans")
    n = max(n_items or 0, len(outputs))
    ious: list[float] = []
    sed = SedCounts()
    no_span = errors = 0
    for text, ref in zip(outputs, refs):
        ref = _pair(ref)
        if text is None:
            errors += 1
            ious.append(0.0)
            sed = sed + SedCounts(fn=1)
            continue
        spans = [(s.start, s.end) for s in find_spans(text) if s.valid]
        no_span += not spans
        ious.append(iou(spans[0], ref) if spans else 0.0)
        sed = sed + sed_f1(spans, [ref], ONSET_COLLAR)
    missing = n - len(outputs)
    sed = sed + SedCounts(fn=missing)
    return {
        "items": n, "predicted": len(outputs), "missing": missing, "errors": errors, "no_span": no_span,
        "mean_iou": sum(ious) / n if n else None,
        "iou_at_0.7": iou_rate(ious + [0.0] * missing) if n else None,
        "ious": ious,
        "sed": {**sed.as_dict(), "f1": sed.f1, "onset_collar_s": ONSET_COLLAR,
                "offset_collar": f"max({OFFSET_COLLAR}s, {OFFSET_FRACTION:.0%} of the reference length)"},
    }


__all__ = ["IOU_THRESHOLD", "ONSET_COLLAR", "OFFSET_COLLAR", "OFFSET_FRACTION", "iou", "best_iou", "iou_rate",
           "SedCounts", "spans_match", "sed_f1", "first_cited_span", "score_spans"]
