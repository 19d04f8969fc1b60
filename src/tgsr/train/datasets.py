"""Training rows from tgsr's JSONL files, with every skipped item reported.

- STA (``sta.jsonl``): prompt = "What is the timestamp of the following segment? ..." and
  target = "The segment ... starts at X seconds and ends at Y seconds." (``tgsr.prompts``).
- SFT (``qa.jsonl``): the reasoning prompt and a rationale (``rationale_plain`` for the
  paper's "+ Reasoning SFT" baseline, ``rationale`` for a grounded warm start) ending with
  the ``Final answer: (x) ...`` line.
- GRPO (``qa.jsonl``): the reasoning prompt plus the columns the rewards read (``answer``,
  ``choices``, ``evidence``, ``duration``).

Malformed lines, rows repeating an earlier row's id (the first is kept: ``tgsr.records.FirstSeen``,
so no row is trained on twice) and rows whose audio file is missing are skipped, counted and
reported in ``RowSet.errors``; the caller prints the count, so nothing disappears silently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import RecordError, TgsrError
from ..prompts import final_answer_line, reasoning_question, sta_answer, sta_question, user_messages
from ..records import QAExample, StaExample, read_jsonl


@dataclass
class RowSet:
    rows: list[dict[str, Any]]
    path: str
    errors: list[RecordError] = field(default_factory=list)

    def summary(self) -> str:
        s = f"{self.path}: {len(self.rows)} rows"
        if self.errors:
            s += f", {len(self.errors)} skipped (first: {self.errors[0]})"
        return s


def _read(path: str, cls, limit: int | None) -> tuple[list, list[RecordError]]:
    res = read_jsonl(path, cls, on_error="skip", unique="id")
    records, errors = list(res.records), list(res.errors)
    kept = []
    for rec in records:
        if not os.path.exists(rec.audio):
            errors.append(RecordError(path, None, "audio", f"id {rec.id}: audio file not found: {rec.audio}"))
            continue
        kept.append(rec)
    if limit is not None:
        kept = kept[: int(limit)]
    if not kept:
        first = f" (first problem: {errors[0]})" if errors else ""
        raise TgsrError(f"{path}: no usable records{first}")
    return kept, errors


def sta_rows(path: str, limit: int | None = None) -> RowSet:
    recs, errors = _read(path, StaExample, limit)
    rows = [{"id": r.id, "audio": r.audio, "prompt": user_messages(sta_question(r.phrase)),
             "target": sta_answer(r.phrase, r.start, r.end), "start": r.start, "end": r.end,
             "phrase": r.phrase} for r in recs]
    return RowSet(rows, str(path), errors)


def sft_rows(path: str, target: str = "rationale_plain", style: str = "grounded",
             limit: int | None = None) -> RowSet:
    if target not in ("rationale", "rationale_plain"):
        raise TgsrError(f"tgsr.target must be 'rationale' or 'rationale_plain', got {target!r}")
    recs, errors = _read(path, QAExample, limit)
    rows = []
    for r in recs:
        text = getattr(r, target).strip()
        if not text:
            errors.append(RecordError(path, None, target, f"id {r.id}: empty {target}"))
            continue
        final = final_answer_line(r.answer, r.choices)
        if final not in text:  # every training target ends with the answer line the evaluator parses
            text = f"{text}\n{final}"
        rows.append({"id": r.id, "audio": r.audio, "prompt": user_messages(reasoning_question(r.question, r.choices,
                                                                                              style)),
                     "target": text})
    if not rows:
        raise TgsrError(f"{path}: no record has a non-empty {target}")
    return RowSet(rows, str(path), errors)


def sta_and_sft_rows(sta_path: str, sft_path: str, target: str = "rationale_plain", style: str = "direct",
                     limit: int | None = None, replay: int = 1) -> RowSet:
    """Stage 1's rows and supervised QA rows in one set (the trainer shuffles them together):
    STA with the base task replayed, or two directions of one skill trained at once. ``limit``
    applies to each file; ``replay`` repeats the QA rows (their share of the batches)."""
    if replay < 1:
        raise TgsrError(f"replay must be at least 1, got {replay}")
    sta = sta_rows(sta_path, limit)
    sft = sft_rows(sft_path, target, style, limit)
    return RowSet(sta.rows + sft.rows * replay, f"{sta_path} + {replay} x {sft_path}", sta.errors + sft.errors)


def grpo_rows(path: str, style: str = "grounded", limit: int | None = None) -> RowSet:
    recs, errors = _read(path, QAExample, limit)
    rows = [{"id": r.id, "audio": r.audio, "prompt": user_messages(reasoning_question(r.question, r.choices, style)),
             "answer": r.answer, "choices": list(r.choices), "evidence": [list(p) for p in r.evidence],
             "duration": r.duration, "task": r.task, "category": r.category} for r in recs]
    return RowSet(rows, str(path), errors)


def clean_conversation(conv: list[dict]) -> list[dict]:
    """Drop the None fields ``datasets`` adds to content items of mixed shape."""
    out = []
    for m in conv:
        content = m["content"]
        if not isinstance(content, str):
            content = [{k: v for k, v in c.items() if v is not None} for c in content]
        out.append({"role": m["role"], "content": content})
    return out


__all__ = ["RowSet", "sta_rows", "sft_rows", "sta_and_sft_rows", "grpo_rows", "clean_conversation"]
