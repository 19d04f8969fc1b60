"""From predictions to metrics: one function per input kind, one result dict shape.

* ``score_predictions(benchmark, predictions, n_items)``: a tgsr run (``predictions.jsonl``).
  Letters are re-extracted from the completions, so a run is always scored by the current
  extraction rule; the official rule is applied to the run's official-format export.
* ``score_official_file(benchmark, path)``: a prediction file in the benchmark's official
  format, possibly from another system; scored by the official rule and by tgsr's rule
  (``extract_choice`` on the prediction field).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from ..errors import RecordError, TgsrError
from ..records import LETTERS, Prediction
from . import scoring
from .benchmarks import get_benchmark
from .benchmarks.airbench import TASKS as AIRBENCH_TASKS
from .export import FORMATS, export_records, read_export
from .metrics import score_spans

NO_ANSWER = "<no answer>"


def reextract(pred: Prediction) -> Prediction:
    """Set ``pred_letter``/``parse_error``/``correct`` from the completion with ``extract_choice``."""
    from ..answers import extract_choice

    if pred.error is not None or pred.completion is None:
        pred.pred_letter, pred.correct = None, False
        return pred
    ext = extract_choice(pred.completion, pred.meta.get("choices") or [])
    pred.pred_letter = ext.letter
    pred.parse_error = None if ext.letter else (ext.reason or "no choice found")
    pred.correct = scoring.is_correct(ext.letter, pred.gold_letter, pred.meta.get("choices"))
    return pred


def score_predictions(benchmark: str, predictions: Iterable[Prediction], *, n_items: int | None = None,
                      export_text: str = "written") -> dict:
    """All metrics of a tgsr run on ``benchmark``."""
    bench = get_benchmark(benchmark)
    preds, dup = scoring.dedupe(predictions)
    if bench.kind == "sta":
        return {"benchmark": benchmark, "sta": score_sta(preds, n_items=n_items), "duplicates_ignored": dup}
    preds = [reextract(p) for p in preds]
    out: dict = {"benchmark": benchmark, "tgsr": scoring.tgsr_accuracy(preds, n_items=n_items)}
    if bench.official:
        records = export_records(bench.official, preds, text=export_text)
        out["official"] = scoring.OFFICIAL_DRIVERS[bench.official](records)
    if benchmark == "meld":
        out["weighted_f1"] = meld_weighted_f1(preds, n_items=n_items)
    return out


def meld_weighted_f1(preds: Sequence[Prediction], *, n_items: int | None = None) -> dict:
    """Support-weighted F1 over the emotions; no answer (or an error) is its own wrong label."""
    gold, pred = [], []
    for p in preds:
        choices = p.meta.get("choices") or []
        gold.append(choices[LETTERS.index(p.gold_letter)] if p.gold_letter else NO_ANSWER)
        ok = p.error is None and p.pred_letter and LETTERS.index(p.pred_letter) < len(choices)
        pred.append(choices[LETTERS.index(p.pred_letter)] if ok else NO_ANSWER)
    res = scoring.weighted_f1(gold, pred)
    res["missing_items"] = max(0, (n_items or 0) - len(preds))  # not in the F1: no gold label to pair
    return res


def score_sta(preds: Sequence[Prediction], *, n_items: int | None = None) -> dict:
    """``tgsr.eval.metrics.score_spans`` over a run's predictions (error items count as failed)."""
    outputs = [None if p.error is not None else p.completion for p in preds]
    res = score_spans(outputs, [tuple(p.meta["ref"]) for p in preds], n_items=n_items)
    del res["ious"]  # per item, they are in predictions.jsonl
    return res


# ------------------------------------------------------------------ official-format files

def _select(benchmark: str, rec: dict) -> bool:
    if benchmark == "mmau-mini-speech":
        return rec.get("task") == "speech"
    if benchmark == "mmar-speech":
        return rec.get("modality") == "speech"
    if benchmark.startswith("airbench-"):
        return rec.get("task_name") == AIRBENCH_TASKS[benchmark.split("-", 1)[1]]
    return True


def _prediction_from_record(fmt: str, rec: dict, key: str, path: Path, where: int) -> Prediction:
    if fmt == "airbench":
        choices = [c for c in scoring.airbench_choices(rec) if c is not None]
        gold = scoring.airbench_gold_letter(rec)
        item_id = str(rec.get("uniq_id"))
        breakdown = {"group": scoring.airbench_group(rec)}
    else:
        choices = rec.get("choices") or []
        gold = LETTERS[choices.index(rec["answer"])] if rec.get("answer") in choices else None
        item_id = str(rec.get("id"))
        breakdown = {"sub-category": rec.get("sub-category")}
    if gold is None:
        raise RecordError(path, where, "answer", "the gold answer is none of the choices")
    text = rec.get(key)
    return Prediction(
        id=item_id, completion=text if isinstance(text, str) else None,
        gold_letter=gold.lower(), error=None if isinstance(text, str) else f"no '{key}' field",
        meta={"choices": choices, "breakdown": breakdown})


def score_official_file(benchmark: str, path: str | Path) -> dict:
    """Score an official-format prediction file with the official rule and tgsr's rule.

    Only records of the benchmark's selection are scored (e.g. ``task == "speech"`` for
    ``mmau-mini-speech``); the counts of selected and total records are reported.
    """
    bench = get_benchmark(benchmark)
    if not bench.official:
        raise TgsrError(f"{benchmark} has no official prediction format; score a tgsr predictions.jsonl instead")
    path = Path(path)
    spec = FORMATS[bench.official]
    records = read_export(path)
    selected = [(i, r) for i, r in enumerate(records) if _select(benchmark, r)]
    if not selected:
        raise RecordError(path, None, None, f"no {benchmark} records in this file")
    official = scoring.OFFICIAL_DRIVERS[bench.official]([r for _, r in selected], source=str(path),
                                                        lines=[i + 1 for i, _ in selected])
    preds = [reextract(_prediction_from_record(bench.official, r, spec.key, path, i + 1)) for i, r in selected]
    tgsr = scoring.tgsr_accuracy(preds)
    tgsr["errors_are"] = f"records without '{spec.key}'"
    return {"benchmark": benchmark, "file": str(path), "records_in_file": len(records),
            "records_selected": len(selected), "official": official, "tgsr": tgsr}


__all__ = ["score_predictions", "score_sta", "meld_weighted_f1", "score_official_file", "reextract", "NO_ANSWER"]
