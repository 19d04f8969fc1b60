"""A generic manifest: JSONL or CSV rows with an audio path and an optional transcript.

Recognised columns: audio (``audio``, ``path``, ``audio_path``, ``file``), transcript
(``transcript``, ``text``, ``sentence``), optional ``id``, ``speaker``, ``language``.
Relative audio paths are relative to the manifest file. ``--root`` is a manifest file or
a folder whose ``*.jsonl``/``*.csv`` files are all read.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ...errors import RecordError
from ...records import FieldError, ManifestItem, Utterance, iter_jsonl_dicts
from .base import ImportResult

AUDIO_KEYS = ("audio", "path", "audio_path", "file", "audio_filepath")
TEXT_KEYS = ("transcript", "text", "sentence")


def import_manifest(root: str | Path, *, check_audio: bool = True, **_) -> ImportResult:
    root = Path(root)
    result = ImportResult()
    files = [root] if root.is_file() else sorted([*root.glob("*.jsonl"), *root.glob("*.csv")])
    if not files:
        result.error("no manifest file (.jsonl or .csv) found", path=root)
        return result
    for f in files:
        rows = _jsonl_rows(f, result) if f.suffix.lower() == ".jsonl" else _csv_rows(f)
        for line, row in rows:
            try:
                item = _item(row, f, line)
            except FieldError as e:
                result.error(f"field '{e.field}': {e.reason}", path=f, line=line)
                continue
            result.add(item, check_audio=check_audio, path=f, line=line)
    return result


def _jsonl_rows(path: Path, result: ImportResult):
    for line, obj in iter_jsonl_dicts(path):
        if isinstance(obj, RecordError):
            result.error(obj.reason, path=path, line=line)
            continue
        yield line, obj


def _csv_rows(path: Path):
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        reader = csv.DictReader(fh)
        for row in reader:
            yield reader.line_num, {k.strip().lower(): v for k, v in row.items() if k}


def _first(row: dict, keys: tuple[str, ...]):
    for k in keys:
        if row.get(k) not in (None, ""):
            return row[k]
    return None


def _item(row: dict, path: Path, line: int) -> ManifestItem:
    audio = _first(row, AUDIO_KEYS)
    if not isinstance(audio, str):
        raise FieldError("audio", f"missing (expected one of {', '.join(AUDIO_KEYS)})")
    audio_path = Path(audio).expanduser()
    if not audio_path.is_absolute():
        audio_path = path.parent / audio_path
    text = _first(row, TEXT_KEYS)
    if text is not None and not isinstance(text, str):
        raise FieldError("transcript", "expected a string")
    clip_id = row.get("id") or f"{path.stem}-{line}-{audio_path.stem}"
    utts = row.get("utterances") or []
    if not isinstance(utts, list):
        raise FieldError("utterances", "expected a list")
    utterances = [Utterance.from_dict(u, f"utterances[{i}].") for i, u in enumerate(utts)]
    meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
    return ManifestItem(id=str(clip_id), audio=str(audio_path.resolve()), transcript=(text or "").strip() or None,
                        speaker=row.get("speaker") or None, language=row.get("language") or None,
                        source=str(row.get("source") or "manifest"), utterances=utterances, meta=meta)
