"""``tgsr data merge``: several record files of one kind (one per corpus) into one training file.

Relative audio paths are resolved against each input's folder and written relative to the
output's (or absolute), so files made in different folders merge without breaking paths.
Malformed lines and repeated ids (tgsr's one duplicate policy, ``tgsr.records.FirstSeen``: the
first is kept) go to the errors file by file and line; for
question files, a row whose ``split`` is ``test`` is refused, since merged files are
training data and the test splits are tgsr's benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..errors import TgsrError
from ..records import (
    ClipWords,
    FirstSeen,
    ManifestItem,
    QAExample,
    StaExample,
    iter_jsonl_dicts,
    read_jsonl,
    write_jsonl,
)

KINDS = {"qa": QAExample, "sta": StaExample, "words": ClipWords, "manifest": ManifestItem}
REFUSED_SPLITS = ("test",)


@dataclass
class MergeSummary:
    out: str
    errors_path: str
    records: int = 0
    by_input: dict = field(default_factory=dict)   # input path -> records kept from it
    problems: int = 0

    def line(self) -> str:
        parts = ", ".join(f"{Path(p).name} {n}" for p, n in self.by_input.items())
        return f"{self.records} records ({parts}) -> {self.out}; {self.problems} problems -> {self.errors_path}"


def merge_records(inputs: Sequence[str | Path], out: str | Path, kind: str, *,
                  errors_path: str | Path | None = None) -> MergeSummary:
    if kind not in KINDS:
        raise TgsrError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    out = Path(out)
    errors_path = Path(errors_path) if errors_path else out.with_name(out.stem + ".errors.jsonl")
    if out.resolve() in {Path(p).resolve() for p in inputs}:
        raise TgsrError(f"{out}: the output is also an input")
    summary = MergeSummary(str(out), str(errors_path))
    seen = FirstSeen("clip_id" if kind == "words" else "id")  # tgsr's duplicate policy, across all inputs
    kept, errors = [], []
    for path in map(Path, inputs):
        if not path.is_file():
            raise TgsrError(f"{path}: input file not found")
        loaded = read_jsonl(path, KINDS[kind], on_error="skip", unique=seen)
        errors += [{"path": str(e.path), "line": e.line, "field": e.field, "reason": e.reason} for e in loaded.errors]
        bad = {e.line for e in loaded.errors}
        lines = [ln for ln, _ in iter_jsonl_dicts(path) if ln not in bad]  # the line of each record read
        n = 0
        for line, rec in zip(lines, loaded.records):
            if kind == "qa" and rec.split in REFUSED_SPLITS:
                errors.append({"path": str(path), "line": line, "field": "split", "item": rec.id,
                               "reason": f"split {rec.split!r} is evaluation data, not training data"})
                continue
            kept.append(rec)
            n += 1
        summary.by_input[str(path)] = n
    write_jsonl(out, kept)
    write_jsonl(errors_path, errors)
    summary.records, summary.problems = len(kept), len(errors)
    return summary


__all__ = ["KINDS", "MergeSummary", "merge_records"]
