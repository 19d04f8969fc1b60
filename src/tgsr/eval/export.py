"""Prediction files in each benchmark's official format, readable by the official scripts.

* MMAU: a JSON list of the benchmark records, each with ``model_output`` added.
* MMAR: JSON Lines of the records with ``answer_prediction`` (and ``thinking_prediction``,
  the full completion, which MMAR's rubric scorer reads).
* AIR-Bench Foundation: JSON Lines of the records with ``response``.

What goes into the prediction field:
* MMAU/MMAR (``text="written"``, the default): the answer as the model wrote it on its
  last non-empty line, with a leading "Final answer:"/"Answer:" keyword removed, e.g.
  ``(b) Two speakers``. The official rule then judges what the model wrote: a bare
  letter scores 0, a paraphrase that misses an answer word scores 0, exactly as with the
  official scripts. ``text="choice"`` writes the text of the extracted option instead.
* AIR-Bench: ``"<LETTER>. <option text>"`` for the letter ``tgsr.answers.extract_choice``
  found. This takes the place of AIR-Bench's own mapping step (``align_in_foundation.py``
  asks GPT to turn a free-form response into a letter); the official prompt asks for the
  letter first, which is the form written here. When no letter was found, the last
  non-empty line as written (the official rule then reads whatever letter it finds, or
  counts a failure).
Items that could not be run (missing audio ...) are written without the prediction field,
which the official scorers skip; the count is reported next to the official number.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import RecordError
from ..records import LETTERS, Prediction


@dataclass(frozen=True)
class ExportFormat:
    name: str
    key: str            # the field the official scorer reads
    filename: str
    jsonl: bool


FORMATS: dict[str, ExportFormat] = {
    "mmau": ExportFormat("mmau", "model_output", "mmau_model_output.json", jsonl=False),
    "mmar": ExportFormat("mmar", "answer_prediction", "mmar_answer_prediction.jsonl", jsonl=True),
    "airbench": ExportFormat("airbench", "response", "airbench_response.jsonl", jsonl=True),
}


_ANSWER_KEYWORD = re.compile(r"^(?:the\s+)?(?:final\s+)?answer(?:\s+is)?\s*[:\-\u2013=]?\s*", re.IGNORECASE)


def last_line(text: str | None) -> str:
    """The final answer line's text (``tgsr.answers.answer_line``), or ``""``."""
    from ..answers import answer_line

    line = answer_line(text or "")
    return line.text if line else ""


def written_answer(completion: str | None) -> str:
    """The final answer as written: the last non-empty line without its answer keyword."""
    line = last_line(completion)
    return _ANSWER_KEYWORD.sub("", line, count=1).strip() or line


def export_text(pred: Prediction, fmt: str, *, text: str = "written") -> str | None:
    """The official prediction field for one prediction (None: leave the field out)."""
    if pred.error is not None or pred.completion is None:
        return None
    letter = (pred.pred_letter or "").lower()
    choices = pred.meta.get("choices") or []
    has_choice = bool(letter) and LETTERS.index(letter) < len(choices)
    if fmt == "airbench":
        if has_choice:
            return f"{letter.upper()}. {choices[LETTERS.index(letter)]}"
        return last_line(pred.completion)
    if text == "choice" and has_choice:
        return choices[LETTERS.index(letter)]
    return written_answer(pred.completion)


def export_records(fmt: str, predictions: Iterable[Prediction], records: dict[str, dict] | None = None, *,
                   text: str = "written") -> list[dict]:
    """Official-format records, one per prediction, in the order given.

    ``records`` maps item id -> full official record (from the loaded benchmark); without
    it the record kept in each prediction's ``meta["official"]`` is used.
    """
    spec = FORMATS[fmt]
    out = []
    for p in predictions:
        rec = (records or {}).get(p.id) or p.meta.get("official")
        if rec is None:
            raise RecordError(None, None, "meta.official", f"prediction {p.id!r} carries no official record")
        rec = dict(rec)
        value = export_text(p, fmt, text=text)
        if value is not None:
            rec[spec.key] = value
            if fmt == "mmar":
                rec["thinking_prediction"] = p.completion
        out.append(rec)
    return out


def write_export(path: str | Path, fmt: str, records: Sequence[dict]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        if FORMATS[fmt].jsonl:
            for r in records:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        else:
            json.dump(list(records), fh, ensure_ascii=False, indent=4)
    tmp.replace(path)  # never leave a half-written export behind
    return path


def read_export(path: str | Path, fmt: str | None = None) -> list[dict]:
    """Read an official-format prediction file the way the official scorer does.

    ``.json``: one JSON list. ``.jsonl``: one record per line; a blank line is an error
    (MMAR's reader crashes on one). Other extensions are refused, as MMAR's reader does.
    """
    path = Path(path)
    if not path.is_file():
        raise RecordError(path, None, None, "prediction file not found")
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise RecordError(path, e.lineno, None, f"invalid JSON: {e.msg}") from None
        if not isinstance(data, list):
            raise RecordError(path, None, None, "expected a JSON list of records")
        for i, r in enumerate(data):
            if not isinstance(r, dict):
                raise RecordError(path, None, f"[{i}]", "expected an object")
        return data
    if path.suffix == ".jsonl":
        out = []
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    raise RecordError(path, lineno, None, "blank line (the official JSONL reader fails on it)")
                try:
                    r = json.loads(line)
                except json.JSONDecodeError as e:
                    raise RecordError(path, lineno, None, f"invalid JSON: {e.msg} (column {e.colno})") from None
                if not isinstance(r, dict):
                    raise RecordError(path, lineno, None, "expected a JSON object")
                out.append(r)
        return out
    raise RecordError(path, None, None, "expected a .json or .jsonl file")


__all__ = ["ExportFormat", "FORMATS", "last_line", "written_answer", "export_text", "export_records", "write_export",
           "read_export"]
