"""The single-example viewer: a question, its audio, and one or more reasoning traces.

Each trace shows the model's text with every timestamp citation highlighted, a waveform
with the cited spans (and the gold evidence) shaded, and buttons that play the audio from
the start to the end of each cited span. The report reuses these pieces to put the vanilla
and the grounded model side by side; ``tgsr ask --html`` writes a page with one example.

Everything a model wrote, and every string that came from data files, goes through
``html.escape``: a completion is untrusted text. Pages are self-contained: images are
embedded as base64 data URIs and short clips are embedded as WAV data URIs, longer ones are
referenced by a path relative to the page.

Example dict (the same shape the report's ``examples`` list holds)::

    {"id": "test-0007", "audio": "audio/test-0007.wav", "question": "...",
     "choices": ["...", "..."], "answer": "b", "evidence": [[1.2, 3.4]], "task": "turn_first",
     "traces": [{"label": "vanilla", "model": "base", "completion": "...",
                 "pred_letter": "a", "correct": false}]}
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any, Sequence

from ..records import LETTERS

# Clips up to this size are embedded in the page; longer ones are linked by relative path.
EMBED_AUDIO_MAX_BYTES = 1_500_000

PAGE_CSS = """
:root { --ink:#1d232b; --muted:#5b6673; --line:#d9dee4; --cite:#ffe28a; --bad:#f6c1c1;
        --ok:#c9ecd0; --gold:#2f7d4a; --accent:#1f5fbf; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink);
       margin: 0 auto; max-width: 1180px; padding: 24px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 20px; margin: 32px 0 8px;
  border-bottom: 1px solid var(--line); padding-bottom: 4px; } h3 { font-size: 16px; margin: 16px 0 6px; }
