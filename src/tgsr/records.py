"""Typed records for every file format tgsr reads and writes, with located errors.

Each record is a dataclass with ``from_dict`` (validates, raises a ``FieldError`` naming
the field) and ``to_dict``. ``read_jsonl`` turns a ``FieldError`` into a ``RecordError``
that names the file and the line, then either stops or skips and reports.

Audio paths in a JSONL file are relative to that file's folder unless absolute. Readers
resolve them to absolute paths; writers store them relative to the output folder when
the audio lives under it, so a corpus folder can be moved as a whole.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Generic, Iterable, Iterator, Literal, TypeVar

from .errors import RecordError

LETTERS = "abcdefghijklmnopqrstuvwxyz"


class FieldError(ValueError):
    """A bad value in one field of a record; ``read_jsonl`` adds file and line."""

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"field '{field}': {reason}")


# ---------------------------------------------------------------- field validators

def _get(d: dict, name: str, default: Any = ..., *, cls: str = "record") -> Any:
    if name in d and d[name] is not None:
        return d[name]
    if default is ...:
        raise FieldError(name, f"missing in {cls}")
    return default


def _str(d: dict, name: str, default: Any = ..., *, nonempty: bool = False) -> Any:
    v = _get(d, name, default)
    if v is default and default is not ...:
        return v
    if not isinstance(v, str):
        raise FieldError(name, f"expected a string, got {type(v).__name__}")
    if nonempty and not v.strip():
        raise FieldError(name, "must not be empty")
    return v


def _num(d: dict, name: str, default: Any = ..., *, minimum: float | None = None) -> Any:
    v = _get(d, name, default)
    if v is default and default is not ...:
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise FieldError(name, f"expected a number, got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v):
        raise FieldError(name, f"must be finite, got {v}")
    if minimum is not None and v < minimum:
        raise FieldError(name, f"must be >= {minimum}, got {v}")
    return v


def _span_list(d: dict, name: str) -> list[tuple[float, float]]:
    raw = _get(d, name, [])
    if not isinstance(raw, list):
        raise FieldError(name, "expected a list of [start, end] pairs")
    out = []
    for i, pair in enumerate(raw):
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in pair)):
            raise FieldError(f"{name}[{i}]", "expected a [start, end] pair of numbers")
        s, e = float(pair[0]), float(pair[1])
        if not (math.isfinite(s) and math.isfinite(e)) or s < 0 or e < s:
            raise FieldError(f"{name}[{i}]", f"invalid span [{s}, {e}]: need 0 <= start <= end")
        out.append((s, e))
    return out


def _check_interval(start: float, end: float, prefix: str = "") -> None:
    if end < start:
        raise FieldError(f"{prefix}end", f"end {end} is before start {start}")


# ---------------------------------------------------------------- records

@dataclass
class Word:
    text: str
    start: float
    end: float
    speaker: str | None = None
    confidence: float | None = None

    @classmethod
    def from_dict(cls, d: dict, prefix: str = "") -> "Word":
        if not isinstance(d, dict):
            raise FieldError(prefix.rstrip(".") or "word", "expected an object")
        try:
            w = cls(text=_str(d, "text"), start=_num(d, "start", minimum=0.0), end=_num(d, "end", minimum=0.0),
                    speaker=_str(d, "speaker", None), confidence=_num(d, "confidence", None))
            _check_interval(w.start, w.end)
        except FieldError as e:
            raise FieldError(prefix + e.field, e.reason) from None
        return w


@dataclass
class Utterance:
    text: str
    start: float
    end: float
    speaker: str | None = None

    @classmethod
    def from_dict(cls, d: dict, prefix: str = "") -> "Utterance":
        if not isinstance(d, dict):
            raise FieldError(prefix.rstrip(".") or "utterance", "expected an object")
        try:
            u = cls(text=_str(d, "text"), start=_num(d, "start", minimum=0.0), end=_num(d, "end", minimum=0.0),
                    speaker=_str(d, "speaker", None))
            _check_interval(u.start, u.end)
        except FieldError as e:
            raise FieldError(prefix + e.field, e.reason) from None
        return u


@dataclass
class ClipWords:
    """Word timings of one clip (``words.jsonl``): words and, when known, utterances/turns."""

    AUDIO_FIELDS: ClassVar[tuple[str, ...]] = ("audio",)

    clip_id: str
    audio: str
    duration: float
    words: list[Word]
    utterances: list[Utterance] = field(default_factory=list)
    source: str = ""
    backend: str = ""

    @classmethod
    def from_dict(cls, d: dict) -> "ClipWords":
        words_raw = _get(d, "words")
        if not isinstance(words_raw, list):
            raise FieldError("words", "expected a list")
        utts_raw = _get(d, "utterances", [])
        if not isinstance(utts_raw, list):
            raise FieldError("utterances", "expected a list")
        return cls(
            clip_id=_str(d, "clip_id", nonempty=True), audio=_str(d, "audio", nonempty=True),
            duration=_num(d, "duration", minimum=0.0),
            words=[Word.from_dict(w, f"words[{i}].") for i, w in enumerate(words_raw)],
            utterances=[Utterance.from_dict(u, f"utterances[{i}].") for i, u in enumerate(utts_raw)],
            source=_str(d, "source", ""), backend=_str(d, "backend", ""),
        )


@dataclass
class StaExample:
    """A Stage-1 Supervised Timestamp Alignment example: where is ``phrase`` in ``audio``?"""

    AUDIO_FIELDS: ClassVar[tuple[str, ...]] = ("audio",)

    id: str
    audio: str
    phrase: str
    start: float
    end: float
    source: str = ""
    clip_id: str = ""
    duration: float | None = None
    granularity: Literal["phrase", "turn", "event"] = "phrase"   # event: a non-speech sound (tgsr.data.lab)

    @classmethod
    def from_dict(cls, d: dict) -> "StaExample":
        ex = cls(
            id=_str(d, "id", nonempty=True), audio=_str(d, "audio", nonempty=True),
            phrase=_str(d, "phrase", nonempty=True),
            start=_num(d, "start", minimum=0.0), end=_num(d, "end", minimum=0.0),
            source=_str(d, "source", ""), clip_id=_str(d, "clip_id", ""),
            duration=_num(d, "duration", None, minimum=0.0), granularity=_str(d, "granularity", "phrase"),
        )
        _check_interval(ex.start, ex.end)
        if ex.granularity not in ("phrase", "turn", "event"):
            raise FieldError("granularity", f"expected 'phrase', 'turn' or 'event', got {ex.granularity!r}")
        if ex.duration is not None and ex.end > ex.duration + 1e-6:
            raise FieldError("end", f"end {ex.end} is past the clip duration {ex.duration}")
        return ex


@dataclass
class QAExample:
    """A multiple-choice question about one clip. ``answer`` is the gold letter (a, b, ...)."""

    AUDIO_FIELDS: ClassVar[tuple[str, ...]] = ("audio",)

    id: str
    audio: str
    question: str
    choices: list[str]
    answer: str
    duration: float | None = None
    answer_text: str = ""
    evidence: list[tuple[float, float]] = field(default_factory=list)
    task: str = ""
    category: str = ""
    source: str = ""
    split: str = ""
    rationale: str = ""            # grounded rationale (with timestamps), for SFT warm starts
    rationale_plain: str = ""      # the same reasoning without timestamps (the paper's SFT baseline)
    meta: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> "QAExample":
        choices = _get(d, "choices")
        if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) for c in choices):
            raise FieldError("choices", "expected a list of at least two strings")
        if len(choices) > len(LETTERS):
            raise FieldError("choices", f"at most {len(LETTERS)} choices are supported")
        answer = _str(d, "answer", nonempty=True).strip().strip("()").lower()
        if len(answer) != 1 or answer not in LETTERS[: len(choices)]:
            raise FieldError("answer", f"expected a letter a..{LETTERS[len(choices) - 1]}, got {d['answer']!r}")
        answer_text = _str(d, "answer_text", "") or choices[LETTERS.index(answer)]
        if answer_text != choices[LETTERS.index(answer)]:
            raise FieldError("answer_text",
                             f"{answer_text!r} is not choice ({answer}) {choices[LETTERS.index(answer)]!r}")
        meta = _get(d, "meta", {})
        if not isinstance(meta, dict):
            raise FieldError("meta", "expected an object")
        ex = cls(
            id=_str(d, "id", nonempty=True), audio=_str(d, "audio", nonempty=True),
            question=_str(d, "question", nonempty=True), choices=list(choices), answer=answer,
            duration=_num(d, "duration", None, minimum=0.0), answer_text=answer_text,
            evidence=_span_list(d, "evidence"), task=_str(d, "task", ""), category=_str(d, "category", ""),
            source=_str(d, "source", ""), split=_str(d, "split", ""),
            rationale=_str(d, "rationale", ""), rationale_plain=_str(d, "rationale_plain", ""), meta=meta,
        )
        if ex.duration is not None:
            for i, (_, e) in enumerate(ex.evidence):
                if e > ex.duration + 1e-6:
                    raise FieldError(f"evidence[{i}]", f"span ends at {e}, past the clip duration {ex.duration}")
        return ex

    @property
    def answer_index(self) -> int:
        return LETTERS.index(self.answer)


@dataclass
class Prediction:
    """One model output on one item, as written by ``tgsr eval run``."""

    id: str
    completion: str | None
    pred_letter: str | None = None
    gold_letter: str | None = None
    correct: bool | None = None
    error: str | None = None       # set when the item could not be run (e.g. unreadable audio)
    parse_error: str | None = None  # set when no option could be extracted from the completion
    condition: str = "own"          # listening control: own | swapped | silence
    meta: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> "Prediction":
        completion = d.get("completion")
        if completion is not None and not isinstance(completion, str):
            raise FieldError("completion", "expected a string or null")
        correct = d.get("correct")
        if correct is not None and not isinstance(correct, bool):
            raise FieldError("correct", "expected true, false or null")
        meta = d.get("meta") or {}
        if not isinstance(meta, dict):
            raise FieldError("meta", "expected an object")
        return cls(
            id=_str(d, "id", nonempty=True), completion=completion,
            pred_letter=_str(d, "pred_letter", None), gold_letter=_str(d, "gold_letter", None),
            correct=correct, error=_str(d, "error", None), parse_error=_str(d, "parse_error", None),
            condition=_str(d, "condition", "own"), meta=meta,
        )


@dataclass
class ManifestItem:
    """One clip to align (``manifest.jsonl``), as written by ``tgsr data import``.

    ``transcript`` is the known text when the corpus has one (needed by forced alignment);
    ``utterances`` are known turns inside the clip (speaker, start, end), so words can be
    given speakers and phrases never cross a turn.
    """

    AUDIO_FIELDS: ClassVar[tuple[str, ...]] = ("audio",)

    id: str
    audio: str
    transcript: str | None = None
    speaker: str | None = None
    language: str | None = None
    source: str = ""
    utterances: list[Utterance] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> "ManifestItem":
        utts_raw = _get(d, "utterances", [])
        if not isinstance(utts_raw, list):
            raise FieldError("utterances", "expected a list")
        meta = _get(d, "meta", {})
        if not isinstance(meta, dict):
            raise FieldError("meta", "expected an object")
        return cls(
            id=_str(d, "id", nonempty=True), audio=_str(d, "audio", nonempty=True),
            transcript=_str(d, "transcript", None), speaker=_str(d, "speaker", None),
            language=_str(d, "language", None), source=_str(d, "source", ""),
            utterances=[Utterance.from_dict(u, f"utterances[{i}].") for i, u in enumerate(utts_raw)], meta=meta,
        )


def record_to_dict(rec: Any) -> dict:
    d = asdict(rec)
    if "evidence" in d:
        d["evidence"] = [list(p) for p in d["evidence"]]
    return d


# ---------------------------------------------------------------- JSONL IO

R = TypeVar("R")


@dataclass
class LoadResult(Generic[R]):
    records: list[R]
    errors: list[RecordError]
    path: str

    @property
    def skipped(self) -> int:
        return len(self.errors)

    def __iter__(self) -> Iterator[R]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)


def _resolve_audio(rec: Any, base: Path) -> None:
    for name in getattr(rec, "AUDIO_FIELDS", ()):
        value = getattr(rec, name)
        if value and not os.path.isabs(value):
            setattr(rec, name, str((base / value).resolve()))


def _relativize_audio(d: dict, rec: Any, base: Path) -> None:
    for name in getattr(rec, "AUDIO_FIELDS", ()):
        value = d.get(name)
        if value and os.path.isabs(value):
            try:
                d[name] = Path(value).resolve().relative_to(base.resolve()).as_posix()
            except ValueError:
                pass  # outside the output folder: keep absolute


def iter_jsonl_dicts(path: str | Path) -> Iterator[tuple[int, dict | RecordError]]:
    """Yield (line number, parsed object or RecordError) for each non-blank line."""
    path = Path(path)
    # utf-8-sig: files saved by some editors start with a byte-order mark.
    with open(path, "r", encoding="utf-8-sig", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                yield lineno, RecordError(path, lineno, None, f"invalid JSON: {e.msg} (column {e.colno})")
                continue
            except RecursionError:  # pathologically nested arrays/objects
                yield lineno, RecordError(path, lineno, None, "invalid JSON: nested too deeply")
                continue
            if not isinstance(obj, dict):
                yield lineno, RecordError(path, lineno, None, f"expected a JSON object, got {type(obj).__name__}")
                continue
            yield lineno, obj


class DuplicateRecord(RecordError):
    """A record whose id an earlier record already has (``FirstSeen``)."""


class FirstSeen:
    """tgsr's one duplicate policy: the first record of an id is kept; every later record with
    that id is a ``RecordError`` naming its file and line and where the kept one is, so it is
    reported and counted like any unusable line, never used twice and never dropped silently.
    One instance spans several files (a merge)."""

    def __init__(self, name: str = "id"):
        self.field = name
        self._first: dict[str, str] = {}

    def check(self, key: str, path: str | Path, line: int | None) -> RecordError | None:
        where = f"{path}:{line}" if line is not None else str(path)
        if key not in self._first:
            self._first[key] = where
            return None
        return DuplicateRecord(path, line, self.field,
                               f"duplicate {self.field} {key!r}: the first, at {self._first[key]}, is kept")


def read_jsonl(path: str | Path, cls: Callable[[dict], R] | type, *,
               on_error: Literal["raise", "skip"] = "raise", resolve_audio: bool = True,
               unique: str | FirstSeen | None = None) -> LoadResult:
    """Read records of type ``cls`` (a record class, or any dict -> record callable).

    ``on_error="raise"`` stops at the first malformed line with a ``RecordError`` naming the
    file, the line and the field. ``"skip"`` keeps going and returns every error in
    ``LoadResult.errors``; ``LoadResult.skipped`` is their count. ``unique`` (a field name, or a
    ``FirstSeen`` shared across files) applies the duplicate policy: a repeated id is an error.
    """
    seen = FirstSeen(unique) if isinstance(unique, str) else unique
    path = Path(path)
    if not path.exists():
        raise RecordError(path, None, None, "file not found")
    parse = cls.from_dict if hasattr(cls, "from_dict") else cls
    records, errors = [], []
    for lineno, obj in iter_jsonl_dicts(path):
        if isinstance(obj, RecordError):
            err = obj
        else:
            try:
                rec = parse(obj)
            except FieldError as e:
                err = RecordError(path, lineno, e.field, e.reason)
            else:
                err = seen.check(getattr(rec, seen.field), path, lineno) if seen is not None else None
                if err is None:
                    if resolve_audio:
                        _resolve_audio(rec, path.parent)
                    records.append(rec)
                    continue
        if on_error == "raise":
            raise err
        errors.append(err)
    return LoadResult(records, errors, str(path))


def write_jsonl(path: str | Path, records: Iterable[Any], *, append: bool = False) -> int:
    """Write records (dataclasses or dicts), one JSON object per line. Returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "a" if append else "w", encoding="utf-8") as fh:
        for rec in records:
            d = rec if isinstance(rec, dict) else record_to_dict(rec)
            if not isinstance(rec, dict):
                _relativize_audio(d, rec, path.parent)
            fh.write(json.dumps(d, ensure_ascii=False) + "\n")
            n += 1
    return n


