"""MMAR, modality "speech" only (294 items): ``MMAR-meta.jsonl``; audio by ``audio_path``.

MMAR reports its Speech column over ``modality == "speech"``; the speech mixes are separate
columns, so they are not included here.
"""

from __future__ import annotations

from pathlib import Path

from ...records import QAExample
from ._common import audio_under, check_unique_ids, find_meta, load_json_records, text_choice_example

META_NAMES = ("MMAR-meta.jsonl", "MMAR-meta.json")
# kept out of predictions (the export writes the full record from the metadata)
HEAVY_FIELDS = ("thinking", "cue", "rubric", "url")


def load(data_root: str | Path | None, meta: str | Path | None = None, *, modality: str = "speech") -> list[QAExample]:
    path = find_meta(data_root, meta, META_NAMES, "mmar")
    root = Path(data_root) if data_root is not None else path.parent
    out = []
    for where, rec in load_json_records(path):
        if rec.get("modality") != modality:
            continue
        audio_path = rec.get("audio_path") or f"./audio/{rec.get('id')}.wav"
        out.append(text_choice_example(
            path, where, rec, id_field="id", answer_field="answer",
            audio=audio_under(root, audio_path, Path(audio_path).name),
            breakdown={"sub-category": rec.get("sub-category"), "category": rec.get("category")},
            official=rec, task=str(rec.get("modality", "")), category=str(rec.get("category") or ""),
            source=str(rec.get("source") or "")))
    check_unique_ids(path, out)
    return out
