"""``report.html``: the demo's (or any run's) results as one self-contained page.

The page is rendered from a results dict, saved by the demo as ``RUN_DIR/results.json``
so ``tgsr report RUN_DIR`` can rebuild it at any time. Shape (every key optional)::

    {"title": "...", "summary": "...",
     "setting": {"corpus": "...", "model": "...", ...},          # shown as a key/value table
     "notices": [{"level": "ok"|"warn"|"fail", "text": "..."}],
     "design":  ["...", ...],                                    # bullet list under the setting
     "tables":  [{"id": "accuracy", "title": "...", "caption": "...",
                  "columns": ["model", "own", ...], "rows": [["TGSR", 0.61, ...], ...]}],
     "curves":  [{"title": "...", "xlabel": "step", "ylabel": "reward",
                  "series": {"name": {"x": [...], "y": [...]}}}],
     "figures": [{"title": "...", "path": "plots/attention.png", "caption": "..."}],
     "examples": [<viewer example dicts>]}

Paths (figures, example audio) are relative to the run folder. Every string is escaped;
numbers are formatted here so that JSON keeps full precision.
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any

from ..errors import TgsrError
from .viewer import data_uri, esc, example_html, page

RESULTS_FILE = "results.json"
REPORT_FILE = "report.html"


def format_cell(value: Any) -> str:
    """Numbers to 3 decimals (integers as they are), None/NaN as an en dash, the rest as text."""
    if value is None:
        return "&ndash;"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "&ndash;"
        return f"{value:.3f}"
    return esc(value)


def _align(value: Any) -> str:
    """Numbers right-aligned (digits line up), text left-aligned."""
    return "num" if value is None or isinstance(value, (int, float)) else "text"


def table_html(table: dict) -> str:
    columns = table.get("columns", [])
    rows = table.get("rows", [])
    tid = esc(table.get("id", ""))
    parts = [f'<table id="table-{tid}" data-table="{tid}">']
    if table.get("caption"):
        parts.append(f"<caption>{esc(table['caption'])}</caption>")
    parts.append("<thead><tr>" + "".join(f'<th scope="col">{esc(c)}</th>' for c in columns) + "</tr></thead><tbody>")
    for row in rows:
        cells = [row.get(c) for c in columns] if isinstance(row, dict) else list(row)
        parts.append("<tr>" + "".join(f'<td class="{_align(v)}">{format_cell(v)}</td>' for v in cells) + "</tr>")
    parts.append("</tbody></table>")
    title = f"<h3>{esc(table['title'])}</h3>" if table.get("title") else ""
    return title + "\n".join(parts)


def curve_png(curve: dict, width_px: int = 640, height_px: int = 300) -> bytes | None:
    """Line plot of one or more series; None when there is nothing to draw."""
    series = {k: v for k, v in (curve.get("series") or {}).items() if v and v.get("y")}
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    dpi = 100
    fig, ax = plt.subplots(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    try:
        for name, s in series.items():
            y = [float("nan") if v is None else float(v) for v in s["y"]]
            x = s.get("x") or list(range(1, len(y) + 1))
            ax.plot(x, y, marker="o" if len(y) <= 20 else None, ms=3, lw=1.5, label=str(name))
        for ref in curve.get("hlines", []):
            ax.axhline(float(ref["y"]), color="#888", ls="--", lw=1)
            ax.text(ax.get_xlim()[0], float(ref["y"]), f" {ref.get('label', '')}", va="bottom", fontsize=7,
                    color="#555")
        ax.set_xlabel(str(curve.get("xlabel", "step")))
        ax.set_ylabel(str(curve.get("ylabel", "")))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        return buf.getvalue()
    finally:
        plt.close(fig)


def _figure_html(title: str, png: bytes, caption: str = "") -> str:
    cap = f" &mdash; {esc(caption)}" if caption else ""
    return (f"<figure><img alt=\"{esc(title)}\" src=\"{data_uri(png, 'image/png')}\">"
            f"<figcaption><strong>{esc(title)}</strong>{cap}</figcaption></figure>")


def render_report(results: dict, run_dir: str | os.PathLike | None = None) -> str:
    """The report page for ``results`` (paths inside it are relative to ``run_dir``)."""
    base = Path(run_dir) if run_dir is not None else None
    title = str(results.get("title") or "tgsr report")
    body = [f"<h1>{esc(title)}</h1>"]
    if results.get("summary"):
        body.append(f'<p class="muted">{esc(results["summary"])}</p>')
    for n in results.get("notices", []):
        level = n.get("level", "warn") if isinstance(n, dict) else "warn"
        text = n.get("text", "") if isinstance(n, dict) else n
        body.append(f'<div class="notice {esc(level)}">{esc(text)}</div>')

    setting = results.get("setting") or {}
    if setting:
        body.append('<h2 id="setting">Setting</h2><table id="table-setting" data-table="setting"><tbody>')
        for k, v in setting.items():
            shown = json.dumps(v) if isinstance(v, (dict, list)) else v
            body.append(f'<tr><th scope="row">{esc(k)}</th><td style="text-align:left">{format_cell(shown)}</td></tr>')
        body.append("</tbody></table>")

    design = results.get("design") or []
    if design:
        body.append('<h2 id="design">How this run departs from the paper</h2><ul class="design">')
        body.extend(f"<li>{esc(item)}</li>" for item in design)
        body.append("</ul>")

    tables = results.get("tables") or []
    if tables:
        body.append('<h2 id="tables">Results</h2>')
        body.extend(table_html(t) for t in tables)

    figs = []
    for curve in results.get("curves") or []:
        png = curve_png(curve)
        if png is not None:
            figs.append(_figure_html(curve.get("title", "curve"), png, curve.get("caption", "")))
    for fig in results.get("figures") or []:
        path = Path(fig["path"])
        if not path.is_absolute() and base is not None:
            path = base / path
        if path.exists():
            figs.append(_figure_html(fig.get("title", path.stem), path.read_bytes(), fig.get("caption", "")))
        else:
            figs.append(f'<div class="notice fail">figure missing: {esc(fig["path"])}</div>')
    if figs:
        body.append('<h2 id="figures">Curves and plots</h2>')
        body.extend(figs)

    examples = results.get("examples") or []
    if examples:
        body.append('<h2 id="traces">Reasoning traces</h2>')
        body.append('<p class="muted small">The same test clip answered by each model. Yellow marks a cited span '
                    "(click it, or its button, to hear it); the green bar under a waveform is the gold evidence.</p>")
        body.extend(example_html(ex, base, index=i) for i, ex in enumerate(examples))

    if results.get("footer"):
        body.append(f'<p class="muted small">{esc(results["footer"])}</p>')
    return page(title, "\n".join(body))


def load_results(run_dir: str | os.PathLike) -> dict:
    path = Path(run_dir) / RESULTS_FILE
    if not Path(run_dir).is_dir():
        raise TgsrError(f"{run_dir}: not a folder")
    if not path.exists():
        raise TgsrError(f"{path}: no saved results here (a demo run writes {RESULTS_FILE} when it finishes)")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise TgsrError(f"{path}:{e.lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
    if not isinstance(results, dict):
        raise TgsrError(f"{path}: expected a JSON object, got {type(results).__name__}")
    return results


def write_report(run_dir: str | os.PathLike, results: dict | None = None, out: str | os.PathLike | None = None) -> Path:
    """Render ``results`` (or ``RUN_DIR/results.json``) to ``RUN_DIR/report.html``."""
    run_dir = Path(run_dir)
    if results is None:
        results = load_results(run_dir)
    out = Path(out) if out is not None else run_dir / REPORT_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(render_report(results, run_dir), encoding="utf-8")
    os.replace(tmp, out)
    return out


__all__ = ["RESULTS_FILE", "REPORT_FILE", "format_cell", "table_html", "curve_png", "render_report",
           "load_results", "write_report"]