.muted { color: var(--muted); } .small { font-size: 13px; }
table { border-collapse: collapse; margin: 8px 0 4px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f5f7; } td.num { text-align: right; }
caption { caption-side: bottom; text-align: left; color: var(--muted); font-size: 13px; padding-top: 4px; }
.notice { border-left: 4px solid #c77c00; background: #fff6e5; padding: 8px 12px; margin: 8px 0; }
.notice.ok { border-color: var(--gold); background: #eef8f1; }
.notice.fail { border-color: #b3261e; background: #fdeceb; }
figure { margin: 12px 0; } figure img { max-width: 100%; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 13px; }
.example { border: 1px solid var(--line); border-radius: 6px; padding: 12px 16px; margin: 16px 0; }
.question { white-space: pre-wrap; } .choices { margin: 4px 0 8px; padding-left: 20px; }
.choices li.gold { color: var(--gold); font-weight: 600; }
.traces { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 16px; }
.trace { border-top: 3px solid var(--line); padding-top: 6px; min-width: 0; }
.trace.correct { border-top-color: var(--gold); } .trace.wrong { border-top-color: #b3261e; }
.completion { white-space: pre-wrap; word-wrap: break-word; background: #fafbfc; border: 1px solid var(--line);
              padding: 8px; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 13px; }
mark.cite { background: var(--cite); cursor: pointer; border-radius: 3px; }
mark.cite.invalid { background: var(--bad); }
button.jump { font: inherit; font-size: 13px; margin: 2px 4px 2px 0; padding: 1px 8px; cursor: pointer;
              border: 1px solid var(--accent); color: var(--accent); background: #fff; border-radius: 12px; }
button.jump.gold { border-color: var(--gold); color: var(--gold); }
.waveform { width: 100%; display: block; margin: 4px 0; }
audio { width: 100%; margin: 4px 0; }
.verdict { font-weight: 600; } .verdict.correct { color: var(--gold); } .verdict.wrong { color: #b3261e; }
"""

# Our own script: buttons and highlighted citations play their span on the example's player.
PAGE_JS = """
(function () {
  function playSpan(el) {
    var player = document.getElementById(el.getAttribute('data-player'));
    if (!player) { return; }
    var start = parseFloat(el.getAttribute('data-start'));
    var end = parseFloat(el.getAttribute('data-end'));
    if (!isFinite(start)) { return; }
    player.currentTime = Math.max(0, start);
    player.tgsrStopAt = (isFinite(end) && end > start) ? end : null;
    var p = player.play(); if (p && p.catch) { p.catch(function () {}); }
  }
  document.addEventListener('click', function (ev) {
    var el = ev.target.closest ? ev.target.closest('[data-start][data-player]') : null;
    if (el) { ev.preventDefault(); playSpan(el); }
  });
  document.addEventListener('keydown', function (ev) {
    var el = ev.target;
    if ((ev.key === 'Enter' || ev.key === ' ') && el.matches && el.matches('mark.cite[data-player]')) {
      ev.preventDefault(); playSpan(el);
    }
  });
  document.querySelectorAll('audio').forEach(function (a) {
    a.addEventListener('timeupdate', function () {
      if (a.tgsrStopAt !== null && a.tgsrStopAt !== undefined && a.currentTime >= a.tgsrStopAt) {
        a.pause(); a.tgsrStopAt = null;
      }
    });
  });
})();
"""


def esc(value: Any) -> str:
    """HTML-escape any value (quotes included, so the result is safe inside attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _fmt_time(t: float) -> str:
    return f"{t:.2f}"


# ---------------------------------------------------------------- audio and waveform

def audio_src(audio_path: str | os.PathLike, base_dir: str | os.PathLike | None,
              embed_max_bytes: int = EMBED_AUDIO_MAX_BYTES) -> str:
    """A URL for an <audio> element: an embedded WAV for short clips, else a relative path."""
    path = Path(audio_path)
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if path.suffix.lower() == ".wav" and path.exists() and path.stat().st_size <= embed_max_bytes:
        return data_uri(path.read_bytes(), "audio/wav")
    if base_dir is not None:
        try:
            return Path(os.path.relpath(path.resolve(), Path(base_dir).resolve())).as_posix()
        except ValueError:  # another drive on Windows
            pass
    return path.resolve().as_uri()


def waveform_png(audio, sr: int, *, cited: Sequence[tuple[float, float]] = (),
                 evidence: Sequence[tuple[float, float]] = (), width_px: int = 560,
                 height_px: int = 120) -> bytes:
    """A waveform PNG with cited spans shaded yellow and gold evidence underlined green."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    audio = np.asarray(audio, dtype=np.float32)
    duration = max(len(audio) / float(sr), 1e-3)
    dpi = 100
    fig, ax = plt.subplots(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    try:
        # Draw a min/max envelope per pixel column: fast and faithful for long clips.
        cols = max(1, min(width_px * 2, len(audio)))
        edges = np.linspace(0, len(audio), cols + 1).astype(int)
        lo = np.array([audio[a:b].min() if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:])])
        hi = np.array([audio[a:b].max() if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:])])
        t = (edges[:-1] / float(sr))
        peak = float(max(np.abs(lo).max(initial=0.0), np.abs(hi).max(initial=0.0), 1e-6))
        ax.fill_between(t, lo / peak, hi / peak, color="#2b4a6f", lw=0, step="mid")
        for s, e in cited:  # drawn over the waveform, translucent, so dense speech cannot hide it
            ax.axvspan(max(0.0, s), min(duration, e), color="#ffc300", alpha=0.45, lw=0)
        for s, e in evidence:
            ax.plot([s, e], [-1.08, -1.08], color="#2f7d4a", lw=4, solid_capstyle="butt")
        ax.set_xlim(0, duration)
        ax.set_ylim(-1.15, 1.05)
        ax.set_yticks([])
        ax.tick_params(axis="x", labelsize=7, pad=1)
        ax.set_xlabel("seconds", fontsize=7, labelpad=1)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        fig.tight_layout(pad=0.2)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        return buf.getvalue()
    finally:
        plt.close(fig)


# ---------------------------------------------------------------- citations

def citations(text: str | None) -> list:
    """Every timestamp citation in ``text`` (``tgsr.spans`` is the one citation parser)."""
    if not text:
        return []
    from ..spans import find_spans

    return list(find_spans(text))


def highlight_citations(text: str | None, player_id: str | None) -> str:
    """Escaped ``text`` with each citation wrapped in a clickable <mark> that plays its span."""
    if text is None:
        return '<span class="muted">(no output)</span>'
    out, pos = [], 0
    for sp in citations(text):
        out.append(esc(text[pos:sp.char_start]))
        valid = getattr(sp, "valid", True)
        cls = "cite" if valid else "cite invalid"
        attrs = f' data-start="{_fmt_time(sp.start)}" data-end="{_fmt_time(sp.end)}"'
        if player_id:
            attrs += f' data-player="{esc(player_id)}" role="button" tabindex="0"'
        title = f"plays {sp.start:.2f}s to {sp.end:.2f}s" if valid else "not a valid span"
        out.append(f'<mark class="{cls}"{attrs} title="{esc(title)}">{esc(text[sp.char_start:sp.char_end])}</mark>')
        pos = sp.char_end
    out.append(esc(text[pos:]))
    return "".join(out)


def jump_buttons(spans: Sequence[tuple[float, float]], player_id: str | None, *, css: str = "") -> str:
    if not player_id or not spans:
        return ""
    return "".join(
        f'<button type="button" class="jump {css}" data-player="{esc(player_id)}" data-start="{_fmt_time(s)}" '
        f'data-end="{_fmt_time(e)}">&#9654; {s:.2f}&ndash;{e:.2f}s</button>'
        for s, e in spans
    )


def _span_pairs(spans: Sequence) -> list[tuple[float, float]]:
    return [(float(s.start), float(s.end)) for s in spans if getattr(s, "valid", True)]


# ---------------------------------------------------------------- example blocks

def _load_waveform(audio_path: Path):
    from ..audio import SAMPLE_RATE, load_audio
    from ..errors import AudioError

    try:
        return load_audio(audio_path), SAMPLE_RATE, None
    except AudioError as e:
        return None, SAMPLE_RATE, str(e)


def trace_html(trace: dict, *, player_id: str | None, audio=None, sr: int = 16_000,
               evidence: Sequence[tuple[float, float]] = (), choices: Sequence[str] = ()) -> str:
    """One model's reasoning: verdict, highlighted text, waveform with its cited spans, buttons."""
    completion = trace.get("completion")
    spans = citations(completion)
    pairs = _span_pairs(spans)
    correct = trace.get("correct")
    state = "correct" if correct is True else "wrong" if correct is False else ""
    pred = trace.get("pred_letter")
    pred_txt = "no answer found"
    if pred:
        idx = LETTERS.find(str(pred).lower())
        pred_txt = f"({pred}) {choices[idx]}" if 0 <= idx < len(choices) else f"({pred})"
    verdict = {"correct": "correct", "wrong": "wrong"}.get(state, "not scored")
    parts = [f'<div class="trace {state}">',
             f'<h3>{esc(trace.get("label", "model"))}</h3>']
    if trace.get("model"):
        parts.append(f'<div class="muted small">model: {esc(trace["model"])}</div>')
    parts.append(f'<div>answer: {esc(pred_txt)} &mdash; <span class="verdict {state}">{verdict}</span></div>')
    if audio is not None:
        png = waveform_png(audio, sr, cited=pairs, evidence=evidence)
        parts.append(f'<img class="waveform" alt="waveform with {len(pairs)} cited span(s) shaded" '
                     f'src="{data_uri(png, "image/png")}">')
    n_invalid = sum(1 for s in spans if not getattr(s, "valid", True))
    cites = f"{len(pairs)} cited span(s)" + (f", {n_invalid} invalid" if n_invalid else "")
    if evidence and pairs:
        from ..eval.metrics import best_iou

        ious = [best_iou(pairs, list(evidence))]
        cites += f"; best IoU with the gold evidence {ious[0]:.2f}"
    parts.append(f'<div class="small muted">{esc(cites)}</div>')
    parts.append(f'<div>{jump_buttons(pairs, player_id)}</div>')
    parts.append(f'<div class="completion">{highlight_citations(completion, player_id)}</div>')
    parts.append("</div>")
    return "\n".join(parts)


def example_html(example: dict, base_dir: str | os.PathLike | None, *, index: int = 0,
                 embed_max_bytes: int = EMBED_AUDIO_MAX_BYTES) -> str:
    """A question with its audio player and its traces side by side."""
    ex_id = str(example.get("id", f"example-{index}"))
    player_id = f"player-{index}"
    choices = [str(c) for c in example.get("choices", [])]
    gold = str(example.get("answer", "")).lower()
    evidence = [(float(s), float(e)) for s, e in example.get("evidence", [])]
    audio_path = example.get("audio")
    audio, sr, audio_err = None, 16_000, None
    parts = [f'<section class="example" id="ex-{esc(ex_id)}">',
             f'<div class="muted small">{esc(ex_id)}'
             + (f' &middot; {esc(example["task"])}' if example.get("task") else "")
             + (f' &middot; {esc(example["note"])}' if example.get("note") else "") + "</div>",
             f'<div class="question">{esc(example.get("question", ""))}</div>',
             '<ol class="choices" type="a">']
    for i, c in enumerate(choices):
        parts.append(f'<li class="{"gold" if LETTERS[i] == gold else ""}">{esc(c)}</li>')
    parts.append("</ol>")
    if audio_path:
        path = Path(audio_path)
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        audio, sr, audio_err = _load_waveform(path)
        if audio_err is None:
            src = audio_src(path, base_dir, embed_max_bytes)
            parts.append(f'<audio id="{player_id}" controls preload="metadata" src="{esc(src)}"></audio>')
        else:
            parts.append(f'<div class="notice fail">audio unavailable: {esc(audio_err)}</div>')
            player_id = None
    else:
        player_id = None
    if evidence:
        parts.append(f'<div class="small">gold evidence: {jump_buttons(evidence, player_id, css="gold")}'
                     + ("" if player_id else esc(", ".join(f"{s:.2f}-{e:.2f}s" for s, e in evidence)))
                     + "</div>")
    parts.append('<div class="traces">')
    for trace in example.get("traces", []):
        parts.append(trace_html(trace, player_id=player_id, audio=audio, sr=sr, evidence=evidence, choices=choices))
    parts.append("</div></section>")
    return "\n".join(parts)


def page(title: str, body: str) -> str:
    """A complete, self-contained HTML document."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{PAGE_CSS}</style></head>\n<body>\n{body}\n"
            f"<script>{PAGE_JS}</script>\n</body></html>\n")


def render_viewer(example: dict, base_dir: str | os.PathLike | None = None, *, title: str | None = None) -> str:
    """The single-example page written by ``tgsr ask --html``."""
    body = (f"<h1>{esc(title or 'tgsr: grounded reasoning on one clip')}</h1>\n"
            '<p class="muted small">Highlighted citations and the buttons play the cited span; '
            "the green bar under the waveform marks the gold evidence when it is known.</p>\n"
            + example_html(example, base_dir))
    return page(title or "tgsr viewer", body)


def write_viewer(path: str | os.PathLike, example: dict, *, title: str | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_viewer(example, path.parent, title=title), encoding="utf-8")
    return path


__all__ = ["esc", "data_uri", "audio_src", "waveform_png", "citations", "highlight_citations",
           "jump_buttons", "trace_html", "example_html", "page", "render_viewer", "write_viewer"]
