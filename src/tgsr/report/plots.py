"""PNG plots of the analyses (matplotlib, Agg backend: no display needed).

Attention plots take summaries from ``tgsr.analysis.attention.summarize*`` keyed by a label
(model or checkpoint name), so several models are drawn on one figure:

* ``plot_block_distribution``: stacked bars of the four blocks' share of attention, one bar
  per model and generation phase;
* ``plot_audio_by_layer``: audio attention by layer, one line per model (vanilla vs STA vs
  grounded GRPO ...).

``plot_behaviors`` draws the behavior metrics of several runs side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

__all__ = ["plot_block_distribution", "plot_audio_by_layer", "plot_behaviors"]

_BLOCK_COLORS = {"system": "#9e9e9e", "audio": "#1f77b4", "question": "#ff7f0e", "output": "#2ca02c"}
_NORM_LABEL = {"mass": "attention mass (sum over the block)", "per_token": "attention per token (block mean)"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, out_png: str | Path) -> Path:
    """Lay out, write the PNG (creating its folder) and free the figure."""
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_block_distribution(summaries: Mapping[str, dict], out_png: str | Path, *, norm: str = "mass",
                            groups: Sequence[str] = ("all", "reasoning", "timestamp", "answer")) -> Path:
    """Stacked bars: for each model and phase, the share of each block (mean over layers)."""
    plt = _pyplot()
    labels, stacks = [], []
    for model, s in summaries.items():
        for g in groups:
            mean = s.get(norm, {}).get(g, {}).get("mean")
            if not mean:
                continue
            labels.append(f"{model}\n{g}")
            stacks.append(mean)
    if not stacks:
        raise ValueError(f"no {norm} attention in the summaries to plot")
    blocks = list(stacks[0])
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(labels) + 1.5), 4.0), dpi=120)
    bottom = [0.0] * len(stacks)
    for b in blocks:
        vals = [st[b] for st in stacks]
        ax.bar(range(len(stacks)), vals, bottom=bottom, label=b, color=_BLOCK_COLORS.get(b))
        bottom = [x + v for x, v in zip(bottom, vals)]
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylabel(_NORM_LABEL.get(norm, norm))
    ax.set_title("Attention of generated tokens by input block")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(plt, fig, out_png)


def plot_audio_by_layer(summaries: Mapping[str, dict], out_png: str | Path, *, norm: str = "mass",
                        group: str = "all", block: str = "audio") -> Path:
    """One line per model: attention to ``block`` at each decoder layer."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.6), dpi=120)
    drawn = 0
    for model, s in summaries.items():
        by_layer = s.get(norm, {}).get(group, {}).get("by_layer", {}).get(block)
        if not by_layer:
            continue
        ax.plot(range(len(by_layer)), by_layer, marker="o", markersize=3, label=model)
        drawn += 1
    if not drawn:
        raise ValueError(f"no {norm}/{group} attention to the {block} block in the summaries")
    ax.set_xlabel("decoder layer")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel(f"{block}: {_NORM_LABEL.get(norm, norm)}", fontsize=8)
    ax.set_title(f"Attention to the {block} block by layer ({group} tokens)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(plt, fig, out_png)


def plot_behaviors(summaries: Mapping[str, dict], out_png: str | Path,
                   metrics: Sequence[str] = ("accuracy", "audiology_verify", "consistency", "grounding_precision")
                   ) -> Path:
    """Grouped bars of 0-1 behavior metrics, one group per metric, one bar per run."""
    plt = _pyplot()
    runs = list(summaries)
    fig, ax = plt.subplots(figsize=(6.5, 3.6), dpi=120)
    width = 0.8 / max(1, len(runs))
    for i, run in enumerate(runs):
        vals = [summaries[run].get(m, {}).get("mean") for m in metrics]
        ax.bar([j + i * width for j in range(len(metrics))], [v if v is not None else 0.0 for v in vals],
               width=width, label=run)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(metrics))], [m.replace("_", "\n") for m in metrics],
                  fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title("Behaviour metrics (missing values drawn as 0)")
    ax.legend(fontsize=7)
    return _save(plt, fig, out_png)
