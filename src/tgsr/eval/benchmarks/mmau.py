"""MMAU test-mini, speech subset (333 items): ``mmau-test-mini.json``; audio by ``audio_id``."""

from __future__ import annotations

from pathlib import Path

from ...records import QAExample
from ._common import audio_under, check_unique_ids, find_meta, load_json_records, text_choice_example

META_NAMES = ("mmau-test-mini.json",)


def load(data_root: str | Path | None, meta: str | Path | None = None, *, task: str = "speech") -> list[QAExample]:
    path = find_meta(data_root, meta, META_NAMES, "mmau")
    root = Path(data_root) if data_root is not None else path.parent
    out = []
    for where, rec in load_json_records(path):
        if rec.get("task") != task:
            continue
        audio_id = rec.get("audio_id") or f"./test-mini-audios/{rec.get('id')}.wav"
        category = rec.get("category")
        if isinstance(category, list):  # a few records store it as a one-element list
            category = ", ".join(map(str, category))
        out.append(text_choice_example(
            path, where, rec, id_field="id", answer_field="answer",
            audio=audio_under(root, audio_id, Path(audio_id).name),
            breakdown={"sub-category": rec.get("sub-category"), "difficulty": rec.get("difficulty")},
            official=rec, task=str(rec.get("task", "")), category=str(category or ""),
            source=str(rec.get("dataset", "")), split=str(rec.get("split", ""))))
    check_unique_ids(path, out)
    return out
