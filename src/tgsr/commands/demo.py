"""``tgsr demo``, ``tgsr ask`` and ``tgsr report``: the end-to-end demo and what people read."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..runlog import locks_output
from . import add_placement_arguments


def register(tree) -> None:
    p = tree.command(
        "demo", "Run the whole method end to end on a CPU (corpus, base model, STA, GRPO, ablations, "
                "evaluation with listening controls) and write OUT/report.html. Stages are cached: "
                "a re-run resumes.", locks_output(folder=True)(_demo))
    p.add_argument("--quick", action="store_true",
                   help="everything smaller: a check that every stage runs, about a minute on 2 cores "
                        "(its numbers are noise)")
    p.add_argument("--out", default="demo-run", help="run folder (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: up to 2)")
    p.add_argument("--base", default=None, metavar="MODEL_DIR",
                   help="use this base model folder (e.g. DIR/stages/base-*/model from an earlier "
                        "`tgsr demo --base-only --out DIR`); default: the base model shipped with tgsr")
    p.add_argument("--train-base", action="store_true",
                   help="train the base model in this run instead of using the shipped one")
    p.add_argument("--base-only", action="store_true",
                   help="stop after the corpus and the base model (to make a base once, with more steps)")
    p.add_argument("--recipes", default=None, metavar="DIR",
                   help="folder of the stages' training recipes, base.yaml, sta.yaml, sft.yaml and grpo.yaml "
                        "(default: recipes/demo/full, with --quick recipes/demo/quick)")
    p.add_argument("--base-steps", type=int, default=None,
                   help="steps of the base model's supervised stage (max_steps of its recipe)")
    p.add_argument("--base-with-sta", action="store_true",
                   help="train the base model on turn-level STA rows as well as direct answers")
    p.add_argument("--train-clips", type=int, default=None, help="training dialogues to synthesise")
    p.add_argument("--sta-replay", type=int, default=None, metavar="N",
                   help="Stage 1 repeats the base task's direct-answer rows N times in its mix (default 1)")
    p.add_argument("--grpo-seeds", type=int, default=None, metavar="N",
                   help="train every GRPO arm with N seeds (seed, seed + 1, ...) and report each against its "
                        "start policy (default: 1; the documented run uses 3)")
    p.add_argument("--grpo-anyway", action="store_true",
                   help="run GRPO even when its start policy fails the listening check (the report says so)")

    p = tree.command(
        "ask", "Ask a model one multiple-choice question about one audio file; prints the reasoning, "
               "its cited spans and the answer.", _ask)
    p.add_argument("model", help="model folder (a checkpoint written by tgsr, a tiny model) or hub id")
    p.add_argument("audio", help="audio file (any format tgsr.audio reads)")
    p.add_argument("question")
    p.add_argument("--choice", action="append", required=True, dest="choices",
                   help="one answer choice; repeat for each (at least two)")
    p.add_argument("--style", choices=("grounded", "cot", "direct"), default="grounded",
                   help="prompt style (default: %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=160)
    p.add_argument("--sample", action="store_true", help="sample (temperature 0.8) instead of greedy decoding")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--html", default=None, help="also write the single-example viewer to this file")
    add_placement_arguments(p)

    p = tree.command("report", "Regenerate RUN_DIR/report.html from RUN_DIR/results.json.", _report)
    p.add_argument("run_dir")
    p.add_argument("--out", default=None, help="write the page here instead of RUN_DIR/report.html")


def _demo(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..demo import PACKAGED_BASE, DemoConfig, run_demo

    cfg = DemoConfig.quick(seed=args.seed) if args.quick else DemoConfig.full(seed=args.seed)
    if args.recipes is not None:
        cfg = replace(cfg, recipes=Path(args.recipes))
    if args.base_steps is not None:
        cfg = cfg.with_overrides("base", f"max_steps={args.base_steps}")
    if args.base_with_sta:
        cfg = replace(cfg, base_with_sta=True)
    if args.train_clips is not None:
        cfg = replace(cfg, n_train_clips=args.train_clips)
    if args.grpo_seeds is not None:
        cfg = replace(cfg, grpo_seeds=args.grpo_seeds)
    if args.sta_replay is not None:
        cfg = replace(cfg, sta_replay=args.sta_replay)
    base = args.base
    if base is None and not (args.train_base or args.base_only) and (PACKAGED_BASE / "model.safetensors").exists():
        base = str(PACKAGED_BASE)
    run_demo(cfg, Path(args.out), threads=args.threads, grpo_anyway=args.grpo_anyway, base_model=base,
             base_only=args.base_only)
    return 0


def _ask(args: argparse.Namespace) -> int:
    from ..ask import ask

    if len(args.choices) < 2:
        print("tgsr ask: give at least two --choice options", file=sys.stderr)
        return 2
    result = ask(args.model, args.audio, args.question, args.choices, style=args.style,
                 max_new_tokens=args.max_new_tokens, sample=args.sample, seed=args.seed, device=args.device,
                 dtype=args.dtype)
    print(result.completion)
    print()
    if result.spans:
        print("cited spans:")
        for sp in result.spans:
            print(f"  {sp.start:7.2f}s - {sp.end:7.2f}s{'' if sp.valid else '  (invalid: start >= end)'}")
    else:
        print("cited spans: none")
    if result.letter:
        print(f"answer: ({result.letter}) {result.choice_text}")
    else:
        print(f"answer: none found ({result.reason})")
    if args.html:
        path = result.write_html(args.html)
        print(f"viewer: {path}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from ..report import write_report

    path = write_report(args.run_dir, out=args.out)
    print(f"wrote {path}")
    return 0
