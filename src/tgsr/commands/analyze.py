"""``tgsr analyze attention|behaviors|faithfulness|citation-following|contrast|listening``: the analyses of grounded
reasoning."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import add_placement_arguments


def register(tree) -> None:
    group = tree.group("analyze", "Analyse how models listen: block attention, behaviour metrics, "
                                  "counterfactual faithfulness, listening controls.")

    p = group.command("attention", "Attention of generated tokens to the system/audio/question/output blocks, "
                                   "per layer and generation phase; Table-4-style averages and PNG plots.",
                      handler=attention)
    p.add_argument("--model", required=True, action="append",
                   help="model folder; repeat to overlay several models or checkpoints")
    p.add_argument("--label", action="append", help="name of each --model in tables and plots (same order)")
    _data_args(p, required=False)
    p.add_argument("--predictions", type=Path, metavar="RUN_DIR",
                   help="analyse the completions of this evaluation run (teacher-forced) instead of generating")
    p.add_argument("--teacher-force", choices=["rationale", "rationale_plain"],
                   help="analyse the items' reference reasoning (QA field) instead of generating, so every "
                        "model reads the same text")
    p.add_argument("--queries", nargs="*", metavar="QUERY",
                   help="ask these free-form queries about each clip instead of the QA questions; "
                        "with no value, the built-in probes: " + "; ".join(_probes()))
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--limit", type=int, help="first N items (or clips, with --queries)")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--chunk", type=int, default=128, help="query rows per attention chunk (memory bound)")
    add_placement_arguments(p)
    p.add_argument("--quiet", action="store_true")

    p = group.command("behaviors", "Regions Explored, Audiology Verify, Consistency and grounding precision of "
                                   "an evaluation run (Table-3 style markdown and JSON).", handler=behaviors)
    p.add_argument("--predictions", required=True, action="append", type=Path, metavar="RUN_DIR",
                   help="evaluation run folder (with predictions.jsonl); repeat to compare runs")
    p.add_argument("--asr", default="faster-whisper",
                   help="Whisper backend of `tgsr data align` for Audiology Verify (faster-whisper, "
                        "whisper-timestamped), or 'none' to skip it")
    p.add_argument("--asr-model", help="ASR model name or folder (default: the backend's offline tiny.en)")
    p.add_argument("--judge", default="rule",
                   help="consistency judge: rule (offline, default) | openai:MODEL@BASE_URL | hf:PATH")
    p.add_argument("--data", help="QA JSONL with the items (default: the run's benchmark from run.json)")
    p.add_argument("--out", type=Path, help="folder for the combined table (each run's scores go to RUN_DIR/behaviors)")
    add_placement_arguments(p)  # the hf: judge model (the Whisper ASR runs on the CPU)
    p.add_argument("--quiet", action="store_true")

    p = group.command("faithfulness", "Re-ask each question with the cited audio masked and with random audio of "
                                      "the same length masked; report answer-flip rates.", handler=faithfulness)
    p.add_argument("--model", required=True)
    _data_args(p)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--mask", choices=["silence", "noise"], default="silence")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int)
    p.add_argument("--max-new-tokens", type=int, default=256)
    add_placement_arguments(p)
    p.add_argument("--quiet", action="store_true")

    p = group.command("citation-following", "Teacher-force the gold and a counterfactual citation into the "
                                            "reasoning: how often the answer follows the citation, how much the "
                                            "gold one raises accuracy (items with meta pointer/counterfactuals, "
                                            "e.g. the lab corpus).", handler=citation_following)
    p.add_argument("--model", required=True)
    _data_args(p)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--prompt", default="grounded", help="prompt style of the questions (default grounded)")
    p.add_argument("--seed", type=int, default=0, help="picks each item's counterfactual citation")
    p.add_argument("--limit", type=int)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--min-follow", type=float, default=0.6, help="gate: least follow rate (default 0.6)")
    p.add_argument("--min-gain", type=float, default=0.05, help="gate: least gold-citation gain (default 0.05)")
    add_placement_arguments(p)
    p.add_argument("--quiet", action="store_true")

    p = group.command("contrast", "Two evaluation runs on the same items: accuracies, the paired bootstrap "
                                  "interval of their difference and McNemar's exact test.", handler=contrast)
    p.add_argument("run_a", type=Path, metavar="RUN_A")
    p.add_argument("run_b", type=Path, metavar="RUN_B")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    p.add_argument("--out", type=Path, help="write the result as JSON here")

    p = group.command("listening", "Accuracy (or IoU) of the same models with their own, swapped and silent audio, "
                                   "from `tgsr eval run --audio-condition ...` folders.", handler=listening)
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    p.add_argument("--out", type=Path, help="write OUT.md and OUT.json (default: print the markdown)")


def _probes() -> tuple[str, ...]:
    from ..analysis import PROBE_QUERIES  # the package is light: no torch import

    return PROBE_QUERIES


def _data_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--data", required=required,
                   help="a QA JSONL file (e.g. DIR/test/qa.jsonl from `tgsr data synth`) or a benchmark name")
    p.add_argument("--data-root", type=Path, help="benchmark data folder, when --data is a benchmark name")


def _load_examples(args) -> list:
    from ..errors import TgsrError
    from ..records import QAExample, read_jsonl

    path = Path(args.data)
    if path.is_file():
        exs = list(read_jsonl(path, QAExample))
    else:
        from ..eval.benchmarks import BENCHMARKS, get_benchmark

        if args.data not in BENCHMARKS:
            raise TgsrError(f"--data {args.data}: neither a file nor a benchmark ({', '.join(BENCHMARKS)})")
        bench = get_benchmark(args.data)
        if bench.kind != "choice":
            raise TgsrError(f"--data {args.data}: the analyses need multiple-choice items")
        exs = bench.load(None if args.data_root is None else str(args.data_root))
    if not exs:
        raise TgsrError(f"--data {args.data}: no items")
    return exs


def attention(args: argparse.Namespace) -> int:
    from ..analysis.attention import PROBE_QUERIES, jobs_from_qa, jobs_from_run, run_attention, table4_rows
    from ..errors import TgsrError
    from ..models import load_model
    from ..report.plots import plot_audio_by_layer, plot_block_distribution

    labels = args.label or [Path(m).name or m for m in args.model]
    if len(labels) != len(args.model):
        raise TgsrError(f"{len(labels)} --label for {len(args.model)} --model; give one label per model")
    if len(set(labels)) != len(labels):
        raise TgsrError(f"labels must differ: {labels}")
    if args.predictions is not None:
        if args.queries is not None or args.teacher_force:
            raise TgsrError("--predictions analyses a run's own outputs; it cannot be combined with --queries "
                            "or --teacher-force")
        jobs = jobs_from_run(args.predictions, args.data)[: args.limit]
    else:
        if not args.data:
            raise TgsrError("give --data (QA items or a benchmark) or --predictions RUN_DIR")
        examples = _load_examples(args)
        queries = None if args.queries is None else (args.queries or list(PROBE_QUERIES))
        if queries is not None and args.limit:
            clips = list(dict.fromkeys(ex.audio for ex in examples))[: args.limit]
            examples = [ex for ex in examples if ex.audio in set(clips)]
        elif args.limit:
            examples = examples[: args.limit]
        if queries is not None and args.teacher_force:
            raise TgsrError("--teacher-force applies to QA items, not to --queries")
        jobs = jobs_from_qa(examples, queries=queries, teacher_force=args.teacher_force)
    summaries = {}
    for model, label in zip(args.model, labels):
        lm = load_model(model, device=args.device, dtype=args.dtype)
        summaries[label] = run_attention(lm, jobs, args.out / label, max_new_tokens=args.max_new_tokens,
                                         chunk=args.chunk, progress=not args.quiet)
        del lm
    done = {k: s for k, s in summaries.items() if s.get("n_sequences")}
    table = "\n\n".join(table4_rows(summaries, norm) for norm in ("mass", "per_token"))
    (args.out / "table4.md").write_text(table + "\n", encoding="utf-8")
    (args.out / "attention_summaries.json").write_text(json.dumps(summaries, indent=1) + "\n", encoding="utf-8")
    if done:
        for norm in ("mass", "per_token"):
            plot_block_distribution(done, args.out / f"block_distribution_{norm}.png", norm=norm)
            plot_audio_by_layer(done, args.out / f"audio_by_layer_{norm}.png", norm=norm)
    print(table)
    for label, s in summaries.items():
        if s.get("n_failed"):
            print(f"{label}: {s['n_failed']} of {s['n_items']} items failed "
                  f"(see {args.out / label}/attention_items.jsonl)")
    print(f"results in {args.out}")
    return 0 if done else 1


def behaviors(args: argparse.Namespace) -> int:
    from ..analysis.behaviors import run_behaviors, table3_markdown
    from ..errors import TgsrError

    summaries = {}
    for run in args.predictions:
        s = run_behaviors(run, asr=args.asr, asr_model=args.asr_model, judge=args.judge, data=args.data,
                          progress=not args.quiet, device=args.device, dtype=args.dtype)
        label = s["label"]
        if label in summaries:
            label = f"{label} ({run})"
        summaries[label] = s
    table = table3_markdown(summaries)
    if args.out:
        from ..report.plots import plot_behaviors

        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "behaviors.md").write_text(table + "\n", encoding="utf-8")
        (args.out / "behaviors.json").write_text(json.dumps(summaries, indent=1) + "\n", encoding="utf-8")
        plot_behaviors(summaries, args.out / "behaviors.png")
    print(table)
    if not summaries:
        raise TgsrError("no runs given")
    return 0


def faithfulness(args: argparse.Namespace) -> int:
    from ..analysis.faithfulness import faithfulness_markdown, run_faithfulness
    from ..models import load_model

    examples = _load_examples(args)
    if args.limit:
        examples = examples[: args.limit]
    lm = load_model(args.model, device=args.device, dtype=args.dtype)
    s = run_faithfulness(lm, examples, args.out, mask=args.mask, seed=args.seed,
                         max_new_tokens=args.max_new_tokens, progress=not args.quiet)
    print(faithfulness_markdown({Path(args.model).name: s}))
    if s["n_failed"]:
        print(f"{s['n_failed']} items failed (see {args.out}/faithfulness_items.jsonl)")
    return 0


def citation_following(args: argparse.Namespace) -> int:
    from ..analysis.citation_following import citation_following_markdown, citation_gate, run_citation_following
    from ..errors import TgsrError
    from ..models import load_model

    examples = _load_examples(args)
    if args.limit:
        examples = examples[: args.limit]
    lm = load_model(args.model, device=args.device, dtype=args.dtype)
    s = run_citation_following(lm, examples, args.out, prompt=args.prompt, max_new_tokens=args.max_new_tokens,
                               batch_size=args.batch_size, seed=args.seed, progress=not args.quiet)
    gate = citation_gate(s, min_follow=args.min_follow, min_gain=args.min_gain)
    (args.out / "citation_gate.json").write_text(json.dumps(gate.to_dict(), indent=1) + "\n", encoding="utf-8")
    print(citation_following_markdown({Path(args.model).name: s}))
    print("gate: " + ("passed" if gate.passed else "failed (" + "; ".join(gate.reasons) + ")"))
    if s["n_skipped"]:
        print(f"{s['n_skipped']} items not probed: {s['skipped_reasons']}")
    if s["n_failed"]:
        print(f"{s['n_failed']} items failed (see {args.out}/citation_items.jsonl)")
    if not s["n_probed"]:
        raise TgsrError(f"--data {args.data}: no item could be probed ({s['skipped_reasons'] or s['failures'][:3]})")
    return 0


def contrast(args: argparse.Namespace) -> int:
    from ..analysis.stats import contrast_runs

    r = contrast_runs(args.run_a, args.run_b, seed=args.seed, n_resamples=args.resamples)
    iv, mc = r["interval"], r["mcnemar"]
    print(f"{r['n']} paired items: A {r['accuracy_a']:.3f}, B {r['accuracy_b']:.3f}; A - B {iv['difference']:+.3f} "
          f"[{iv['low']:+.3f}, {iv['high']:+.3f}] ({100 * iv['confidence']:.0f}% paired bootstrap); McNemar exact "
          f"p = {mc['pvalue']:.3g} ({mc['only_a']} right only in A, {mc['only_b']} only in B)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(r, indent=1) + "\n", encoding="utf-8")
    return 0


def listening(args: argparse.Namespace) -> int:
    from ..analysis.listening import listening_table

    md, data = listening_table(args.runs)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(md + "\n", encoding="utf-8")
        args.out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(md)
    return 0
