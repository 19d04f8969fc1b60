"""AIR-Bench Foundation: SER, SNV and SIC.

Metadata is the Foundation record shape (``path``, ``question``, ``choice_a``..``choice_d``,
``answer_gt`` as option text, ``task_name``, ``dataset_name``, ``uniq_id``), as a JSON list
(``Foundation_meta.json``) or JSON Lines. Audio is looked up as
``DATA_ROOT/<task_name>_<dataset_name>/<path>`` and then ``DATA_ROOT/<path>``.
Null options (2-way tasks) are left out of the lettered choices.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import RecordError
from ...records import FieldError, QAExample
from ..scoring import airbench_choices, airbench_gold_letter, airbench_group
from ._common import audio_under, check_unique_ids, find_meta, load_json_records

META_NAMES = ("Foundation_meta.json", "Foundation_meta.jsonl", "foundation_SER_SIC_SNV_sample.jsonl")
TASKS = {
    "ser": "Speaker_Emotion_Recontion",       # upstream spelling
    "snv": "Speaker_Number_Verification",
    "sic": "Speaker_Intent_Classification",
}


def load(data_root: str | Path | None, meta: str | Path | None = None, *, task: str) -> list[QAExample]:
    task_name = TASKS.get(task, task)
    path = find_meta(data_root, meta, META_NAMES, f"airbench-{task}")
    root = Path(data_root) if data_root is not None else path.parent
    out = []
    for where, rec in load_json_records(path):
        if rec.get("task_name") != task_name:
            continue
        options = airbench_choices(rec)
        gold = airbench_gold_letter(rec)
        if gold is None:
            raise RecordError(path, where, "answer_gt", f"{rec.get('answer_gt')!r} equals none of choice_a..d")
        # keep options up to the last non-null one; a null in the middle would shift letters
        n = max(i for i, c in enumerate(options) if c is not None) + 1
        if any(c is None for c in options[:n]):
            raise RecordError(path, where, "choice_a", "a null option before a non-null one")
        group = airbench_group(rec)
        wav = str(rec.get("path", ""))
        data = {
            "id": str(rec.get("uniq_id", "")), "audio": audio_under(root, f"{group}/{wav}", wav),
            "question": rec.get("question"), "choices": options[:n], "answer": gold.lower(),
            "task": task_name, "category": group, "source": str(rec.get("dataset_name", "")),
            "meta": {"breakdown": {"group": group}, "official": rec},
        }
        try:
            out.append(QAExample.from_dict(data))
        except FieldError as e:
            raise RecordError(path, where, e.field, e.reason) from None
    check_unique_ids(path, out)
    if not out:
        raise RecordError(path, None, "task_name", f"no {task_name} records in this file")
    return out


__all__ = ["load", "TASKS"]
