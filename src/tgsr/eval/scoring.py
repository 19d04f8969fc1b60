"""Scoring: tgsr's own accuracy and the official benchmark rules, re-implemented exactly.

Two numbers are reported for every multiple-choice benchmark, and named as such:

* **tgsr accuracy** (``tgsr``): the option letter extracted from the completion
  (``tgsr.answers.extract_choice``) against the gold letter. Every item is in the
  denominator: an unparseable completion is wrong and counted in ``unparseable``; an item
  that could not be run (missing or corrupt audio) is wrong and counted in ``errors``;
  ``accuracy_excluding_errors`` leaves the error items out. When an item lists the gold
  option's text twice, either letter of that text is right.
* **official-rule accuracy** (``official``): the benchmark's own scorer applied to the
  exported prediction file, quirks included:
    - MMAU / MMAR ``string_match``: bag-of-``\\w+``-tokens on the prediction text; records
      without the prediction key are skipped, not counted;
    - AIR-Bench Foundation: the first character of the stripped response if it is one of
      A-D, else its second-to-last character, else a failure; failures are excluded from
      the denominator; accuracy per ``task_name + "_" + dataset_name``.
  Inputs on which the official script would crash raise ``RecordError`` naming the record.
* MELD additionally reports the support-weighted F1 over the 7 emotions.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Iterable, Sequence

from ..errors import RecordError
from ..records import LETTERS, Prediction

# ------------------------------------------------------------------ MMAU / MMAR rule

_TOKEN = re.compile(r"\b\w+\b")


def tokenize(text: str) -> set[str]:
    """The official tokeniser: the set of ``\\b\\w+\\b`` matches in the lower-cased text."""
    return set(_TOKEN.findall(text.lower()))


def string_match(answer: str, prediction: str, choices: Sequence[str]) -> bool:
    """MMAU/MMAR ``string_match``: every answer token is in the prediction and no token that
    belongs only to a wrong option is. Options token-equal to the answer are not wrong
    options (so word permutations of the answer are accepted, as in the official scorer)."""
    if prediction is None:
        raise TypeError("prediction is None (the official scorer raises AttributeError here)")
    p = tokenize(prediction)
    a = tokenize(answer)
    if not p:
        return False
    wrong: set[str] = set()
    for c in choices:
        t = tokenize(c)
        if t != a:
            wrong |= t - a
    return a <= p and not (p & wrong)


# ------------------------------------------------------------------ AIR-Bench rule

AIRBENCH_LETTERS = "ABCD"


def airbench_letter(response: str) -> str | None:
    """The letter ``score_foundation.py`` reads from a response, or None for a failure."""
    if response is None:
        raise TypeError("response is None (the official scorer crashes on a JSON null)")
    p = response.strip().replace("\n", "")
    if p == "" or p == "None":
        return None
    if p[0] in AIRBENCH_LETTERS:
        return p[0]
    if len(p) > 1 and p[-2] in AIRBENCH_LETTERS:
        return p[-2]
    return None


def airbench_choices(record: dict) -> list[str | None]:
    return [record.get(f"choice_{x}") for x in "abcd"]


def airbench_gold_letter(record: dict) -> str | None:
    """First of A-D whose option text equals ``answer_gt`` exactly (None if no option does)."""
    for letter, text in zip(AIRBENCH_LETTERS, airbench_choices(record)):
        if text == record.get("answer_gt"):
            return letter
    return None


def airbench_group(record: dict) -> str:
    return f"{record.get('task_name')}_{record.get('dataset_name')}"


# ------------------------------------------------------------------ official drivers

def _rate(correct: int, total: int) -> float | None:
    """A fraction (tgsr stores rates as fractions; percent is for printing only)."""
    return correct / total if total else None


def _bucket() -> dict:
    return {"correct": 0, "total": 0}


def _finish(buckets: dict[str, dict]) -> dict[str, dict]:
    return {k: {**v, "accuracy": _rate(v["correct"], v["total"])} for k, v in sorted(buckets.items())}


MMAU_TASKS = ("sound", "music", "speech")
MMAU_DIFFICULTIES = ("easy", "medium", "hard")
MMAR_MODALITIES = ("sound", "music", "speech", "mix-sound-music", "mix-sound-speech", "mix-music-speech",
                   "mix-sound-music-speech")
MMAR_CATEGORIES = ("Signal Layer", "Perception Layer", "Semantic Layer", "Cultural Layer")


def _where(source: str | None, index: int, lines: Sequence[int] | None = None) -> tuple[str | None, int]:
    """File and record number (1-based) for error messages."""
    return source, (lines[index] if lines else index + 1)


def official_mmau(records: Sequence[dict], *, key: str = "model_output", source: str | None = None,
                 lines: Sequence[int] | None = None) -> dict:
    """MMAU ``evaluation.py``: accuracy with task / difficulty / sub-category breakdowns.

    ``records`` are benchmark records carrying the prediction under ``key``; records
    without it are skipped silently (reported here as ``skipped_no_prediction``).
    """
    return _official_string_match(records, key=key, source=source, lines=lines, rule="mmau string_match",
                                  fixed={"task": MMAU_TASKS, "difficulty": MMAU_DIFFICULTIES},
                                  dynamic=("sub-category",))


def official_mmar(records: Sequence[dict], *, key: str = "answer_prediction", source: str | None = None,
                 lines: Sequence[int] | None = None) -> dict:
    """MMAR ``code/evaluation.py``: the same ``string_match``; modality / category / sub-category."""
    return _official_string_match(records, key=key, source=source, lines=lines, rule="mmar string_match",
                                  fixed={"modality": MMAR_MODALITIES, "category": MMAR_CATEGORIES},
                                  dynamic=("sub-category",))


def _official_string_match(records: Sequence[dict], *, key: str, source: str | None, lines: Sequence[int] | None,
                           rule: str,
                           fixed: dict[str, tuple[str, ...]], dynamic: tuple[str, ...]) -> dict:
    total = _bucket()
    by: dict[str, dict[str, dict]] = {f: {v: _bucket() for v in values} for f, values in fixed.items()}
    by.update({f: {} for f in dynamic})
    skipped = 0
    for i, rec in enumerate(records):
        path, line = _where(source, i, lines)
        if key not in rec:
            skipped += 1
            continue
        pred = rec[key]
        if not isinstance(pred, str):
            raise RecordError(path, line, key, f"prediction must be a string, got {type(pred).__name__} "
                                               "(the official scorer crashes here)")
        for f in ("answer", "choices"):
            if f not in rec:
                raise RecordError(path, line, f, "missing (the official scorer needs it)")
        ok = string_match(rec["answer"], pred, rec["choices"])
        keys = {}
        for f, values in fixed.items():
            v = rec.get(f)
            if v not in values:
                raise RecordError(path, line, f, f"{v!r} is not one of {list(values)} "
                                                 "(the official scorer raises KeyError here)")
            keys[f] = v
        for f in dynamic:
            keys[f] = str(rec.get(f))
        for bucket in [total] + [by[f].setdefault(v, _bucket()) for f, v in keys.items()]:
            bucket["total"] += 1
            bucket["correct"] += int(ok)
    return {
        "rule": rule,
        "accuracy": _rate(total["correct"], total["total"]),
        "correct": total["correct"],
        "counted": total["total"],
        "skipped_no_prediction": skipped,
        "by": {f: _finish({k: v for k, v in b.items() if v["total"] or f in dynamic}) for f, b in by.items()},
    }


def official_airbench(records: Sequence[dict], *, key: str = "response", source: str | None = None,
                      lines: Sequence[int] | None = None) -> dict:
    """AIR-Bench ``score_foundation.py``: per ``task_name_dataset_name`` accuracy over the
    non-failed items. ``accuracy`` (pooled over groups) is not printed by the official
    script; it is given for convenience and named ``accuracy_pooled``."""
    groups: dict[str, dict] = defaultdict(_bucket)
    fail_num = 0
    total_sum = 0
    skipped = 0
    for i, rec in enumerate(records):
        path, line = _where(source, i, lines)
        if key not in rec:
            skipped += 1
            continue
        if rec[key] is None or not isinstance(rec[key], str):
            raise RecordError(path, line, key, "response is null or not a string (the official scorer crashes here)")
        gold = airbench_gold_letter(rec)
        if gold is None:
            raise RecordError(path, line, "answer_gt", f"{rec.get('answer_gt')!r} equals none of choice_a..d "
                                                       "(the official scorer exits with status 1 here)")
        total_sum += 1
        letter = airbench_letter(rec[key])
        if letter is None:
            fail_num += 1
            continue
        g = groups[airbench_group(rec)]
        g["total"] += 1
        g["correct"] += int(letter == gold)
    correct = sum(g["correct"] for g in groups.values())
    counted = sum(g["total"] for g in groups.values())
    return {
        "rule": "airbench first/second-to-last letter",
        "accuracy_pooled": _rate(correct, counted),
        "correct": correct,
        "counted": counted,
        "fail_num": fail_num,
        "total_sum": total_sum,
        "skipped_no_prediction": skipped,
        "by": {"group": _finish(dict(groups))},
    }


OFFICIAL_DRIVERS = {"mmau": official_mmau, "mmar": official_mmar, "airbench": official_airbench}


def official_accuracy(result: dict) -> float | None:
    """The headline number of an official result (pooled over groups for AIR-Bench)."""
    return result.get("accuracy", result.get("accuracy_pooled"))


# ------------------------------------------------------------------ tgsr accuracy

def is_correct(pred_letter: str | None, gold_letter: str | None, choices: Sequence[str] | None = None) -> bool:
    """The predicted letter is gold, or names an option with exactly the gold option's text."""
    if not pred_letter or not gold_letter:
        return False
    pred_letter, gold_letter = pred_letter.lower(), gold_letter.lower()
    if pred_letter == gold_letter:
        return True
    if choices:
        i, j = LETTERS.find(pred_letter), LETTERS.find(gold_letter)
        if 0 <= i < len(choices) and 0 <= j < len(choices):
            return choices[i] == choices[j]
    return False


