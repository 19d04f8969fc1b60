"""Stage-2 questions from Audio-Reasoner's CoTA (the multi-speaker subset the paper trained on).

What is known of the published layout (``zhifeixie/Audio-Reasoner-CoTA``, Parquet files, and
conversions of it shared by its users): each row holds one clip and one exchange,

* the clip: a path, or the ``datasets`` audio struct ``{"bytes", "path"}`` (Parquet and JSON
  exports of it), under ``audio`` (or ``audios``, a one-clip list, or ``audio_path``);
* the user turn: ``"<audio>"`` and the question, with lettered options inline
  ("... ? (a) A heartfelt apology ... (b) A doctor reassuring ...");
* the assistant turn: the structured reasoning, ``<THINK><PLANNING>...</PLANNING><CAPTION>...
  </CAPTION><REASONING>...</REASONING><SUMMARY>...</SUMMARY></THINK><RESPONSE>... The answer
  is C.</RESPONSE>`` (tags in either case).

The turns are read from flat columns (``user``/``assistant``, ``question``/``response``,
``instruction``/``output``), from an ms-swift ``messages`` list (``role``/``content``, the
format Audio-Reasoner was trained with) or from a ShareGPT ``conversations`` list
(``from``/``value``), whichever a row has.

Files read: ``.json`` (a list or JSON Lines), ``.jsonl`` and ``.parquet``. Each row becomes a
QAExample whose ``rationale_plain`` is CoTA's own reasoning (the four sections, tags removed)
ending in tgsr's final-answer line. CoTA has no timestamps, so ``rationale`` (grounded) and
``evidence`` stay empty. Rows without lettered options (open-ended questions, captions) or
without a readable answer letter are reported by file and row, never guessed at.
Audio given as bytes is written once to ``<out folder>/audio/cota/`` (a rerun reuses it).
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Iterator

from ...answers import extract_choice
from ...errors import AudioError, RecordError, TgsrError
from ...prompts import final_answer_line
from ...records import LETTERS, FieldError, QAExample
from .common import QaSummary, default_errors_path, error_row, finish, load_rows_json, measured_duration

SECTIONS = ("PLANNING", "CAPTION", "REASONING", "SUMMARY")
_AUDIO_TAG = re.compile(r"<\s*/?\s*audio\s*>", re.IGNORECASE)
_OPTION = re.compile(r"(?:^|(?<=\s)|(?<=[:?.]))\(([a-zA-Z])\)\s*")
_SECTION = {s: re.compile(rf"<{s}>(.*?)</{s}>", re.IGNORECASE | re.DOTALL) for s in SECTIONS}
_RESPONSE = re.compile(r"<RESPONSE>(.*?)(?:</RESPONSE>|$)", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"</?\s*(?:THINK|PLANNING|CAPTION|REASONING|SUMMARY|RESPONSE)\s*>", re.IGNORECASE)
SUFFIXES = (".json", ".jsonl", ".parquet")
USER_KEYS = ("user", "question", "instruction", "prompt", "query")
ASSISTANT_KEYS = ("assistant", "response", "output")
AUDIO_KEYS = ("audio", "audios", "audio_path", "path")
_ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant"}


def parse_options(user: str) -> tuple[str, list[str]]:
    """(question, options) from a CoTA ``user`` text; raises ``FieldError`` without options.

    Options are the last run of markers (a), (b), ... in order; the question is the text
    before the first of them.
    """
    text = _AUDIO_TAG.sub(" ", user).strip()
    marks = list(_OPTION.finditer(text))
    best: list[re.Match] = []
    for i, m in enumerate(marks):  # the last "(a)" from which the letters run on in order
        if m.group(1).lower() != "a":
            continue
        run = [m]
        for n in marks[i + 1:]:
            if n.group(1).lower() == LETTERS[len(run)]:
                run.append(n)
        if len(run) >= 2:
            best = run
    if not best:
        raise FieldError("user", "no lettered options (a), (b), ... in the question")
    options = []
    for j, m in enumerate(best):
        end = best[j + 1].start() if j + 1 < len(best) else len(text)
        options.append(" ".join(text[m.end():end].split()).rstrip(" ,;"))
    if any(not o for o in options):
        raise FieldError("user", "an option has no text")
    question = " ".join(text[:best[0].start()].split())
    question = re.sub(r"(?:choices|options)\s*:?\s*$", "", question, flags=re.IGNORECASE).strip()
    if not question:
        raise FieldError("user", "no question before the options")
    return question, options


def parse_reasoning(assistant: str, choices: list[str]) -> tuple[str, str]:
    """(gold letter, reasoning text) from a CoTA ``assistant`` text; raises ``FieldError``."""
    sections = []
    for s in SECTIONS:
        m = _SECTION[s].search(assistant)
        if m and m.group(1).strip():
            sections.append(m.group(1).strip())
    response = _RESPONSE.search(assistant)
    answer_text = _TAGS.sub(" ", response.group(1) if response else assistant).strip()
    got = extract_choice(answer_text, choices)
    if got.letter is None and sections:  # e.g. a response that names the option only in the summary
        got = extract_choice(sections[-1], choices)
    if got.letter is None:
        raise FieldError("assistant", f"no answer letter in the response ({got.reason})")
    if not sections:
        sections = [_TAGS.sub(" ", assistant).strip()]
    return got.letter, "\n".join(sections)


def turns(row: dict) -> tuple[str, str]:
    """(user text, assistant text) of one row in any of the layouts above; ``FieldError`` if absent."""
    for key, role_key, text_key in (("messages", "role", "content"), ("conversations", "from", "value")):
        conv = row.get(key)
        if isinstance(conv, list) and conv:
            texts: dict[str, str] = {}
            for m in conv:
                role = _ROLES.get(str(m.get(role_key, "")).lower()) if isinstance(m, dict) else None
                if role and isinstance(m.get(text_key), str):
                    texts.setdefault(role, m[text_key])  # the first user and assistant turns
            if "user" not in texts or "assistant" not in texts:
                raise FieldError(key, "needs a user and an assistant turn")
            return texts["user"], texts["assistant"]
    user = next((row[k] for k in USER_KEYS if isinstance(row.get(k), str) and row[k].strip()), None)
    assistant = next((row[k] for k in ASSISTANT_KEYS if isinstance(row.get(k), str) and row[k].strip()), None)
    if user is None:
        raise FieldError("user", f"missing (the question text: {', '.join(USER_KEYS)} or messages)")
    if assistant is None:
        raise FieldError("assistant", f"missing (the reasoning: {', '.join(ASSISTANT_KEYS)} or messages)")
    return user, assistant


def _audio_value(row: dict):
    for k in AUDIO_KEYS:
        v = row.get(k)
        if isinstance(v, list):
            if len(v) != 1:
                raise FieldError(k, f"expected one clip, got {len(v)}")
            v = v[0]
        if v not in (None, ""):
            return v
    raise FieldError("audio", f"missing ({', '.join(AUDIO_KEYS)}: a path, or {{bytes, path}})")


def _rows(path: Path) -> Iterator[tuple[int, dict | RecordError]]:
    if path.suffix.lower() != ".parquet":
        yield from load_rows_json(path)
        return
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow comes with datasets
        raise TgsrError("reading .parquet needs pyarrow (installed with datasets)") from None
    n = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=256):
        for row in batch.to_pylist():
            n += 1
            yield n, row


def _audio(value, row_id: str, base: Path, audio_root: Path | None, out_dir: Path) -> Path:
    """The clip's path on disk; audio given as bytes is written once under the output folder."""
    if isinstance(value, dict):
        data, rel = value.get("bytes"), value.get("path")
        if data:
            target = out_dir / "audio" / "cota" / (re.sub(r"[^A-Za-z0-9_.-]", "_", row_id) + ".wav")
            if not target.is_file():
                _write_bytes(data, target)
            return target
        value = rel
    if not isinstance(value, str) or not value.strip():
        raise FieldError("audio", "missing (a path, or {bytes, path})")
    p = Path(value).expanduser()
    if p.is_absolute():
        return p
    for b in (audio_root, base):
        if b is not None and (b / p).exists():
            return (b / p).resolve()
    return ((audio_root or base) / p).resolve()


