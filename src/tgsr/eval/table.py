"""``tgsr eval table``: runs side by side, laid out like the paper's Table 2.

One row per model/method (the run's ``label``, default the model folder name plus any
non-default prompt or listening condition), one column per benchmark. Multiple-choice
cells show tgsr accuracy with the official-rule accuracy in brackets; MELD adds weighted
F1; STA shows mean IoU, the IoU >= 0.7 rate and SED-F1. A cell marked ``†`` comes from
an incomplete run (items missing) and ``!`` from a run with error items. ``Avg`` is the mean
tgsr accuracy over the paper's benchmarks the row has (MMAU, MMAR, AIR-Bench, MELD; not the
synthetic set).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Sequence

from ..errors import TgsrError
from .run import METRICS, RUN_INFO

# column order of the paper's Table 2, then the extra benchmarks
ORDER = ("mmau-mini-speech", "mmar-speech", "airbench-ser", "airbench-snv", "airbench-sic", "meld", "synthetic")
# Avg covers the paper's benchmarks; the synthetic set is tgsr's own and stays out of it
AVERAGED = ("mmau-mini-speech", "mmar-speech", "airbench-ser", "airbench-snv", "airbench-sic", "meld")
TITLES = {"mmau-mini-speech": "MMAU-mini speech", "mmar-speech": "MMAR speech", "airbench-ser": "AIR SER",
          "airbench-snv": "AIR SNV", "airbench-sic": "AIR SIC", "meld": "MELD", "synthetic": "Synthetic"}


def _fmt(v: float | None) -> str:
    """A stored fraction as a percent cell (the CSV keeps the fractions)."""
    return "–" if v is None else f"{100 * v:.1f}"


def row_label(info: dict) -> str:
    if info.get("label"):
        return str(info["label"])
    label = Path(str(info.get("model", "?"))).name or str(info.get("model"))
    extras = [x for x in (info.get("prompt") if info.get("prompt") != "grounded" else None,
                          info.get("audio_condition") if info.get("audio_condition") not in (None, "own") else None)
              if x]
    return f"{label} [{', '.join(extras)}]" if extras else label


def load_runs(run_dirs: Sequence[str | Path]) -> dict[str, dict[str, dict]]:
    """label -> benchmark -> metrics (with ``_dir``)."""
    table: dict[str, dict[str, dict]] = {}
    for d in run_dirs:
        d = Path(d)
        for name in (RUN_INFO, METRICS):
            if not (d / name).is_file():
                raise TgsrError(f"{d}: not a finished run folder ({name} missing; run `tgsr eval run` or "
                                "`tgsr eval score` first)")
        info = json.loads((d / RUN_INFO).read_text(encoding="utf-8"))
        metrics = json.loads((d / METRICS).read_text(encoding="utf-8"))
        label, bench = row_label(info), info["benchmark"]
        row = table.setdefault(label, {})
        if bench in row:
            raise TgsrError(f"two runs for {label!r} on {bench}: {row[bench]['_dir']} and {d}; give one a --label")
        row[bench] = {**metrics, "_dir": str(d)}
    return table


def _flags(m: dict, part: dict) -> str:
    return ("†" if part.get("missing") else "") + ("!" if part.get("errors") else "")


def build(run_dirs: Sequence[str | Path]) -> tuple[str, str]:
    """(markdown, csv) for the given run folders."""
    table = load_runs(run_dirs)
    benches = [b for b in ORDER if any(b in r for r in table.values())]
    has_sta = any("sta" in r for r in table.values())
    has_meld = "meld" in benches
    header = ["Model"] + [TITLES[b] for b in benches] + (["MELD wF1"] if has_meld else []) + ["Avg"]
    if has_sta:
        header += ["STA IoU", "IoU≥0.7", "SED-F1"]
    md_rows = []
    csv_rows = []
    for label, runs in table.items():
        cells, accs = [label], []
        crow: dict = {"model": label}
        for b in benches:
            m = runs.get(b)
            if m is None:
                cells.append("")
                continue
            t, off = m.get("tgsr", {}), m.get("official")
            acc = t.get("accuracy")
            off_acc = None if off is None else off.get("accuracy", off.get("accuracy_pooled"))
            cell = _fmt(acc) + (f" ({_fmt(off_acc)})" if off is not None else "") + _flags(m, t)
            cells.append(cell)
            if acc is not None and b in AVERAGED:
                accs.append(acc)
            crow.update({f"{b}_tgsr": acc, f"{b}_official": off_acc, f"{b}_items": t.get("items"),
                         f"{b}_unparseable": t.get("unparseable"), f"{b}_errors": t.get("errors"),
                         f"{b}_missing": t.get("missing")})
            if off is not None and "fail_num" in off:
                crow[f"{b}_official_failures"] = off["fail_num"]
        if has_meld:
            f1 = (runs.get("meld") or {}).get("weighted_f1", {}).get("f1")
            cells.append(_fmt(f1) if "meld" in runs else "")
            crow["meld_weighted_f1"] = f1
        avg = sum(accs) / len(accs) if accs else None
        cells.append(_fmt(avg))
        crow["avg_tgsr"] = avg
        if has_sta:
            s = (runs.get("sta") or {}).get("sta")
            if s:
                cells += [_fmt(s["mean_iou"]) + _flags({}, s), _fmt(s["iou_at_0.7"]), _fmt(s["sed"]["f1"])]
                crow.update({"sta_mean_iou": s["mean_iou"], "sta_iou_at_0.7": s["iou_at_0.7"],
                             "sta_sed_f1": s["sed"]["f1"], "sta_items": s["items"]})
            else:
                cells += ["", "", ""]
        md_rows.append(cells)
        csv_rows.append(crow)
    md = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    md += ["| " + " | ".join(r) + " |" for r in md_rows]
    md.append("")
    md.append("tgsr accuracy (%), official-rule accuracy in brackets (AIR-Bench: pooled over groups, failures "
              "excluded). † incomplete run, ! items with unreadable audio (counted wrong). "
              "Avg: mean tgsr accuracy over the row's paper benchmarks (synthetic excluded).")
    fields: list[str] = []
    for r in csv_rows:
        fields += [k for k in r if k not in fields]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in csv_rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})
    return "\n".join(md) + "\n", buf.getvalue()


__all__ = ["build", "load_runs", "row_label", "ORDER", "TITLES"]
