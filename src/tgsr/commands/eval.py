"""``tgsr eval run|score|table``: run benchmarks, score prediction files, combine runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import add_placement_arguments


def register(tree) -> None:
    from ..eval.benchmarks import BENCHMARKS

    group = tree.group("eval", "Evaluate models on speech-reasoning benchmarks.")
    names = sorted(BENCHMARKS)

    p = group.command("run", "Run a model on a benchmark; predictions are appended as produced and the run "
                             "resumes where it stopped.", handler=run)
    p.add_argument("--model", required=True,
                   help="model folder or hub id (read from the Hugging Face cache; downloaded unless HF_HUB_OFFLINE=1)")
    p.add_argument("--benchmark", required=True, choices=names)
    p.add_argument("--data-root", type=Path, help="folder holding the benchmark audio (and metadata)")
    p.add_argument("--meta", type=Path, help="metadata file (default: looked up under --data-root)")
    p.add_argument("--out", required=True, type=Path, help="run folder (RUN_DIR)")
    p.add_argument("--batch-size", type=int, default=8, help="items per generation batch (default 8)")
    p.add_argument("--limit", type=int, help="only the first N items, in benchmark order")
    p.add_argument("--prompt", choices=["grounded", "cot", "direct"], default="grounded",
                   help="reasoning prompt style (default: grounded)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=512, help="token budget per answer (default 512)")
    p.add_argument("--audio-condition", choices=["own", "swapped", "silence"], default="own",
                   help="listening control: the item's audio, another clip of similar length, or silence")
    p.add_argument("--seed", type=int, default=0, help="sampling seed when --temperature > 0 (default 0)")
    p.add_argument("--label", help="row name in `tgsr eval table` (default: the model folder name, plus a "
                                   "non-default prompt or audio condition)")
    p.add_argument("--family", help="model family, if it cannot be read from the config")
    add_placement_arguments(p)
    p.add_argument("--export-text", choices=["written", "choice"], default="written",
                   help="MMAU/MMAR export: the answer as the model wrote it (default) or the extracted option text")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = group.command("score", "Score predictions with tgsr's rule and the official rule: a run folder, its "
                               "predictions.jsonl, or an official-format file from any system.", handler=score)
    p.add_argument("--benchmark", required=True, choices=names)
    p.add_argument("--predictions", required=True, type=Path,
                   help="RUN_DIR, RUN_DIR/predictions.jsonl, or an official file (MMAU model_output JSON, "
                        "MMAR answer_prediction JSON/JSONL, AIR-Bench response JSONL)")
    p.add_argument("--json", type=Path, help="also write the full result as JSON here")

    p = group.command("table", "Combine run folders into a Table-2-like markdown table and CSV.", handler=table)
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    p.add_argument("--out", type=Path, help="write OUT.md and OUT.csv (default: print the markdown)")


def run(args: argparse.Namespace) -> int:
    from ..eval.run import RunConfig, run_eval

    cfg = RunConfig(model=args.model, benchmark=args.benchmark, out=str(args.out),
                    data_root=None if args.data_root is None else str(args.data_root.resolve()),
                    meta=None if args.meta is None else str(args.meta.resolve()), batch_size=args.batch_size,
                    limit=args.limit, prompt=args.prompt, temperature=args.temperature, top_p=args.top_p,
                    max_new_tokens=args.max_new_tokens, audio_condition=args.audio_condition, seed=args.seed,
                    label=args.label, family=args.family, dtype=args.dtype, device=args.device,
                    export_text=args.export_text)
    metrics = run_eval(cfg, progress=not args.quiet)
    print(format_metrics(metrics))
    print(f"run folder: {args.out}")
    return 0


def _is_tgsr_predictions(path: Path) -> bool:
    from ..records import iter_jsonl_dicts

    if path.suffix != ".jsonl":
        return False
    for _, obj in iter_jsonl_dicts(path):
        return isinstance(obj, dict) and "completion" in obj and "id" in obj
    return False


def score(args: argparse.Namespace) -> int:
    from ..errors import TgsrError
    from ..eval.results import score_official_file
    from ..eval.run import PREDICTIONS, RUN_INFO, finalize

    path = args.predictions
    run_dir = path if path.is_dir() else (path.parent if path.name == PREDICTIONS else None)
    if run_dir is not None and (run_dir / RUN_INFO).is_file() and (path.is_dir() or _is_tgsr_predictions(path)):
        info = json.loads((run_dir / RUN_INFO).read_text(encoding="utf-8"))
        if info["benchmark"] != args.benchmark:
            raise TgsrError(f"{run_dir} is a {info['benchmark']} run, not {args.benchmark}")
        result = finalize(run_dir)
    elif path.is_dir():
        raise TgsrError(f"{path}: not a run folder ({RUN_INFO} missing)")
    elif _is_tgsr_predictions(path):
        raise TgsrError(f"{path}: tgsr predictions need their run folder's {RUN_INFO}; pass the run folder")
    else:
        result = score_official_file(args.benchmark, path)
    print(format_metrics(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


def table(args: argparse.Namespace) -> int:
    from ..eval.table import build

    md, csv_text = build(args.runs)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        Path(f"{args.out}.md").write_text(md, encoding="utf-8")
        Path(f"{args.out}.csv").write_text(csv_text, encoding="utf-8")
        print(f"wrote {args.out}.md and {args.out}.csv")
    print(md, end="")
    return 0


def _pct(v) -> str:
    """A stored fraction, printed as percent."""
    return "n/a" if v is None else f"{100 * v:.2f}"


def format_metrics(m: dict) -> str:
    """A short human summary of a result dict (all numbers are also in the JSON)."""
    lines = [f"benchmark: {m.get('benchmark')}"]
    t = m.get("tgsr")
    if t:
        lines.append(f"  tgsr accuracy: {_pct(t['accuracy'])}% ({t['correct']}/{t['items']} items; "
                     f"unparseable {t['unparseable']}, errors {t['errors']}, missing {t['missing']})")
        if t.get("errors"):
            lines.append(f"  tgsr accuracy excluding error items: {_pct(t['accuracy_excluding_errors'])}%")
        for field, groups in t.get("by", {}).items():
            lines.append(f"  by {field}:")
            lines += [f"    {k}: {_pct(v['accuracy'])}% ({v['correct']}/{v['total']})" for k, v in groups.items()]
    o = m.get("official")
    if o:
        if "fail_num" in o:
            lines.append(f"  official-rule accuracy [{o['rule']}]: pooled {_pct(o['accuracy_pooled'])}% "
                         f"({o['correct']}/{o['counted']} counted; {o['fail_num']} failures excluded of "
                         f"{o['total_sum']}; {o['skipped_no_prediction']} without a response)")
        else:
            lines.append(f"  official-rule accuracy [{o['rule']}]: {_pct(o['accuracy'])}% "
                         f"({o['correct']}/{o['counted']} counted; {o['skipped_no_prediction']} skipped "
                         "without a prediction)")
        for field, groups in o.get("by", {}).items():
            lines.append(f"    official by {field}: " + "; ".join(
                f"{k} {_pct(v['accuracy'])}% ({v['correct']}/{v['total']})" for k, v in groups.items()))
    f = m.get("weighted_f1")
    if f:
        lines.append(f"  weighted F1: {_pct(f['f1'])}% over {f['support']} items")
    s = m.get("sta")
    if s:
        lines.append(f"  STA: mean IoU {_pct(s['mean_iou'])}%, IoU>=0.7 {_pct(s['iou_at_0.7'])}%, "
                     f"SED-F1 {_pct(s['sed']['f1'])}% (tp {s['sed']['tp']}, fp {s['sed']['fp']}, fn {s['sed']['fn']}; "
                     f"onset collar {s['sed']['onset_collar_s']}s, offset {s['sed']['offset_collar']}); "
                     f"{s['items']} items, without a span {s['no_span']}, errors {s['errors']}, missing {s['missing']}")
    bad = m.get("malformed_prediction_lines") or []
    if bad:  # these items count as missing above; say which lines were unreadable
        lines.append(f"  malformed prediction lines skipped: {len(bad)}")
        lines += [f"    {b.get('path')}:{b.get('line')}: {b.get('reason')}" for b in bad[:5]]
        if len(bad) > 5:
            lines.append(f"    ... {len(bad) - 5} more in metrics.json")
    th = m.get("throughput")
    if th and th.get("items_generated"):
        lines.append(f"  throughput: {th['items_generated']} items in {th['seconds']:.1f}s "
                     f"({th['items_per_second']:.2f} items/s)")
    return "\n".join(lines)