def append_jsonl(path: str | Path, record: Any) -> None:
    """Append one record and flush, so a killed job loses at most the line being written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    d = record if isinstance(record, dict) else record_to_dict(record)
    if not isinstance(record, dict):
        _relativize_audio(d, record, path.parent)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(d, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def completed_ids(path: str | Path, key: str = "id") -> set[str]:
    """IDs already present in an output JSONL (for resuming). A torn last line is ignored."""
    path = Path(path)
    done: set[str] = set()
    if not path.exists():
        return done
    for _, obj in iter_jsonl_dicts(path):
        if isinstance(obj, dict) and isinstance(obj.get(key), str):
            done.add(obj[key])
    return done


def repair_torn_tail(path: str | Path) -> bool:
    """Drop a partial last line left by a crash mid-write. Returns True if it cut anything."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return False
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return False
    cut = data.rfind(b"\n") + 1
    with open(path, "r+b") as fh:
        fh.truncate(cut)
    return True


__all__ = [
    "LETTERS", "FieldError", "Word", "Utterance", "ClipWords", "StaExample", "QAExample", "Prediction",
    "ManifestItem",
    "DuplicateRecord", "FirstSeen", "LoadResult", "read_jsonl", "write_jsonl", "append_jsonl", "completed_ids",
    "repair_torn_tail",
    "iter_jsonl_dicts", "record_to_dict",
]
