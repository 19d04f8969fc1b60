"""Counterfactual faithfulness: does masking what the reasoning cites change the answer?

For each multiple-choice item the model answers three times (greedy):

1. with the clip as is -- its completion gives the cited regions (``distinct_spans``, merged
   into disjoint intervals and clipped to the clip);
2. with the cited regions masked (silence, or noise at the clip's RMS, ``tgsr.audio.mask_spans``);
3. with random regions of the same lengths masked: each cited interval's length is placed
   uniformly at random, not overlapping the other random regions and, when there is room,
   not overlapping the cited regions.

An answer *flips* when the letter extracted from the re-asked completion differs from the
original one (an unparseable answer counts as its own value). Grounded reasoning is
faithful when masking the cited audio flips answers more often than masking elsewhere.
Items whose first completion cites nothing cannot be tested; they are counted apart.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from ..errors import AudioError, TgsrError
from ..spans import distinct_spans

__all__ = ["merge_intervals", "random_spans", "run_faithfulness", "summarize_faithfulness"]


def merge_intervals(spans: Sequence[tuple[float, float]], duration: float | None = None) -> list[tuple[float, float]]:
    """Disjoint, sorted union of intervals, clipped to ``[0, duration]``; empty ones dropped."""
    clipped = []
    for s, e in spans:
        s, e = max(0.0, float(s)), float(e)
        if duration is not None:
            e = min(e, duration)
        if e > s:
            clipped.append((s, e))
    clipped.sort()
    out: list[list[float]] = []
    for s, e in clipped:
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(a, b) for a, b in out]


def _overlaps(a: tuple[float, float], spans: Sequence[tuple[float, float]]) -> bool:
    return any(a[0] < e and a[1] > s for s, e in spans)


def random_spans(lengths: Sequence[float], duration: float, rng: np.random.Generator, *,
                 avoid: Sequence[tuple[float, float]] = (), tries: int = 200) -> tuple[list[tuple[float, float]], bool]:
    """Random intervals with the given lengths inside ``[0, duration]``, disjoint from each other.

    They avoid ``avoid`` when a placement allows it; the flag says whether every interval could
    avoid it. Longest lengths are placed first.
    """
    placed: list[tuple[float, float]] = []
    all_avoided = True
    for length in sorted(lengths, reverse=True):
        length = min(length, duration)
        best = None
        for _ in range(tries):
            s = float(rng.uniform(0.0, max(0.0, duration - length)))
            cand = (s, s + length)
            if _overlaps(cand, placed):
                continue
            if not _overlaps(cand, avoid):
                best = cand
                break
            if best is None:
                best = cand            # fallback: overlaps the cited audio but not other random spans
        if best is None:
            best = (0.0, length)
        if _overlaps(best, avoid):
            all_avoided = False
        placed.append(best)
    return sorted(placed), all_avoided


def _letter(text: str, choices: Sequence[str]) -> str | None:
    from ..answers import extract_choice

    return extract_choice(text, list(choices)).letter


def _answer(lm, audios: list[np.ndarray], conversation, choices, max_new_tokens: int) -> list[tuple[str, str | None]]:
    inputs = lm.build_inputs(audios, [conversation] * len(audios))
    gen = lm.generate(inputs, max_new_tokens=max_new_tokens)
    return [(t, _letter(t, choices)) for t in gen.texts]


def run_faithfulness(lm, examples, out_dir, *, mask: Literal["silence", "noise"] = "silence", seed: int = 0,
                     max_new_tokens: int = 256, prompt: str = "grounded", progress: bool = True) -> dict:
    """Run the masking test over QA ``examples``; resumable (``faithfulness_items.jsonl``).

    Returns the summary, also written to ``out_dir/faithfulness.json``. The folder is locked while
    it runs and the items are a ``tgsr.runlog.ItemLog`` (other settings refused, failed items
    retried on resume).
    """
    from ..runlog import FolderLock

    if mask not in ("silence", "noise"):
        raise TgsrError(f"unknown mask {mask!r}; expected silence or noise")
    out = Path(out_dir)
    with FolderLock(out):
        return _faithfulness_items(lm, examples, out, mask=mask, seed=seed, max_new_tokens=max_new_tokens,
                                   prompt=prompt, progress=progress)


def _faithfulness_items(lm, examples, out: Path, *, mask: str, seed: int, max_new_tokens: int, prompt: str,
                        progress: bool) -> dict:
    from tqdm.auto import tqdm

    from ..audio import SAMPLE_RATE, load_audio, mask_spans
    from ..data.qa.common import SEEDED_RNG_KEY, seeded_rng
    from ..prompts import reasoning_question, user_messages
    from ..runlog import ItemLog

    items = ItemLog(out / "faithfulness_items.jsonl", out / "faithfulness_settings.json", what="a faithfulness run")
    settings = {"mask": mask, "seed": seed, "item_draw": SEEDED_RNG_KEY, "max_new_tokens": max_new_tokens,
                "prompt": prompt, "model": str(getattr(lm, "name_or_path", ""))}
    done = items.resume(settings)
    todo = items.pending(examples, done)
    t0 = time.perf_counter()
    for ex in tqdm(todo, desc=f"faithfulness [{mask}]", unit="item", disable=not progress, dynamic_ncols=True):
        # the item's own generator: results do not depend on which items ran before (resume-safe)
        rng = seeded_rng(seed, ex.id)
        rec: dict = {"id": ex.id, "gold": ex.answer}
        try:
            audio = load_audio(ex.audio)
            duration = len(audio) / SAMPLE_RATE
            conv = user_messages(reasoning_question(ex.question, ex.choices, prompt))
            (text, letter), = _answer(lm, [audio], conv, ex.choices, max_new_tokens)
            rec.update(completion=text, letter=letter, duration=round(duration, 3))
            cited = merge_intervals([(s.start, s.end) for s in distinct_spans(text)], duration)
            rec["cited"] = [list(c) for c in cited]
            if cited:
                rand, avoided = random_spans([e - s for s, e in cited], duration, rng, avoid=cited)
                rec["random"] = [list(r) for r in rand]
                rec["random_avoids_cited"] = avoided
                masked = [mask_spans(audio, cited, mode=mask, seed=seed),
                          mask_spans(audio, rand, mode=mask, seed=seed)]
                (tc, lc), (tr, lr) = _answer(lm, masked, conv, ex.choices, max_new_tokens)
                rec.update(cited_completion=tc, cited_letter=lc, random_completion=tr, random_letter=lr,
                           flip_cited=lc != letter, flip_random=lr != letter,
                           masked_fraction=round(sum(e - s for s, e in cited) / duration, 4))
        except (AudioError, TgsrError) as e:
            rec["error"] = str(e)
        except Exception as e:  # noqa: BLE001 - a model failure on one item must not end the run
            rec["error"] = f"model: {type(e).__name__}: {e}"
        items.append(rec)
    rows = items.rows_for(ex.id for ex in examples)
    summary = summarize_faithfulness(rows, n_items=len(examples))
    summary["settings"] = settings
    (out / "faithfulness.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    (out / "faithfulness.md").write_text(faithfulness_markdown({out.name: summary}) + "\n", encoding="utf-8")
    if progress and todo:
        dt = time.perf_counter() - t0
        print(f"faithfulness: {len(todo)} items in {dt:.1f}s; flip rate cited {summary['flip_rate_cited']}, "
              f"random {summary['flip_rate_random']}")
    return summary


def summarize_faithfulness(rows: Sequence[dict], n_items: int) -> dict:
    tested = [r for r in rows if "flip_cited" in r]
    failed = [r for r in rows if "error" in r]
    n = len(tested)
    fc = sum(r["flip_cited"] for r in tested)
    fr = sum(r["flip_random"] for r in tested)
    only_c = sum(r["flip_cited"] and not r["flip_random"] for r in tested)
    only_r = sum(r["flip_random"] and not r["flip_cited"] for r in tested)

    def acc(key):
        return sum(r.get(key) == r["gold"] for r in tested) / n if n else None

    return {
        "n_items": n_items, "n_tested": n, "n_failed": len(failed),
        "n_no_citation": sum(1 for r in rows if "error" not in r and "flip_cited" not in r),
        "n_missing": n_items - len(rows),
        "flip_rate_cited": fc / n if n else None, "flip_rate_random": fr / n if n else None,
        "flip_gap": (fc - fr) / n if n else None,
        "flips_only_cited": only_c, "flips_only_random": only_r,
        "accuracy_original": acc("letter"), "accuracy_cited_masked": acc("cited_letter"),
        "accuracy_random_masked": acc("random_letter"),
        "mean_masked_fraction": float(np.mean([r["masked_fraction"] for r in tested])) if tested else None,
        "random_avoided_cited": sum(bool(r.get("random_avoids_cited")) for r in tested),
        "failures": [{"id": r["id"], "error": r["error"]} for r in failed],
    }


def faithfulness_markdown(summaries: dict) -> str:
    lines = ["| run | tested / items | no citation | flip rate (cited masked) | flip rate (random masked) | gap |",
             "|---|---|---|---|---|---|"]

    def f(v):
        return "n/a" if v is None else f"{v:.3f}"

    for label, s in summaries.items():
        lines.append(f"| {label} | {s['n_tested']} / {s['n_items']} | {s['n_no_citation']} | "
                     f"{f(s['flip_rate_cited'])} | {f(s['flip_rate_random'])} | {f(s['flip_gap'])} |")
    return "\n".join(lines)
