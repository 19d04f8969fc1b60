"""Pieces every Stage-2 question builder shares: options, summaries, error rows, word timings.

- ``RotatedOptions``: a label set in one fixed cyclic order (e.g. MELD's seven emotions),
  started at whichever label puts the gold answer on the letter a balanced schedule asks for,
  so options keep their order and letters carry no information.
- ``QaSummary``: what a run wrote and every row it could not use, by reason.
- ``WordIndex``: ``words.jsonl`` (``tgsr data align`` output) looked up by clip id or audio
  path, for grounded rationales that cite where the evidence is spoken.
"""

from __future__ import annotations

import json
import math
import os
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ...errors import AudioError, RecordError
from ...records import LETTERS, ClipWords, FirstSeen, QAExample, Word, read_jsonl, write_jsonl
from ..questions import Claim, Draft, LetterSchedule, cite, rationales

# names how ``seeded_rng`` keys a generator, for run settings and cache keys that must change if it does
SEEDED_RNG_KEY = "crc32(key)"


def seeded_rng(seed: int, key: str) -> np.random.Generator:
    """A generator that depends only on ``seed`` and the whole ``key`` (not on processing order)."""
    return np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])


class RotatedOptions:
    """Options in a fixed cyclic order, rotated so the gold letter follows a balanced schedule.

    With labels (l0 .. l6) and a gold label that must land on letter k, the options are the
    same cycle started k places before the gold: the relative order never changes, and over
    every block of ``len(labels)`` questions each letter is the answer exactly once.
    """

    def __init__(self, labels: Sequence[str], rng: np.random.Generator):
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ValueError("need at least two distinct labels")
        self.labels = tuple(labels)
        self._schedule = LetterSchedule(rng, len(self.labels))

    def arrange(self, gold: str) -> tuple[list[str], str]:
        """(choices, gold letter) for one question whose answer is ``gold``."""
        n = len(self.labels)
        k = self._schedule.next()
        start = (self.labels.index(gold) - k) % n
        choices = [self.labels[(start + i) % n] for i in range(n)]
        return choices, LETTERS[k]


@dataclass
class QaSummary:
    """Counts for one ``tgsr data qa`` run; every row that gave no question has a reason."""

    source: str
    out: str = ""
    errors_path: str = ""
    rows: int = 0                     # input rows (utterances, items) read
    questions: int = 0
    rationales: int = 0               # questions with a grounded rationale (and its plain twin)
    problems: int = 0                 # error rows written
    by_task: Counter = field(default_factory=Counter)
    letters: dict = field(default_factory=dict)      # task -> Counter of gold letters
    reasons: Counter = field(default_factory=Counter)
    notes: dict = field(default_factory=dict)        # source-specific counts

    def count(self, ex: QAExample) -> None:
        self.questions += 1
        self.by_task[ex.task] += 1
        self.letters.setdefault(ex.task, Counter())[ex.answer] += 1
        if ex.rationale:
            self.rationales += 1

    def line(self) -> str:
        tasks = ", ".join(f"{t or 'no task'} {n}" for t, n in sorted(self.by_task.items())) or "none"
        extra = "".join(f", {k.replace('_', ' ')} {v}" for k, v in self.notes.items())
        return (f"{self.source}: {self.questions} questions ({tasks}) from {self.rows} rows -> {self.out}; "
                f"{self.rationales} with grounded rationales{extra}; "
                f"{self.problems} problems -> {self.errors_path}")

    def letter_line(self) -> str:
        parts = []
        for task, c in sorted(self.letters.items()):
            parts.append(f"{task or 'no task'}: " + " ".join(f"{k}={c[k]}" for k in sorted(c)))
        return "gold letters: " + ("; ".join(parts) if parts else "none")

    def as_dict(self) -> dict:
        return {"source": self.source, "out": self.out, "errors": self.errors_path, "rows": self.rows,
                "questions": self.questions, "rationales": self.rationales, "problems": self.problems,
                "by_task": dict(self.by_task), "letters": {t: dict(c) for t, c in self.letters.items()},
                "reasons": dict(self.reasons), **self.notes}


def default_errors_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".errors.jsonl")


def error_row(reason: str, *, path: str | Path | None = None, line: int | None = None, field: str | None = None,
              item: str | None = None, audio: str | Path | None = None, stage: str = "") -> dict:
    return {"path": None if path is None else str(path), "line": line, "field": field, "item": item,
            "audio": None if audio is None else str(audio), "stage": stage, "reason": reason}


def from_record_error(err: RecordError, stage: str) -> dict:
    return error_row(err.reason, path=err.path, line=err.line, field=err.field, stage=stage)


_VALUES = re.compile(r"'[^']*'|\"[^\"]*\"|\S*/\S*|\d+(?:\.\d+)?")


def reason_key(reason: str) -> str:
    """A short bucket for the summary: the reason with its values (quotes, paths, numbers) left out."""
    return " ".join(_VALUES.sub("_", reason).split())[:60]


