"""Listening controls side by side: own vs swapped vs silent audio, from finished eval runs.

``tgsr eval run --audio-condition own|swapped|silence`` writes one run folder per
condition. This groups them by model and benchmark and reports accuracy (multiple choice)
or mean IoU (timestamp tasks) under each condition, with the gap own - swapped: how much
the answers depend on the clip's own audio, which text priors cannot fake.

``listening_gate`` turns one model's own and swapped runs into a pass / fail: above chance
(exact binomial, or exact Poisson binomial when items have different option counts) and above
its swapped-audio control (McNemar's exact test on the paired items), both one-sided.
Run it on a validation split: a gate that looks at the test items selects on them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from ..errors import TgsrError
from ..eval.run import CONDITIONS
from .stats import above_chance, mcnemar_exact

__all__ = ["listening_table", "listening_gate", "listening_gate_runs"]


def _score(metrics: dict) -> tuple[str, float | None]:
    if "sta" in metrics:
        return "mean IoU", metrics["sta"].get("mean_iou")
    return "accuracy", (metrics.get("tgsr") or {}).get("accuracy")


def listening_table(run_dirs: Sequence[str | Path]) -> tuple[str, dict]:
    """(markdown, data) for run folders of the same models under different audio conditions."""
    groups: dict[tuple[str, str], dict] = {}
    for d in run_dirs:
        d = Path(d)
        try:
            info = json.loads((d / "run.json").read_text(encoding="utf-8"))
            metrics = json.loads((d / "metrics.json").read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise TgsrError(f"{d}: not a finished run folder ({Path(e.filename).name} missing)") from None
        except json.JSONDecodeError as e:
            raise TgsrError(f"{d}: unreadable run file ({e.msg})") from None
        model = str(info.get("label") or Path(str(info.get("model", "?"))).name)
        cond = info.get("audio_condition", "own")
        key = (model, str(info.get("benchmark")))
        what, value = _score(metrics)
        g = groups.setdefault(key, {"metric": what})
        if cond in g:
            raise TgsrError(f"two {cond} runs for {model} on {key[1]}: {g[cond]['dir']} and {d}")
        g[cond] = {"value": value, "dir": str(d)}
    lines = ["| model | benchmark | metric | own | swapped | silence | own - swapped |",
             "|---|---|---|---|---|---|---|"]
    data = []
    for (model, bench), g in groups.items():
        vals = {c: (g.get(c) or {}).get("value") for c in CONDITIONS}
        gap = vals["own"] - vals["swapped"] if vals["own"] is not None and vals["swapped"] is not None else None
        cells = ["–" if v is None else f"{100 * v:.1f}" for v in (*vals.values(), gap)]  # percent, printed
        lines.append(f"| {model} | {bench} | {g['metric']} (%) | " + " | ".join(cells) + " |")
        data.append({"model": model, "benchmark": bench, "metric": g["metric"], **vals, "gap_own_swapped": gap})
    return "\n".join(lines), {"rows": data}


def listening_gate(own: Sequence[bool], swapped: Sequence[bool], chance: float | Sequence[float], *,
                   alpha: float = 0.05) -> dict:
    """Does a model listen? ``own`` and ``swapped``: per-item correctness on the same items in
    the same order; ``chance``: one rate, or one per item. Passes when accuracy with the clip's
    own audio is above chance and above the swapped-audio control, each at ``alpha`` (one-sided)."""
    if len(own) != len(swapped):
        raise TgsrError(f"listening gate: {len(own)} own-audio items but {len(swapped)} swapped")
    if not own:
        raise TgsrError("listening gate: no items")
    own, swapped = [bool(x) for x in own], [bool(x) for x in swapped]
    test = above_chance(own, chance)
    mc = mcnemar_exact(own, swapped, alternative="greater")
    n = len(own)
    acc_own, acc_swapped = sum(own) / n, sum(swapped) / n
    return {"passed": bool(test.pvalue < alpha and mc.pvalue < alpha and acc_own > acc_swapped), "n": n,
            "accuracy_own": acc_own, "accuracy_swapped": acc_swapped, "chance": test.chance,
            "p_above_chance": test.pvalue, "p_above_swapped": mc.pvalue,
            "only_own_correct": mc.only_a, "only_swapped_correct": mc.only_b, "alpha": alpha}


def listening_gate_runs(own_run: str | Path, swapped_run: str | Path, *, alpha: float = 0.05) -> dict:
    """``listening_gate`` of two ``tgsr eval run`` folders of one model on the same items (paired
    by id; chance per item: one over the options recorded with the prediction). Items that could not be run or parsed
    count as wrong; items in only one run are an error, never dropped."""
    from ..records import Prediction, read_jsonl

    runs = []
    for d in (Path(own_run), Path(swapped_run)):
        path = d / "predictions.jsonl"
        if not path.is_file():
            raise TgsrError(f"{d}: not an evaluation run folder (no predictions.jsonl)")
        runs.append({p.id: p for p in read_jsonl(path, Prediction, resolve_audio=False, unique="id").records})
    own, swapped = runs
    if set(own) != set(swapped):
        odd = sorted(set(own) ^ set(swapped))
        raise TgsrError(f"{own_run} and {swapped_run} hold different items ({len(odd)} differ, e.g. {odd[:3]})")
    ids = sorted(own)
    n_options = [len(own[i].meta.get("choices") or ()) for i in ids]
    if 0 in n_options:
        raise TgsrError(f"{own_run}: {n_options.count(0)} predictions do not record their options "
                        f"(e.g. {ids[n_options.index(0)]}); the gate needs them for chance")
    chances = [1.0 / k for k in n_options]
    return listening_gate([own[i].correct is True and not own[i].error for i in ids],
                          [swapped[i].correct is True and not swapped[i].error for i in ids], chances, alpha=alpha)
