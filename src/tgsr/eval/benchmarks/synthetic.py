"""The test split of ``tgsr data synth``: ``DATA_ROOT/test/qa.jsonl`` (or ``DATA_ROOT/qa.jsonl``)."""

from __future__ import annotations

from pathlib import Path

from ...records import QAExample, read_jsonl
from ._common import check_unique_ids, find_meta

META_NAMES = ("test/qa.jsonl", "qa.jsonl")


def load(data_root: str | Path | None, meta: str | Path | None = None) -> list[QAExample]:
    path = find_meta(data_root, meta, META_NAMES, "synthetic")
    out = read_jsonl(path, QAExample).records  # audio resolved against the file's folder
    for ex in out:
        ex.meta = {**ex.meta, "breakdown": {"task": ex.task, "category": ex.category}}
    check_unique_ids(path, out)
    return out
