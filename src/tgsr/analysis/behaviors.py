"""Behaviour metrics of grounded reasoning (the paper's Table 3), from an evaluation run.

Per prediction:

* **Regions Explored**: distinct audio regions cited. Rule (``tgsr.spans.distinct_spans``):
  invalid citations (start >= end) are dropped; a citation whose IoU with an earlier kept one
  is >= 0.5 is the same region cited again and counts once; a sub-region (IoU < 0.5) is new.
* **Audiology Verify**: for each valid citation, the cited audio is cropped with 0.5 s of
  padding on both sides, transcribed by a Whisper backend of ``tgsr.data.align``, and
  compared with the words the reasoning attributes to the citation (``attributed_text``):
  similarity = 1 - word edit distance / max(number of words of the two), after lower-casing
  and removing punctuation. Averaged over the item's citations (0-1). ``audiology_verify_quoted``
  averages only the citations whose words are a quotation: descriptions ("the deep male voice
  talks") are not transcripts, so this variant isolates claims about what was said.
* **Consistency**: a judge's score (``tgsr.analysis.judge``) of whether the reasoning supports
  the final answer (0-1).
* **Grounding precision**: when the item has gold evidence spans, the mean over the distinct
  cited regions of their best IoU with any evidence span.
* **Citation-answer consistency (exact)**: for items whose value is read at a *pointer* span
  (``QAExample.meta["pointer"]`` and ``meta["counterfactuals"]``, as ``tgsr.data.lab`` writes
  them), the answer each candidate span implies is known: the gold pointer span implies the gold
  answer, every counterfactual span its own. The model's pointer citation is its last citation
  with IoU >= 0.5 to a candidate span; the item is consistent (1) when the final answer is the
  one that span implies, else 0 (an unparsed answer included). No judge is involved. The row also
  says which span was cited (``pointer_cited``: gold / other), so accuracy can be read per case.

Items without a value for a metric (no citation, no evidence, judge gave no verdict, the
prediction itself failed) are counted per metric as ``n_na`` with reasons, never dropped
silently. Results: ``behaviors_items.jsonl`` (per item, appended and resumable),
``behaviors.json`` and ``behaviors.md``.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ..answers import extract_choice
from ..errors import AudioError, TgsrError
from ..eval.scoring import is_correct
from ..spans import Span, distinct_spans, find_spans

PAD_SECONDS = 0.5
METRICS = ("regions_explored", "audiology_verify", "audiology_verify_quoted", "consistency", "grounding_precision",
           "citation_consistency")
POINTER_MIN_IOU = 0.5
_LABELS = {"accuracy": "Acc.", "regions_explored": "Regions Explored", "audiology_verify": "Audiology Verify",
           "audiology_verify_quoted": "Audiology Verify (quoted)",
           "consistency": "Consistency", "grounding_precision": "Grounding IoU",
           "citation_consistency": "Citation-answer (exact)"}

__all__ = ["ItemContext", "attributed_text", "normalize_words", "word_similarity", "regions_explored",
           "audiology_verify", "grounding_precision", "citation_consistency", "pointer_candidates",
           "score_prediction", "load_run", "run_behaviors", "summarize_items", "table3_markdown", "METRICS",
           "PAD_SECONDS"]


# ------------------------------------------------------------------------ text

_QUOTE = re.compile(r"\"([^\"]{1,500})\"|\u201c([^\u201d]{1,500})\u201d|(?<!\w)'([^']{1,500})'(?!\w)")
_SPEECH_VERB = re.compile(r"\b(?:says?|said|saying|asks?|asked|repl(?:y|ies|ied)|answers?|answered|mentions?|"
                          r"mentioned|states?|stated|tells?|told|utters?|uttered|speaks?|spoke)\b[\s:,]*",
                          re.IGNORECASE)
_CLAUSE_END = re.compile(r"[.!?;\n]")
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")


def attribution(text: str, spans: Sequence[Span], i: int, stop: int | None = None) -> tuple[str, str]:
    """The words the reasoning attributes to citation ``i``, and where they came from.

    The region after the citation runs to the next citation (or ``stop``, the start of the
    final answer line). Rule, first match wins:

    1. ``quote``: a quoted text that opens in the same sentence, after the citation
       (``From 1.2s to 3.4s, she says "hi".``);
    2. ``quote``: the last quote of the sentence just before the citation
       (``She says "hi" (1.2s - 3.4s).``);
    3. ``clause``: the clause after the citation up to the end of its sentence, starting after
       a speech verb ("... says") when there is one.
    """
    s = spans[i]
    end = spans[i + 1].char_start if i + 1 < len(spans) else len(text)
    if stop is not None:
        end = min(end, max(stop, s.char_end))
    after = text[s.char_end:end]
    m = _QUOTE.search(after)
    if m and not _SENTENCE_END.search(after[:m.start()]):
        return next(g for g in m.groups() if g is not None), "quote"
    prev_end = spans[i - 1].char_end if i > 0 else 0
    before = text[prev_end:s.char_start]
    # the sentence before the citation: cut at the last terminator outside quotes
    cut = -1
    for t in _SENTENCE_END.finditer(before):
        if before[:t.start()].count('"') % 2 == 0:
            cut = t.start()
    quotes = list(_QUOTE.finditer(before[cut + 1:]))
    if quotes:
        return next(g for g in quotes[-1].groups() if g is not None), "quote"
    clause = _CLAUSE_END.split(after.lstrip(" ,:;-\u2013\u2014"), maxsplit=1)[0]
    verb = _SPEECH_VERB.search(clause)
    if verb:
        clause = clause[verb.end():]
    return clause.strip(), "clause"


def attributed_text(text: str, spans: Sequence[Span], i: int, stop: int | None = None) -> str:
    """The words the reasoning attributes to citation ``i`` (see ``attribution``)."""
    return attribution(text, spans, i, stop)[0]


def normalize_words(text: str) -> list[str]:
    """Lower-case words without punctuation (apostrophes inside words kept)."""
    return re.findall(r"[a-z0-9]+(?:'[a-z0-9]+)*", (text or "").lower())


def _edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


def word_similarity(reference: str, hypothesis: str) -> float:
    """1 - word edit distance / max(len): 1 for identical word sequences, 0 for nothing in common.

    Two empty texts are identical (1.0).
    """
    a, b = normalize_words(reference), normalize_words(hypothesis)
    if not a and not b:
        return 1.0
    return 1.0 - _edit_distance(a, b) / max(len(a), len(b))


# ------------------------------------------------------------------------ metrics

def regions_explored(completion: str) -> int:
    return len(distinct_spans(completion))


def audiology_verify(audio: np.ndarray | None, completion: str,
                     transcribe: Callable[[np.ndarray], str], *, pad: float = PAD_SECONDS,
                     sr: int = 16_000, cache: dict | None = None) -> tuple[float | None, list[dict]]:
    """Mean similarity over the valid citations of ``completion``, and per-citation details.

    ``audio`` None stands for silence (the silence listening control): every crop transcribes
    to nothing. Citations with no attributed words, or entirely past the end of the audio,
    are listed with ``similarity: null`` and a reason, and left out of the mean.
    """
    from ..audio import crop

    spans = [s for s in find_spans(completion)]
    from ..answers import answer_line

    line = answer_line(completion)  # attributed words stop at the final answer line
    stop = line.start if line is not None else len(completion)
    details, sims = [], []
    duration = None if audio is None else len(audio) / sr
    for i, s in enumerate(spans):
        row: dict = {"start": s.start, "end": s.end}
        if not s.valid:
            row.update(similarity=None, reason="invalid span (start >= end)")
            details.append(row)
            continue
        said, source = attribution(completion, spans, i, stop)
        row["attributed"], row["source"] = said, source
        if not normalize_words(said):
            row.update(similarity=None, reason="no words attributed to the citation")
            details.append(row)
            continue
        if duration is not None and s.start >= duration:
            row.update(similarity=None, reason=f"span starts after the audio ends ({duration:.2f}s)")
            details.append(row)
            continue
        key = (round(s.start, 3), round(s.end, 3))
        if cache is not None and key in cache:
            heard = cache[key]
        elif audio is None:
            heard = ""
        else:
            heard = transcribe(crop(audio, s.start, s.end, pad=pad, sr=sr))
            if cache is not None:
                cache[key] = heard
        sim = word_similarity(said, heard)
        row.update(transcript=heard, similarity=sim)
        sims.append(sim)
        details.append(row)
    return (float(np.mean(sims)) if sims else None), details


def grounding_precision(completion: str, evidence: Sequence[tuple[float, float]]) -> float | None:
    """Mean over distinct cited regions of the best IoU with any gold evidence span."""
    from ..eval.metrics import best_iou

    regions = distinct_spans(completion)
    if not evidence or not regions:
        return None
    return float(np.mean([best_iou([(r.start, r.end)], list(evidence)) for r in regions]))


def pointer_candidates(example) -> list[tuple[tuple[float, float], str]] | None:
    """(span, implied letter) for the gold pointer span and every counterfactual span of an item, or
    None when the item has no pointer (see the module docstring)."""
    meta = getattr(example, "meta", None) or {}
    pointer, cfs = meta.get("pointer"), meta.get("counterfactuals")
    spans = find_spans(getattr(example, "rationale", None) or "")
    if not isinstance(pointer, int) or not cfs or not 0 <= pointer < len(spans):
        return None
    gold = spans[pointer]
    out = [((gold.start, gold.end), example.answer)]
    out += [((float(c["span"][0]), float(c["span"][1])), str(c["answer"])) for c in cfs]
    return out


def citation_consistency(completion: str, letter: str | None,
                         candidates: Sequence[tuple[tuple[float, float], str]]) -> tuple[float | None, dict]:
    """1 when the answer is the one the model's pointer citation implies, 0 when not, None (with the
    reason) when no citation matches a candidate span."""
    from ..eval.metrics import iou

    best = None
    for span in find_spans(completion):
        if not span.valid:
            continue
        scored = max(((iou((span.start, span.end), c), i) for i, (c, _) in enumerate(candidates)))
        if scored[0] >= POINTER_MIN_IOU:
            best = (span, scored)  # the last matching citation
    if best is None:
        return None, {"reason": "no citation matches the pointer or a counterfactual span"}
    span, (overlap, i) = best
    implied = candidates[i][1]
    return float(letter == implied), {"pointer_cited": "gold" if i == 0 else "other", "implied_letter": implied,
                                      "pointer_iou": overlap}


# ------------------------------------------------------------------------ one run

@dataclass
class ItemContext:
    """What a prediction needs besides its completion: the question, choices, evidence and
    the audio the model heard (None = silence)."""

    id: str
    question: str = ""
    choices: list[str] = field(default_factory=list)
    evidence: list[tuple[float, float]] = field(default_factory=list)
    audio: str | None = None
    pointer_candidates: list[tuple[tuple[float, float], str]] | None = None  # (span, implied letter)


def _examples_of_run(run_dir: Path, data: str | None) -> tuple[dict, dict]:
    """(run settings, examples by id) for a run folder; ``data`` (a QA JSONL) overrides."""
    from ..records import QAExample, read_jsonl

    info: dict = {}
    info_path = run_dir / "run.json"
    if info_path.exists():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise TgsrError(f"{info_path}: unreadable run settings ({e.msg})") from None
    if data:
        return info, {ex.id: ex for ex in read_jsonl(data, QAExample)}
    if info.get("benchmark"):
        from ..eval.benchmarks import get_benchmark

        try:
            exs = get_benchmark(info["benchmark"]).load(info.get("data_root"), info.get("meta"))
        except (TgsrError, OSError):
            exs = []          # data moved: fall back to what each prediction carries
        return info, {ex.id: ex for ex in exs}
    return info, {}


def load_run(run_dir: str | Path, data: str | None = None):
    """Predictions of a run, their contexts and the run settings."""
    from ..records import Prediction, read_jsonl

    run_dir = Path(run_dir)
    path = run_dir / "predictions.jsonl"
    if not path.exists():
        raise TgsrError(f"{path}: file not found (is {run_dir} an evaluation run folder?)")
    res = read_jsonl(path, Prediction, on_error="skip", resolve_audio=False)
    info, examples = _examples_of_run(run_dir, data)
    contexts = {}
    for p in res.records:
        ex = examples.get(p.id)
        ctx = ItemContext(id=p.id)
        if ex is not None:
            ctx.question, ctx.choices = ex.question, list(ex.choices)
            ctx.evidence = list(getattr(ex, "evidence", []) or [])
            ctx.audio = ex.audio
            ctx.pointer_candidates = pointer_candidates(ex)
        ctx.choices = ctx.choices or list(p.meta.get("choices") or [])
        ctx.audio = ctx.audio or p.meta.get("audio")
        if p.condition == "silence":
            ctx.audio = None
        elif p.condition == "swapped":
            partner = examples.get(p.meta.get("swapped_with", ""))
            ctx.audio = partner.audio if partner is not None else None
            if partner is None:
                ctx.audio = "__unknown_partner__"
        contexts[p.id] = ctx
        if p.gold_letter and p.error is None and p.completion is not None:
            # Letters by the current rule, as `tgsr eval score` does: the stored ones may be stale.
            choices = p.meta.get("choices") or ctx.choices
            p.pred_letter = extract_choice(p.completion, choices).letter
            p.correct = is_correct(p.pred_letter, p.gold_letter, choices)
    return res.records, res.errors, contexts, info


def score_prediction(pred, ctx: ItemContext, *, judge, transcribe: Callable | None,
                     audio_loader: Callable[[str], np.ndarray]) -> dict:
    """All behaviour metrics of one prediction, with a reason for every missing value."""
    row: dict = {"id": pred.id, "condition": pred.condition, "correct": pred.correct}
    na: dict = {}
    if pred.error or pred.completion is None:
        for m in METRICS:
            na[m] = f"prediction failed: {pred.error or 'no completion'}"
        row.update({m: None for m in METRICS}, na=na)
        return row
    text = pred.completion
    row["regions_explored"] = regions_explored(text)
    row["n_citations"] = sum(1 for s in find_spans(text) if s.valid)
    # audiology verify
    row["audiology_verify"] = None
    if transcribe is None:
        na["audiology_verify"] = "no ASR backend (--asr none)"
    elif row["n_citations"] == 0:
        na["audiology_verify"] = "no citation"
    elif ctx.audio == "__unknown_partner__":
        na["audiology_verify"] = "swapped audio partner unknown"
    else:
        try:
            audio = None if ctx.audio is None else audio_loader(ctx.audio)
        except AudioError as e:
            na["audiology_verify"] = f"audio: {e}"
        else:
            score, details = audiology_verify(audio, text, transcribe, cache={})
            row["audiology_verify"], row["citations"] = score, details
            if score is None:
                na["audiology_verify"] = "no citation with attributed words"
            quoted = [d["similarity"] for d in details if d.get("source") == "quote" and d["similarity"] is not None]
            row["audiology_verify_quoted"] = float(np.mean(quoted)) if quoted else None
    if row.get("audiology_verify_quoted") is None:
        row["audiology_verify_quoted"] = None
        na["audiology_verify_quoted"] = na.get("audiology_verify") or "no citation with quoted words"
    # consistency
    verdict = judge.judge(ctx.question, ctx.choices, text, pred.pred_letter)
    row["consistency"], row["judge_reason"] = verdict.score, verdict.reason
    if verdict.argued is not None:
        row["argued_letter"] = verdict.argued
    if verdict.score is None:
        na["consistency"] = verdict.reason
    # grounding precision
    row["grounding_precision"] = grounding_precision(text, ctx.evidence)
    if row["grounding_precision"] is None:
        na["grounding_precision"] = "no gold evidence" if not ctx.evidence else "no citation"
    # exact citation-answer consistency (pointer items)
    row["citation_consistency"] = None
    if ctx.pointer_candidates is None:
        na["citation_consistency"] = "no pointer span in the item"
    else:
        row["citation_consistency"], detail = citation_consistency(text, pred.pred_letter, ctx.pointer_candidates)
        if row["citation_consistency"] is None:
            na["citation_consistency"] = detail.pop("reason")
        row.update(detail)
    row["na"] = na
    return row


def summarize_items(rows: Sequence[dict], n_predictions: int, n_malformed: int = 0) -> dict:
    """Means over items with a value; ``n`` and ``n_na`` (with reason counts) per metric."""
    out: dict = {"n_predictions": n_predictions, "n_malformed_lines": n_malformed}
    correct = [r for r in rows if r.get("correct") is True]
    out["accuracy"] = {"mean": len(correct) / n_predictions if n_predictions else None,
                       "n": n_predictions, "note": "failed or unparsed predictions count as wrong"}
    for m in METRICS:
        vals = [r[m] for r in rows if r.get(m) is not None]
        reasons: dict[str, int] = {}
        for r in rows:
            if r.get(m) is None:
                why = (r.get("na") or {}).get(m, "missing")
                why = why if len(why) < 80 else why[:77] + "..."
                reasons[why] = reasons.get(why, 0) + 1
        out[m] = {"mean": float(np.mean(vals)) if vals else None, "n": len(vals),
                  "n_na": len(rows) - len(vals), "na_reasons": reasons}
    # accuracy by which span the pointer citation named (the gold one, another candidate)
    by_pointer = {}
    for case in ("gold", "other"):
        sel = [r for r in rows if r.get("pointer_cited") == case]
        by_pointer[case] = {"n": len(sel), "accuracy": (sum(r.get("correct") is True for r in sel) / len(sel))
                            if sel else None}
    out["accuracy_by_pointer_citation"] = by_pointer
    return out


def run_behaviors(run_dir: str | Path, out_dir: str | Path | None = None, *, asr: str | None = "faster-whisper",
                  asr_model: str | None = None, judge: str = "rule", data: str | None = None,
                  progress: bool = True, transcribe: Callable | None = None, device: str = "auto",
                  dtype: str | None = None) -> dict:
    """Score every prediction of a run; resumable (``behaviors_items.jsonl`` is appended).

    ``asr`` is a ``tgsr.data.align`` backend name (``none`` to skip Audiology Verify);
    ``transcribe`` overrides it with any ``audio -> text`` callable. ``device``/``dtype`` place an
    ``hf:`` judge model (``tgsr.models.placement``). Returns the summary, also
    written to ``behaviors.json`` and ``behaviors.md`` in ``out_dir`` (default ``RUN_DIR/behaviors``).
    The output folder is locked while it runs; the rows are a ``tgsr.runlog.ItemLog`` (other
    settings refused, failed items retried on resume).
    """
    from ..runlog import FolderLock

    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir else run_dir / "behaviors"
    with FolderLock(out):
        return _behavior_items(run_dir, out, asr=asr, asr_model=asr_model, judge=judge, data=data, progress=progress,
                               transcribe=transcribe, device=device, dtype=dtype)


def _behavior_items(run_dir: Path, out: Path, *, asr: str | None, asr_model: str | None, judge: str,
                    data: str | None, progress: bool, transcribe: Callable | None, device: str,
                    dtype: str | None) -> dict:
    from tqdm.auto import tqdm

    from ..audio import load_audio
    from ..runlog import ItemLog
    from .judge import get_judge

    preds, bad_lines, contexts, info = load_run(run_dir, data)
    settings = {"run_dir": str(run_dir.resolve()), "asr": None if transcribe is None and asr in (None, "none") else
                (asr if transcribe is None else "custom"), "asr_model": asr_model, "judge": judge}
    items = ItemLog(out / "behaviors_items.jsonl", out / "behaviors_settings.json", what="behaviour scores",
                    hint=f"delete {out} to score again with the new ones")
    judge_obj = get_judge(judge, device=device, dtype=dtype)   # a bad --judge or --asr fails before anything is written
    if transcribe is None and asr not in (None, "none"):
        from ..data.align import BACKENDS

        if asr not in BACKENDS:
            raise TgsrError(f"unknown ASR backend {asr!r}; expected one of {', '.join(BACKENDS)} or none")
    done = items.resume(settings)
    if transcribe is None and asr not in (None, "none"):
        from ..data.align import get_aligner

        aligner = None

        def transcribe(audio: np.ndarray) -> str:  # load Whisper only if a crop needs it
            nonlocal aligner
            if aligner is None:
                aligner = get_aligner(asr, asr_model)
            return aligner.transcribe(audio) if len(audio) else ""

    audio_cache: dict[str, np.ndarray] = {}

    def audio_loader(path: str) -> np.ndarray:
        if path not in audio_cache:
            audio_cache.clear()          # predictions of one clip are usually adjacent
            audio_cache[path] = load_audio(path)
        return audio_cache[path]

    todo = items.pending(preds, done)
    t0 = time.perf_counter()
    for p in tqdm(todo, desc="behaviours", unit="item", disable=not progress, dynamic_ncols=True):
        try:
            row = score_prediction(p, contexts[p.id], judge=judge_obj, transcribe=transcribe,
                                   audio_loader=audio_loader)
        except TgsrError as e:          # e.g. the judge endpoint is down: record and go on
            row = {"id": p.id, "condition": p.condition, "correct": p.correct, **{m: None for m in METRICS},
                   "na": {m: f"error: {e}" for m in METRICS}, "error": str(e)}
        items.append(row)
    rows = items.rows_for(p.id for p in preds)
    summary = summarize_items(rows, len(preds), len(bad_lines))
    summary["label"] = info.get("label") or Path(info.get("model") or run_dir.name).name
    summary["settings"] = settings
    (out / "behaviors.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    (out / "behaviors.md").write_text(table3_markdown({summary["label"]: summary}) + "\n", encoding="utf-8")
    if progress and todo:
        dt = time.perf_counter() - t0
        print(f"behaviours: {len(todo)} predictions scored in {dt:.1f}s ({len(todo) / dt if dt else 0:.2f} items/s)")
    return summary


def table3_markdown(summaries: Mapping[str, dict]) -> str:
    """Rows of runs, columns of metrics, in the style of the paper's Table 3."""
    cols = ("accuracy",) + METRICS
    lines = ["| run | n | " + " | ".join(_LABELS[c] for c in cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for label, s in summaries.items():
        cells = []
        for c in cols:
            v = s.get(c, {})
            if v.get("mean") is None:
                cells.append("n/a")
            elif c == "regions_explored":
                cells.append(f"{v['mean']:.2f}" + (f" ({v['n']})" if v.get("n_na") else ""))
            else:
                cells.append(f"{v['mean']:.3f}" + (f" ({v['n']})" if v.get("n_na") else ""))
        lines.append(f"| {label} | {s.get('n_predictions', 0)} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Values in brackets: number of items the mean is over, when some items have no value "
                 "(see na_reasons in behaviors.json).")
    return "\n".join(lines)