def _write_bytes(data: bytes, target: Path) -> None:
    import soundfile as sf

    from ...audio import SAMPLE_RATE, resample, save_audio

    try:
        samples, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError(target, f"audio bytes are not readable audio: {e}") from None
    tmp = target.with_suffix(".part.wav")
    save_audio(tmp, resample(samples.mean(axis=1), sr, SAMPLE_RATE))
    tmp.replace(target)  # whole files only: an interrupted write is redone


def build_cota_qa(root: str | Path, out: str | Path, *, audio_root: str | Path | None = None,
                  errors_path: str | Path | None = None) -> QaSummary:
    """Write ``out`` from CoTA files (a file, or a folder of them); see the module docstring."""
    root, out = Path(root), Path(out)
    ours = {out.resolve(), Path(errors_path or default_errors_path(out)).resolve()}  # never read our own output
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*")
                                                 if p.suffix.lower() in SUFFIXES and p.resolve() not in ours)
    if not files:
        raise TgsrError(f"{root}: no CoTA files ({', '.join(SUFFIXES)}) found")
    audio_root = Path(audio_root) if audio_root else None
    summary = QaSummary(source="cota")
    examples: list[QAExample] = []
    errors: list[dict] = []
    for f in files:
        subset = f.parent.name if f.stem.startswith(("train", "test", "data")) else f.stem
        for n, row in _rows(f):
            summary.rows += 1
            if isinstance(row, RecordError):
                errors.append(error_row(row.reason, path=f, line=n, stage="read"))
                continue
            row_id = str(row.get("id") if row.get("id") not in (None, "") else f"{f.stem}-{n}")
            qid = f"cota-{subset}-{row_id}"
            audio = None
            try:
                user, assistant = turns(row)
                question, choices = parse_options(user)
                letter, reasoning = parse_reasoning(assistant, choices)
                audio = _audio(_audio_value(row), qid, f.parent, audio_root, out.parent)
                duration = round(measured_duration(audio), 3)
                ex = QAExample.from_dict({
                    "id": qid, "audio": str(audio), "question": question, "choices": choices, "answer": letter,
                    "duration": duration, "task": "cota", "category": subset, "source": "cota", "split": "train",
                    "rationale_plain": f"{reasoning}\n{final_answer_line(letter, choices)}",
                    "meta": {"file": f.name, "row": n, "subset": subset}})
            except FieldError as e:
                errors.append(error_row(e.reason, path=f, line=n, field=e.field, item=qid, stage="row"))
                continue
            except AudioError as e:
                errors.append(error_row(e.reason, path=f, line=n, field="audio", item=qid, audio=audio or e.path,
                                        stage="audio"))
                continue
            examples.append(ex)
    return finish(summary, examples, errors, out, errors_path)


__all__ = ["build_cota_qa", "parse_options", "parse_reasoning", "turns", "SECTIONS"]
