"""The timestamp-citation grammar: one parser, one formatter, used everywhere in tgsr.

A *citation* is a pair of time values that a model output uses to point at a region of the
audio. ``find_spans`` finds them all, in order, with character offsets; ``format_span`` writes
the canonical form ``From 5.98s to 14.80s``.

Forms recognised (case-insensitive; ``T`` is a time value, ``u`` an optional unit
``s``/``sec``/``secs``/``second``/``seconds``; ``-`` stands for any dash ``- ‐ ‑ ‒ – — ― −`` or ``~``):

* ``from T u to T u`` (also ``until``/``till``/``through`` and dashes; the first value may sit in
  brackets: ``From [0.00s – 4.30s]``) -- e.g. ``From 10.74s to 14.74s``, ``is from 3 to 5 seconds``
* ``start(s|ing) at T u [,] and end(s|ing) at T u`` (also ``begin(s)``) -- the Stage-1 answer form
* ``between T u and T u``
* bracketed pairs ``(T u - T u)``, ``[T u - T u]``, ``(T, T)``, ``(T to T)``
* bare ranges ``T u to|- T u`` -- e.g. ``1.2 to 3.4 seconds``, ``1.2-3.4 s``, ``1.2s - 3.4s``
* clock ranges ``mm:ss[.f] - mm:ss[.f]`` and ``h:mm:ss[.f] to h:mm:ss[.f]``

``T`` is either seconds (``12``, ``12.5``; at most 6 integer and 6 fraction digits) or a clock
value (``mm:ss``/``h:mm:ss`` with an optional fraction; minutes and seconds fields below 60).
Commas are separators, never decimal marks (``(1.2, 3.4)`` is a pair, ``1,5 s`` is not 1.5 s).

So that ordinary numbers ("from 2 to 3 speakers", "pages 10-12") are not taken for citations,
every citation needs a *time marker*: a unit on either value, a clock value, enclosing
brackets, or the start/end phrasing.

Design: a single compiled regular expression in which every quantifier is bounded or
possessive, so each match attempt costs O(1) and a scan costs O(len(text)), whatever the text
(runs of digits, nested brackets, repeated "from"). The alternatives are tried longest-first at
each position and matches never overlap, so one citation is never counted twice
(``From [0.00s – 4.30s]`` is one citation, ``from 10 to 12 seconds`` is one citation).

A citation with start >= end is reported with ``valid=False`` (a zero-length span covers no
audio); the values are never swapped. A minus sign written before the first value is kept
(``from -1.0s to 2.0s`` gives start -1.0, ``valid=False``) rather than dropped.

``count_citations(text, mode="paper")`` instead reproduces the counting of the paper's
released reward plugin (five independent patterns whose match counts are summed, double
counts included); see ``PAPER_PATTERNS``.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

__all__ = [
    "Span",
    "find_spans",
    "format_span",
    "parse_time",
    "distinct_spans",
    "count_citations",
    "span_iou",
    "spans_to_rows",
    "PAPER_PATTERNS",
    "DISTINCT_IOU",
]

# Two valid citations denote the same region when their IoU reaches this value.
DISTINCT_IOU = 0.5


@dataclass(frozen=True)
class Span:
    """One timestamp citation found in a text."""

    start: float
    end: float
    char_start: int
    char_end: int
    text: str
    valid: bool

    def as_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "valid": self.valid,
                "char_start": self.char_start, "char_end": self.char_end}

    @property
    def duration(self) -> float:
        return self.end - self.start


# ----------------------------------------------------------------------------------------
# Grammar building blocks. Every quantifier is bounded ({m,n}) or possessive (*+ / ++), so no
# match attempt can backtrack more than a constant number of steps.
# ----------------------------------------------------------------------------------------

_DASH = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212~"
_D = f"[{_DASH}]"
_WS = r"[ \t\u00a0]{0,3}"          # optional horizontal space, bounded
_WS1 = r"[ \t\u00a0]{1,3}"         # required horizontal space, bounded
# A value must not continue a number, a word or a clock value on its left ...
_LEFT = r"(?<![\w.:])"
# ... nor be followed by more digits (so 7+ digit runs never match at all).
_SECS = r"\d{1,6}+(?:\.\d{1,6}+)?+(?![\d])(?!\.\d)"
# h:mm:ss or m:ss (minutes may exceed 59 without an hour field: "75:30").
_CLOCK = r"(?:\d{1,2}:[0-5]\d|\d{1,3}):[0-5]\d(?:\.\d{1,6}+)?+(?![\d])(?!\.\d)(?!:\d)"
_UNIT = r"(?:seconds?|secs?|s)\b"


_SIGN = "[-\u2212]?+"  # a first value may carry a minus sign; it is kept (and makes the span invalid)


def _time(name: str) -> str:
    """A time value (clock or seconds) captured as ``name``; only first values take a sign."""
    sign = _SIGN if name.endswith("_a") else ""
    return f"{_LEFT}(?P<{name}>{sign}(?:{_CLOCK}|{_SECS}))"


def _clock(name: str) -> str:
    sign = _SIGN if name.endswith("_a") else ""
    return f"{_LEFT}(?P<{name}>{sign}{_CLOCK})"


def _unit(name: str) -> str:
    return f"(?:{_WS}(?P<{name}>{_UNIT}))?+"


def _form(name: str) -> str:
    """Build one alternative; group names are prefixed with the form name."""
    a, ua, b, ub = f"{name}_a", f"{name}_ua", f"{name}_b", f"{name}_ub"
    to = r"(?:to|until|till|through)"
    conn = rf"{_WS}(?:{to}{_WS1}|{_D}{_WS})"  # " to ", "-", " – "
    if name == "from":
        # "from T to T", with an optional bracket around the pair: "From [0.00s – 4.30s]".
        body = (rf"\bfrom{_WS}(?P<from_ob>[\[(]{_WS})?+{_time(a)}{_unit(ua)},?+"
                rf"{conn}{_time(b)}{_unit(ub)}"
                rf"(?(from_ob){_WS}[\])])")
    elif name == "startend":
        body = (rf"\b(?:start|begin)(?:s|ning|ing)?+{_WS1}at{_WS1}{_time(a)}{_unit(ua)},?{_WS1}"
                rf"and{_WS1}(?:it{_WS1})?+end(?:s|ing)?+{_WS1}at{_WS1}{_time(b)}{_unit(ub)}")
    elif name == "between":
        body = (rf"\bbetween{_WS1}{_time(a)}{_unit(ua)}{_WS1}and{_WS1}{_time(b)}{_unit(ub)}")
    elif name == "bracket":
        body = (rf"[\[(]{_WS}{_time(a)}{_unit(ua)}{_WS}"
                rf"(?:{_D}{_WS}|,{_WS}|{to}{_WS1}){_time(b)}{_unit(ub)}{_WS}[\])]")
    elif name == "clock":
        body = (rf"{_clock(a)}{conn}{_clock(b)}"
                rf"(?P<clock_ua>)(?P<clock_ub>)")
    elif name == "bare":
        # Bare ranges need the unit after the second value: "1.2 to 3.4 seconds", "1.2-3.4 s".
        body = (rf"{_time(a)}{_unit(ua)}{conn}{_time(b)}"
                rf"{_WS}(?P<{ub}>{_UNIT})")
    else:  # pragma: no cover - programming error
        raise ValueError(name)
    return f"(?P<{name}>{body})"


# Order matters only among alternatives that can start at the same position: the phrase
# forms start with a word, the bracket form with a bracket, the clock/bare forms with a digit.
_FORMS = ("from", "startend", "between", "bracket", "clock", "bare")
# The leading lookahead is a cheap filter: every citation starts with a bracket followed by a
# number, one of the words from/start/begin/between, or a number that does not continue
# another one; other positions are rejected after one test instead of six failed alternatives.
_GRAMMAR = re.compile(r"(?=[\[(][ \t\u00a0]{0,3}[-\u2212]?\d|from|start|begin|between"
                      r"|(?<![\w.:])[-\u2212]?\d)(?:" + "|".join(_form(f) for f in _FORMS) + ")",
                      re.IGNORECASE)
# Forms whose wording (or brackets) already marks the numbers as times.
_MARKED_FORMS = {"startend", "bracket", "clock", "bare"}


def parse_time(value: str) -> float:
    """Seconds for a time value as written in a citation: ``12.5``, ``01:02.5``, ``1:02:03``."""
    value = value.replace("\u2212", "-")
    sign = -1.0 if value.startswith("-") else 1.0
    total = 0.0
    for part in value.lstrip("-").split(":"):
        total = total * 60 + float(part)
    return sign * total


def find_spans(text: str | None) -> list[Span]:
    """All timestamp citations in ``text``, in order of appearance, never overlapping.

    Non-string input (None, bytes, numbers) yields no spans rather than an error; bytes are
    decoded as UTF-8 with replacement.
    """
    if text is None:
        return []
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    if not isinstance(text, str):
        return []
    spans: list[Span] = []
    for m in _GRAMMAR.finditer(text):
        form = m.lastgroup
        if form is None:  # pragma: no cover - every alternative is a named group
            continue
        a, b = m.group(f"{form}_a"), m.group(f"{form}_b")
        if form not in _MARKED_FORMS:
            marked = (m.group(f"{form}_ua") or m.group(f"{form}_ub") or ":" in a or ":" in b
                      or (form == "from" and m.group("from_ob")))
            if not marked:
                continue
        start, end = parse_time(a), parse_time(b)
        spans.append(Span(start=start, end=end, char_start=m.start(), char_end=m.end(),
                          text=m.group(0), valid=0 <= start < end))
    return spans


def format_span(start: float, end: float) -> str:
    """The canonical citation: ``From 5.98s to 14.80s``."""
    return f"From {start:.2f}s to {end:.2f}s"


def span_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Temporal intersection over union of two (start, end) intervals; 0 for empty ones."""
    inter = min(a[1], b[1]) - max(a[0], b[0])
    if inter <= 0:
        return 0.0
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def distinct_spans(spans_or_text: str | Iterable[Span] | None,
                   iou_threshold: float = DISTINCT_IOU) -> list[Span]:
    """Valid citations that denote distinct audio regions, first occurrence kept.

    Rule: invalid spans (start >= end, or a negative start) are dropped; going through the rest in order, a span is
    a repeat of an earlier kept span when their IoU is >= ``iou_threshold`` (0.5 by default),
    so "From 1.00s to 3.00s ... (1.0s - 3.0s)" and rounding variants like "From 1.0s to 3.0s"
    vs "From 1.05s to 3.02s" count once, while a sub-region (e.g. 1-2 s inside 0-10 s,
    IoU 0.1) counts as a new region.
    """
    if not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    if spans_or_text is None:
        return []
    spans = find_spans(spans_or_text) if isinstance(spans_or_text, (str, bytes, bytearray)) \
        else list(spans_or_text)
    kept: list[Span] = []
    # Kept spans sorted by start, so each new span is compared only with the kept spans that
    # could reach the threshold: for IoU >= t > 0 the other span starts no earlier than
    # start - len/t and before end.
    by_start: list[tuple[float, float]] = []
    for s in spans:
        if not s.valid:
            continue
        length = s.end - s.start
        reach = length / iou_threshold
        lo = bisect.bisect_left(by_start, (s.start - reach, -math.inf))
        hi = bisect.bisect_left(by_start, (s.end, -math.inf))
        if any(span_iou((s.start, s.end), by_start[j]) >= iou_threshold for j in range(lo, hi)):
            continue
        kept.append(s)
        bisect.insort(by_start, (s.start, s.end))
    return kept


