"""Per-item result files of the analyses: append-only JSONL, the last record of an id wins."""

from __future__ import annotations

from pathlib import Path

from ..records import iter_jsonl_dicts


def latest_records(path: str | Path) -> dict[str, dict]:
    """id -> the last record written for it (a retried item replaces its failed attempt)."""
    path = Path(path)
    out: dict[str, dict] = {}
    if not path.exists():
        return out
    for _, obj in iter_jsonl_dicts(path):
        if isinstance(obj, dict) and isinstance(obj.get("id"), str):
            out[obj["id"]] = obj
    return out


def finished_ids(records: dict[str, dict]) -> set[str]:
    """Items that need no new attempt: their last record is not a failure. Failed items are
    retried on resume, so a transient failure (a judge endpoint down) is not kept for good."""
    return {i for i, r in records.items() if "error" not in r}


def settings_diff(old: dict, new: dict) -> str:
    """What changed between two settings dicts, e.g. ``mask: 'silence' -> 'noise'``."""
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
                     for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k))