def dedupe(predictions: Iterable[Prediction]) -> tuple[list[Prediction], int]:
    """Keep the first prediction per id; return them and the number of duplicates dropped."""
    seen: set[str] = set()
    out, dup = [], 0
    for p in predictions:
        if p.id in seen:
            dup += 1
            continue
        seen.add(p.id)
        out.append(p)
    return out, dup


def tgsr_accuracy(predictions: Iterable[Prediction], *, n_items: int | None = None) -> dict:
    """tgsr accuracy with per-field breakdowns (``meta["breakdown"]`` of each prediction).

    ``n_items`` is the benchmark size; items with no prediction yet are reported as
    ``missing`` and count as wrong, so a partial run never looks better than it is.
    """
    preds, duplicates = dedupe(predictions)
    n = max(n_items or 0, len(preds))
    correct = unparseable = errors = 0
    by: dict[str, dict[str, dict]] = defaultdict(dict)
    for p in preds:
        ok = p.error is None and is_correct(p.pred_letter, p.gold_letter, p.meta.get("choices"))
        if p.error is not None:
            errors += 1
        elif not p.pred_letter:
            unparseable += 1
        correct += int(ok)
        for field, value in (p.meta.get("breakdown") or {}).items():
            b = by[field].setdefault(str(value), {"correct": 0, "total": 0, "unparseable": 0, "errors": 0})
            b["total"] += 1
            b["correct"] += int(ok)
            b["errors"] += int(p.error is not None)
            b["unparseable"] += int(p.error is None and not p.pred_letter)
    answered = n - errors  # missing items still count as wrong
    return {
        "rule": "tgsr extracted letter",
        "accuracy": _rate(correct, n),
        "correct": correct,
        "items": n,
        "predicted": len(preds),
        "missing": n - len(preds),
        "unparseable": unparseable,
        "errors": errors,
        "duplicates_ignored": duplicates,
        "accuracy_excluding_errors": _rate(correct, answered),
        "by": {f: _finish(b) for f, b in sorted(by.items())},
    }