# ----------------------------------------------------------------------------------------
# Paper-compatible counting. These five patterns re-create the counting of the authors'
# released reward plugin: each is matched independently, case-insensitively, and the match
# counts are summed, so one citation can be counted by two patterns ("from 10 to 12 seconds"
# counts 2) and forms outside the patterns count 0 ("From [0.00s – 4.30s]"). Possessive
# quantifiers keep them linear; they accept the same strings as their backtracking versions
# because no digit run or whitespace run can be followed by another digit/space in a match.
# ----------------------------------------------------------------------------------------

_PN = r"(?<!\d)\d++(?:\.\d++)?+"
PAPER_PATTERNS: tuple[re.Pattern, ...] = tuple(re.compile(p, re.IGNORECASE) for p in (
    # 1. start(s) at X [seconds|s] and end(s) at Y [seconds|s]
    rf"starts?\s++at\s++{_PN}(?:\s*+(?:seconds|s))?+\s++and\s++ends?\s++at\s++{_PN}"
    rf"(?:\s*+(?:seconds|s))?+",
    # 2. [is] from X [seconds|s] to Y [seconds|s]
    rf"(?:is\s++)?+from\s++{_PN}(?:\s*+(?:seconds|s))?+\s++to\s++{_PN}(?:\s*+(?:seconds|s))?+",
    # 3. (X[s] - Y[s]) with a hyphen or an en dash
    rf"\({_PN}s?+\s*+[-\u2013]\s*+{_PN}s?+\)",
    # 4. (X, Y)
    rf"\({_PN},\s*+{_PN}\)",
    # 5. X to|-|– Y second(s)
    rf"{_PN}\s*+(?:to|-|\u2013)\s*+{_PN}\s*+seconds?",
))


def _paper_count(text: str) -> int:
    return sum(sum(1 for _ in p.finditer(text)) for p in PAPER_PATTERNS)


def count_citations(text: str | None, mode: str = "distinct") -> int:
    """Number of citations in ``text``.

    ``distinct``: distinct valid spans (``distinct_spans``). ``paper``: the paper plugin's
    summed pattern counts (``PAPER_PATTERNS``), double counts included.
    """
    if mode not in ("distinct", "paper"):
        raise ValueError(f"unknown citation count mode {mode!r} (expected 'distinct' or 'paper')")
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    if not isinstance(text, str):
        return 0
    return len(distinct_spans(text)) if mode == "distinct" else _paper_count(text)


def spans_to_rows(spans: Sequence[Span]) -> list[dict]:
    """JSON-friendly rows ``{start, end, valid}`` for output files."""
    return [{"start": s.start, "end": s.end, "valid": s.valid} for s in spans]
