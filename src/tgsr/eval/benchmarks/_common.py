"""Helpers shared by the benchmark loaders: metadata lookup, audio paths, record errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Sequence

from ...errors import RecordError
from ...records import LETTERS, FieldError, QAExample


def find_meta(data_root: str | Path | None, meta: str | Path | None, names: Sequence[str], benchmark: str) -> Path:
    """The metadata file: ``meta`` if given, else the first of ``names`` under ``data_root``."""
    if meta is not None:
        p = Path(meta)
        if not p.is_file():
            raise RecordError(p, None, None, f"{benchmark} metadata file not found")
        return p
    if data_root is None:
        raise RecordError(None, None, None, f"{benchmark}: give --data-root or --meta")
    root = Path(data_root)
    for name in names:
        if (root / name).is_file():
            return root / name
    raise RecordError(root, None, None, f"{benchmark}: no metadata file found (looked for {', '.join(names)}); "
                                        "pass it with --meta")


def audio_under(root: Path, relative: str, *alternatives: str) -> str:
    """Absolute audio path under ``root``; the first candidate that exists, else the first one.

    A missing file is not an error here: the run loop records it per item and continues.
    """
    candidates = [relative, *alternatives]
    paths = [(root / c.removeprefix("./")).resolve() for c in candidates]
    for p in paths:
        if p.exists():
            return str(p)
    return str(paths[0])


def load_json_records(path: Path) -> Iterator[tuple[int, dict]]:
    """(record number or line, object) from a JSON list or a JSON Lines file."""
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise RecordError(path, e.lineno, None, f"invalid JSON: {e.msg}") from None
        for i, obj in enumerate(data):
            if not isinstance(obj, dict):
                raise RecordError(path, None, f"[{i}]", f"expected an object, got {type(obj).__name__}")
            yield i + 1, obj
        return
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise RecordError(path, lineno, None, f"invalid JSON: {e.msg} (column {e.colno})") from None
        if not isinstance(obj, dict):
            raise RecordError(path, lineno, None, f"expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj


def text_choice_example(path: Path, where: int, rec: dict, *, id_field: str, answer_field: str,
                        audio: str, breakdown: dict, official: dict, **extra) -> QAExample:
    """A QAExample from a record whose gold answer is an option's text (first match wins)."""
    choices = rec.get("choices")
    answer = rec.get(answer_field)
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise RecordError(path, where, "choices", "expected a list of strings")
    if answer not in choices:
        raise RecordError(path, where, answer_field, f"{answer!r} is not one of the choices")
    data = {"id": str(rec.get(id_field, "")), "audio": audio, "question": rec.get("question"),
            "choices": choices, "answer": LETTERS[choices.index(answer)],
            "meta": {"breakdown": breakdown, "official": official}, **extra}
    try:
        return QAExample.from_dict(data)
    except FieldError as e:
        raise RecordError(path, where, e.field, e.reason) from None


def check_unique_ids(path: Path, examples: Sequence) -> None:
    seen: set[str] = set()
    for ex in examples:
        if ex.id in seen:
            raise RecordError(path, None, "id", f"duplicate id {ex.id!r}")
        seen.add(ex.id)