# ------------------------------------------------------------------ MELD weighted F1

def weighted_f1(gold: Sequence[str], pred: Sequence[str]) -> dict:
    """Support-weighted precision / recall / F1, as sklearn's
    ``precision_recall_fscore_support(average="weighted")`` computes them.

    Per-label scores over every label seen in gold or predictions (an ill-defined ratio
    counts 0, sklearn's ``zero_division`` default), averaged with weights = gold support.
    Labels that only occur in predictions weigh 0 but still lower the other labels'
    precision through their false positives.
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    if not gold:
        return {"precision": None, "recall": None, "f1": None, "support": 0, "per_label": {}}
    support = Counter(gold)
    pred_count = Counter(pred)
    tp = Counter(g for g, p in zip(gold, pred) if g == p)
    per_label = {}
    for label in sorted(set(gold) | set(pred)):
        prec = tp[label] / pred_count[label] if pred_count[label] else 0.0
        rec = tp[label] / support[label] if support[label] else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per_label[label] = {"precision": prec, "recall": rec, "f1": f1, "support": support[label]}
    total = len(gold)
    avg = {m: sum(v[m] * v["support"] for v in per_label.values()) / total for m in ("precision", "recall", "f1")}
    return {**avg, "support": total, "per_label": per_label}


__all__ = [
    "tokenize", "string_match", "airbench_letter", "airbench_choices", "airbench_gold_letter", "airbench_group",
    "official_mmau", "official_mmar", "official_airbench", "OFFICIAL_DRIVERS", "official_accuracy",
    "is_correct", "dedupe", "tgsr_accuracy", "weighted_f1",
]