def finish(summary: QaSummary, examples: list[QAExample], errors: list[dict], out: str | Path,
           errors_path: str | Path | None) -> QaSummary:
    """Write ``out`` and the errors file (both whole: a rerun gives the same files), count them."""
    out = Path(out)
    errors_path = Path(errors_path) if errors_path else default_errors_path(out)
    seen = FirstSeen("id")  # tgsr's duplicate policy: a repeated question id is a problem, the first kept
    kept = []
    for ex in examples:
        repeat = seen.check(ex.id, ex.meta.get("csv") or ex.meta.get("file") or "output",
                            ex.meta.get("line") or ex.meta.get("row"))
        if repeat is not None:
            errors.append(error_row(repeat.reason, path=repeat.path, line=repeat.line, field="id", item=ex.id,
                                    stage="output"))
            continue
        kept.append(ex)
    write_jsonl(out, kept)
    write_jsonl(errors_path, errors)
    summary.out, summary.errors_path = str(out), str(errors_path)
    for ex in kept:
        summary.count(ex)
    summary.problems = len(errors)
    summary.reasons = Counter(reason_key(e["reason"]) for e in errors)
    return summary


def measured_duration(path: str | Path) -> float:
    """Seconds of audio in ``path``: from the header when soundfile reads it, else decoded."""
    from ...audio import SAMPLE_RATE, duration_of, load_audio

    p = Path(path)
    if not p.is_file():
        raise AudioError(p, "file not found")
    try:
        return duration_of(p)
    except AudioError:
        return load_audio(p).size / SAMPLE_RATE  # containers (mp4 ...) via ffmpeg; raises when unusable


def clip_limit(duration: float) -> float:
    """The last 10 ms grid point inside a clip (spans are written with 2 decimals)."""
    return math.floor(duration * 100 + 1e-6) / 100


# ---------------------------------------------------------------- word timings

class WordIndex:
    """Word timings of ``words.jsonl`` by clip id and by resolved audio path."""

    def __init__(self, clips: Iterable[ClipWords] = (), errors: Sequence[RecordError] = ()):
        self.by_id: dict[str, ClipWords] = {}
        self.by_audio: dict[str, ClipWords] = {}
        for c in clips:
            self.by_id.setdefault(c.clip_id, c)
            self.by_audio.setdefault(os.path.realpath(c.audio), c)
        self.errors = list(errors)

    @classmethod
    def load(cls, path: str | Path | None) -> "WordIndex":
        if path is None:
            return cls()
        loaded = read_jsonl(path, ClipWords, on_error="skip")
        return cls(loaded.records, loaded.errors)

    def __len__(self) -> int:
        return len(self.by_id)

    def get(self, clip_id: str | None = None, audio: str | Path | None = None) -> ClipWords | None:
        if clip_id and clip_id in self.by_id:
            return self.by_id[clip_id]
        if audio:
            return self.by_audio.get(os.path.realpath(audio))
        return None


def words_between(words: Sequence[Word], start: float, end: float) -> list[Word]:
    """Words whose midpoint lies in [start, end]."""
    return [w for w in words if start <= (w.start + w.end) / 2 <= end]


def spoken_span(words: Sequence[Word], offset: float, duration: float) -> tuple[float, float] | None:
    """The 10 ms-grid span from the first word's start to the last word's end, shifted by
    ``offset`` (where the words' clip starts inside a longer one) and kept inside ``duration``."""
    if not words:
        return None
    s, e = cite(offset + min(w.start for w in words), offset + max(w.end for w in words), duration)
    return (s, e) if e > s else None


def quoted(text: str) -> str:
    """Text safe to put inside double quotes in a question or rationale."""
    return " ".join(text.replace('"', "'").split())


def grounded_pair(claims: list[Claim], choices: list[str], letter: str, task: str = "qa") -> tuple[str, str]:
    """(grounded rationale, plain twin) from claims, in tgsr's citation format (``tgsr.spans``)."""
    return rationales(Draft(task, "", choices[LETTERS.index(letter)], [], claims), choices, letter)


def load_rows_json(path: Path) -> Iterable[tuple[int, dict | RecordError]]:
    """(line or record number, object or RecordError) from a JSON list or a JSON Lines file."""
    from ...records import iter_jsonl_dicts

    with open(path, "r", encoding="utf-8-sig", errors="replace") as fh:
        head = fh.read(4096).lstrip()
    if not head.startswith("["):
        yield from iter_jsonl_dicts(path)
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig", errors="replace"))
    except json.JSONDecodeError as e:
        yield e.lineno, RecordError(path, e.lineno, None, f"invalid JSON: {e.msg}")
        return
    for i, obj in enumerate(data, start=1):  # a JSON list: the record number stands for the line
        yield i, obj if isinstance(obj, dict) else RecordError(path, i, None,
                                                                f"expected a JSON object, got {type(obj).__name__}")


__all__ = ["RotatedOptions", "QaSummary", "WordIndex", "error_row", "from_record_error", "finish",
           "measured_duration", "clip_limit", "words_between", "spoken_span", "quoted", "grounded_pair",
           "seeded_rng", "default_errors_path", "load_rows_json", "reason_key"]
