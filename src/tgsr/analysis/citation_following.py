"""Citation following: does the answer read what the reasoning cites?

For each multiple-choice item whose grounded rationale has a *pointer* citation (the span
where the asked value is read) and counterfactual citations (other spans, each with the answer
it would imply; ``QAExample.meta["pointer"]`` and ``meta["counterfactuals"]``, as the lab
corpus ``tgsr.data.lab`` writes them), the model answers three times, greedily:

1. **own**: free generation with the grounded prompt;
2. **gold**: the reference rationale teacher-forced up to and including the pointer citation
   (``From 9.33s to 9.61s,``), the model writing the rest;
3. **counterfactual**: the same prefix with the pointer citation replaced by a counterfactual
   one (one per item, drawn with the item's own generator).

The answer *follows* the citation when, under (3), it is the answer the counterfactual span
implies. A model that reads at its citations follows them far above chance, and the gold
citation raises its accuracy over its own reasoning. A model whose answer ignores the
citation follows at chance (1 / number of options) and gains nothing from the gold citation.
``citation_gate`` turns the two numbers into a pass / fail with reasons.

Items without a pointer, counterfactuals or a grounded rationale are not probed; they are
counted, with the reason, in ``n_skipped`` and ``skipped``, never silently left out.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.qa.common import SEEDED_RNG_KEY, seeded_rng
from ..errors import AudioError, TgsrError
from ..spans import find_spans, format_span

__all__ = ["CitationProbe", "citation_probes", "prefixed_generation", "run_citation_following",
           "summarize_citation_following", "citation_gate", "GateResult", "citation_following_markdown"]


@dataclass(frozen=True)
class CitationProbe:
    id: str
    task: str
    audio: str
    question: str
    choices: list[str]
    gold: str                     # gold letter
    gold_prefix: str
    counterfactual_prefix: str
    counterfactual_answer: str    # the letter the counterfactual span implies
    counterfactual_span: tuple[float, float]


def citation_probes(examples, *, seed: int = 0) -> tuple[list[CitationProbe], list[dict]]:
    """(probes, skipped): a probe per item that supports one, and ``{"id", "reason"}`` for the rest."""
    probes, skipped = [], []
    for ex in examples:
        meta = ex.meta or {}
        pointer, cfs = meta.get("pointer"), meta.get("counterfactuals")
        if pointer is None or not cfs:
            skipped.append({"id": ex.id, "reason": "no pointer citation or no counterfactual in meta"})
            continue
        spans = find_spans(ex.rationale or "")
        if not isinstance(pointer, int) or not 0 <= pointer < len(spans):
            skipped.append({"id": ex.id, "reason": f"pointer {pointer!r} is not one of the rationale's "
                                                   f"{len(spans)} citations"})
            continue
        span = spans[pointer]
        comma = ex.rationale.find(",", span.char_end)
        if comma < 0 or ex.rationale[span.char_end:comma].strip():
            skipped.append({"id": ex.id, "reason": "the pointer citation is not followed by a comma"})
            continue
        cf = cfs[int(seeded_rng(seed, ex.id).integers(len(cfs)))]  # the whole id: lab ids share their tails
        a, b = (float(x) for x in cf["span"])
        gold_prefix = ex.rationale[:comma + 1]
        cf_prefix = ex.rationale[:span.char_start] + format_span(a, b) + ex.rationale[span.char_end:comma + 1]
        probes.append(CitationProbe(ex.id, ex.task, ex.audio, ex.question, list(ex.choices), ex.answer,
                                    gold_prefix, cf_prefix, str(cf["answer"]), (a, b)))
    return probes, skipped


def prefixed_generation(lm, audios: Sequence, conversations: Sequence, prefixes: Sequence[str], *,
                        max_new_tokens: int) -> list[str]:
    """Greedy continuations of the assistant turn after each teacher-forced ``prefix``.

    The prompt and prefix are tokenised exactly as for training (``build_inputs`` with the
    prefix as a completion); the end-of-turn token that appends is removed, so the model
    continues the prefix. Rows are left-padded, so that token is the last column of every row.
    """
    inputs = lm.build_inputs(list(audios), list(conversations), completions=list(prefixes))
    ids = inputs["input_ids"]
    if not bool((ids[:, -1] == lm.im_end_id).all()):
        raise TgsrError("a teacher-forced prefix did not end with the end-of-turn token")
    inputs = {k: v for k, v in inputs.items() if k != "labels"}
    inputs["input_ids"], inputs["attention_mask"] = ids[:, :-1], inputs["attention_mask"][:, :-1]
    return lm.generate(inputs, max_new_tokens=max_new_tokens).texts


def _letter(text: str, choices) -> str | None:
    from ..answers import extract_choice

    return extract_choice(text, list(choices)).letter


def run_citation_following(lm, examples, out_dir, *, prompt: str = "grounded", max_new_tokens: int = 64,
                           batch_size: int = 8, seed: int = 0, progress: bool = True) -> dict:
    """Probe every item (see the module doc); resumable (``citation_items.jsonl``), the folder
    locked while it runs. Returns the summary, also written to ``citation_following.json``."""
    from ..runlog import FolderLock

    if batch_size < 1 or max_new_tokens < 1:
        raise TgsrError("batch_size and max_new_tokens must be >= 1")
    out = Path(out_dir)
    with FolderLock(out):
        return _run(lm, list(examples), out, prompt=prompt, max_new_tokens=max_new_tokens, batch_size=batch_size,
                    seed=seed, progress=progress)


def _run(lm, examples, out: Path, *, prompt, max_new_tokens, batch_size, seed, progress) -> dict:
    from tqdm.auto import tqdm

    from ..audio import load_audio
    from ..prompts import reasoning_question, user_messages
    from ..runlog import ItemLog

    probes, skipped = citation_probes(examples, seed=seed)
    items = ItemLog(out / "citation_items.jsonl", out / "citation_settings.json", what="a citation-following run")
    # the draw's name is kept so that probes drawn otherwise (before 2026-12-08: from 8 bytes of
    # the id, the same for every item of a lab family) are not resumed into these
    settings = {"prompt": prompt, "max_new_tokens": max_new_tokens, "seed": seed, "item_draw": SEEDED_RNG_KEY,
                "model": str(getattr(lm, "name_or_path", ""))}
    todo = items.pending(probes, items.resume(settings))
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), desc="citation following", unit="item", disable=not progress, dynamic_ncols=True)
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        audios, ok = [], []
        for p in batch:
            try:
                audios.append(load_audio(p.audio))
                ok.append(p)
            except (AudioError, TgsrError) as e:
                items.append({"id": p.id, "error": str(e)})
        if not ok:
            bar.update(len(batch))
            continue
        convs = [user_messages(reasoning_question(p.question, p.choices, prompt)) for p in ok]
        try:
            own = lm.generate(lm.build_inputs(audios, convs), max_new_tokens=max_new_tokens).texts
            gold = prefixed_generation(lm, audios, convs, [p.gold_prefix for p in ok], max_new_tokens=max_new_tokens)
            cf = prefixed_generation(lm, audios, convs, [p.counterfactual_prefix for p in ok],
                                     max_new_tokens=max_new_tokens)
        except Exception as e:  # noqa: BLE001 - a model failure on one batch must not end the run
            for p in ok:
                items.append({"id": p.id, "error": f"model: {type(e).__name__}: {e}"})
            bar.update(len(batch))
            continue
        for p, o, g, c in zip(ok, own, gold, cf):
            g_full, c_full = p.gold_prefix + g, p.counterfactual_prefix + c
            items.append({"id": p.id, "task": p.task, "gold": p.gold, "n_choices": len(p.choices),
                          "counterfactual_answer": p.counterfactual_answer,
                          "counterfactual_span": list(p.counterfactual_span),
                          "own_completion": o, "own_letter": _letter(o, p.choices),
                          "gold_completion": g_full, "gold_letter": _letter(g_full, p.choices),
                          "counterfactual_completion": c_full, "counterfactual_letter": _letter(c_full, p.choices)})
        bar.update(len(batch))
    bar.close()
    rows = items.rows_for(p.id for p in probes)
    summary = summarize_citation_following(rows, n_items=len(examples), skipped=skipped)
    summary["settings"] = settings
    (out / "citation_following.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    (out / "citation_following.md").write_text(citation_following_markdown({out.name: summary}) + "\n",
                                               encoding="utf-8")
    if progress and todo:
        print(f"citation following: {len(todo)} items in {time.perf_counter() - t0:.1f}s; follow rate "
              f"{summary['follow_rate']}, gold-citation gain {summary['gold_gain']}")
    return summary


def summarize_citation_following(rows: Sequence[dict], *, n_items: int, skipped: Sequence[dict] = ()) -> dict:
    """Rates over the probed rows; failed rows and skipped items are counted apart."""
    from .stats import above_chance, contrast

    done = [r for r in rows if "error" not in r]
    failed = [r for r in rows if "error" in r]
    n = len(done)
    out = {"n_items": n_items, "n_probed": n, "n_failed": len(failed), "n_skipped": len(skipped),
           "n_missing": n_items - len(skipped) - len(rows),
           "skipped_reasons": dict(Counter(s["reason"] for s in skipped)),
           "failures": [{"id": r["id"], "error": r["error"]} for r in failed]}
    if not n:
        return {**out, "follow_rate": None, "follow_chance": None, "follow_pvalue": None, "stays_gold_rate": None,
                "accuracy_own": None, "accuracy_gold_citation": None, "gold_gain": None, "gold_vs_own": None,
                "per_task": {}}
    follows = [r["counterfactual_letter"] == r["counterfactual_answer"] for r in done]
    chance = [1.0 / r["n_choices"] for r in done]
    own = [r["own_letter"] == r["gold"] for r in done]
    gold = [r["gold_letter"] == r["gold"] for r in done]
    follow = above_chance(follows, chance)
    c = contrast("gold citation", gold, "own reasoning", own)
    per_task: dict[str, dict] = defaultdict(dict)
    for task in sorted({r["task"] for r in done}):
        sel = [i for i, r in enumerate(done) if r["task"] == task]
        per_task[task] = {"n": len(sel), "follow_rate": float(np.mean([follows[i] for i in sel])),
                          "follow_chance": float(np.mean([chance[i] for i in sel])),
                          "accuracy_own": float(np.mean([own[i] for i in sel])),
                          "accuracy_gold_citation": float(np.mean([gold[i] for i in sel]))}
    return {**out, "follow_rate": follow.accuracy, "follow_chance": follow.chance, "follow_pvalue": follow.pvalue,
            "stays_gold_rate": float(np.mean([r["counterfactual_letter"] == r["gold"] for r in done])),
            "accuracy_own": c.accuracy_b, "accuracy_gold_citation": c.accuracy_a,
            "gold_gain": c.accuracy_a - c.accuracy_b, "gold_vs_own": c.to_dict(), "per_task": dict(per_task)}


@dataclass(frozen=True)
class GateResult:
    passed: bool
    follow_rate: float | None
    gold_gain: float | None
    reasons: tuple[str, ...]

    def to_dict(self) -> dict:
        return asdict(self)


def citation_gate(summary: dict, *, min_follow: float = 0.6, min_gain: float = 0.05, alpha: float = 0.01) -> GateResult:
    """Pass when the answer follows counterfactual citations at least ``min_follow`` of the time
    (and above chance at level ``alpha``) and the gold citation raises accuracy by at least
    ``min_gain`` over the model's own reasoning."""
    follow, gain = summary.get("follow_rate"), summary.get("gold_gain")
    reasons = []
    if follow is None:
        reasons.append("no item was probed")
    else:
        if follow < min_follow:
            reasons.append(f"follow rate {follow:.3f} < {min_follow}")
        if summary["follow_pvalue"] >= alpha:
            reasons.append(f"follow rate not above chance {summary['follow_chance']:.3f} "
                           f"(p = {summary['follow_pvalue']:.3g} >= {alpha})")
        if gain < min_gain:
            reasons.append(f"gold-citation gain {gain:+.3f} < {min_gain}")
    return GateResult(not reasons, follow, gain, tuple(reasons))


def citation_following_markdown(summaries: dict) -> str:
    lines = ["| model | probed / items | follows counterfactual (chance) | p | accuracy own | with gold citation "
             "| gain |", "|---|---|---|---|---|---|---|"]

    def f(v, fmt=".3f"):
        return "n/a" if v is None else format(v, fmt)

    for label, s in summaries.items():
        lines.append(f"| {label} | {s['n_probed']} / {s['n_items']} | {f(s['follow_rate'])} "
                     f"({f(s['follow_chance'])}) | {f(s['follow_pvalue'], '.2g')} | {f(s['accuracy_own'])} | "
                     f"{f(s['accuracy_gold_citation'])} | {f(s['gold_gain'], '+.3f')} |")
    return "\n".join(lines)
