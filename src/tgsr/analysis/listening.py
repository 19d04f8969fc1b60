"""Listening controls side by side: own vs swapped vs silent audio, from finished eval runs.

``tgsr eval run --audio-condition own|swapped|silence`` writes one run folder per
condition. This groups them by model and benchmark and reports accuracy (multiple choice)
or mean IoU (timestamp tasks) under each condition, with the gap own - swapped: how much
the answers depend on the clip's own audio, which text priors cannot fake.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from ..errors import TgsrError
from ..eval.run import CONDITIONS

__all__ = ["listening_table"]



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
