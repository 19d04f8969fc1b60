"""A timestamp test set of STA examples: ``DATA_ROOT/test/sta.jsonl`` (or ``DATA_ROOT/sta.jsonl``)."""

from __future__ import annotations

from pathlib import Path

from ...records import StaExample, read_jsonl
from ._common import check_unique_ids, find_meta

META_NAMES = ("test/sta.jsonl", "sta.jsonl")


def load(data_root: str | Path | None, meta: str | Path | None = None) -> list[StaExample]:
    path = find_meta(data_root, meta, META_NAMES, "sta")
    out = read_jsonl(path, StaExample).records
    check_unique_ids(path, out)
    return out
