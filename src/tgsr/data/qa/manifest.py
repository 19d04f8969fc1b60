"""Stage-2 questions from any JSONL or CSV file: audio, question, choices, answer, evidence.

Columns (case-insensitive in CSV):

* audio: ``audio``, ``path``, ``audio_path``, ``file`` or ``audio_filepath`` (relative to the file);
* ``question`` (or ``prompt``); ``choices`` (a list; in CSV a JSON list or ``a | b | c``);
* ``answer``: a letter (``b``, ``(B)``), a 0-based index, or the text of a choice;
* optional: ``id``, ``duration`` (measured from the audio when absent), ``evidence`` (a list of
  ``[start, end]`` seconds; JSON in CSV), ``task``, ``category``, ``split``, ``rationale``,
  ``rationale_plain``, ``meta``.

A row that cannot be used (missing column, answer not among the choices, evidence past the
clip, missing audio ...) becomes an error row naming the file and the line; the rest are kept.
With word timings (``--words``, matched by ``id`` or audio path), a row with evidence and no
rationale gets a grounded rationale quoting the words spoken in each evidence span, and its
plain twin.
"""

from __future__ import annotations

import json
from pathlib import Path

from ...errors import AudioError, RecordError, TgsrError
from ...records import LETTERS, FieldError, QAExample
from ..importers.manifest import AUDIO_KEYS, _csv_rows, _first
from ..questions import Claim, cite
from .common import (
    QaSummary,
    WordIndex,
    default_errors_path,
    error_row,
    finish,
    from_record_error,
    grounded_pair,
    load_rows_json,
    measured_duration,
    quoted,
    words_between,
)

QUESTION_KEYS = ("question", "prompt")
OPTIONAL = ("task", "category", "split", "rationale", "rationale_plain")


def _list_field(value, name: str):
    """A list given as a list, a JSON string, or (choices only) ``a | b | c``."""
    if value is None or isinstance(value, list):
        return value
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError as e:
                raise FieldError(name, f"invalid JSON list: {e.msg}") from None
        if name == "choices" and "|" in text:
            return [c.strip() for c in text.split("|")]
    raise FieldError(name, "expected a list" + (" (JSON, or a | b | c)" if name == "choices" else " (JSON)"))


def _answer(value, choices: list) -> str:
    if isinstance(value, bool) or value is None or (isinstance(value, str) and not value.strip()):
        raise FieldError("answer", "missing")
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        i = int(value)
        if not 0 <= i < len(choices):
            raise FieldError("answer", f"index {i} is not a choice (0..{len(choices) - 1})")
        return LETTERS[i]
    text = str(value).strip()
    letter = text.strip("().[] ").lower()
    if len(letter) == 1 and letter in LETTERS[:len(choices)]:
        return letter
    if text in choices:  # the text of a choice (first match)
        return LETTERS[choices.index(text)]
    raise FieldError("answer", f"{value!r} is neither a choice letter, an index nor a choice's text")


def _example(row: dict, path: Path, line: int) -> QAExample:
    audio = _first(row, AUDIO_KEYS)
    if not isinstance(audio, str):
        raise FieldError("audio", f"missing (expected one of {', '.join(AUDIO_KEYS)})")
    audio_path = Path(audio).expanduser()
    if not audio_path.is_absolute():
        audio_path = (path.parent / audio_path).resolve()
    choices = _list_field(row.get("choices"), "choices")
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise FieldError("choices", "expected a list of strings")
    choices = [c.strip() for c in choices]
    data = {"id": str(row.get("id") or f"{path.stem}-{line}"), "audio": str(audio_path),
            "question": _first(row, QUESTION_KEYS), "choices": choices, "answer": _answer(row.get("answer"), choices),
            "source": str(row.get("source") or "manifest"),
            "meta": row.get("meta") if isinstance(row.get("meta"), dict) else {}}
    for k in OPTIONAL:
        if row.get(k) not in (None, ""):
            data[k] = row[k]
    evidence = _list_field(row.get("evidence"), "evidence")
    if evidence is not None:
        data["evidence"] = evidence
    if not audio_path.is_file():
        raise FieldError("audio", f"file not found: {audio_path}")
    duration = row.get("duration")
    if duration in (None, ""):
        try:
            duration = round(measured_duration(audio_path), 3)
        except AudioError as e:
            raise FieldError("audio", f"{e.reason}: {audio_path}") from None
    elif isinstance(duration, str):  # CSV cells are text
        try:
            duration = float(duration)
        except ValueError:
            raise FieldError("duration", f"expected a number, got {duration!r}") from None
    data["duration"] = duration
    return QAExample.from_dict(data)


def _ground(ex: QAExample, words: WordIndex) -> None:
    """Fill a grounded rationale and its plain twin from the words in the evidence spans."""
    clip = words.get(ex.id, ex.audio)
    if clip is None or not ex.evidence or ex.rationale or ex.duration is None:
        return
    claims = []
    for s, e in ex.evidence:
        said = words_between(clip.words, s, e)
        if not said:
            return  # a span with no aligned words cannot be quoted: no rationale rather than a wrong one
        claims.append(Claim(f'the audio says "{quoted(" ".join(w.text for w in said))}"', cite(s, e, ex.duration)))
    claims.append(Claim(f"So the answer is {ex.choices[ex.answer_index]}"))
    ex.rationale, plain = grounded_pair(claims, ex.choices, ex.answer, ex.task or "qa")
    ex.rationale_plain = ex.rationale_plain or plain


def build_manifest_qa(root: str | Path, out: str | Path, *, words: str | Path | None = None,
                      errors_path: str | Path | None = None) -> QaSummary:
    """Write ``out`` from a manifest file or a folder of ``*.jsonl``/``*.csv``; see the module docstring."""
    root, out = Path(root), Path(out)
    # never read our own output or the word timings as a manifest
    ours = {Path(f).resolve() for f in (out, errors_path or default_errors_path(out), words) if f}
    files = [root] if root.is_file() else sorted(p for p in [*root.glob("*.jsonl"), *root.glob("*.csv")]
                                                 if p.resolve() not in ours)
    if not files:
        raise TgsrError(f"{root}: no manifest file (.jsonl or .csv) found")
    index = WordIndex.load(words)
    summary = QaSummary(source="manifest")
    errors: list[dict] = [from_record_error(e, "words") for e in index.errors]
    examples: list[QAExample] = []
    for f in files:
        rows = _csv_rows(f) if f.suffix.lower() == ".csv" else load_rows_json(f)
        for line, row in rows:
            summary.rows += 1
            if isinstance(row, RecordError):
                errors.append(error_row(row.reason, path=f, line=line, stage="read"))
                continue
            try:
                ex = _example(row, f, line)
            except FieldError as e:
                errors.append(error_row(e.reason, path=f, line=line, field=e.field, item=row.get("id"), stage="row"))
                continue
            _ground(ex, index)
            examples.append(ex)
    return finish(summary, examples, errors, out, errors_path)


__all__ = ["build_manifest_qa"]
