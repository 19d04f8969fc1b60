"""``tgsr rewards``: score existing completions with the training rewards."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(tree) -> None:
    from ..rewards import _FACTORIES

    p = tree.command(
        "rewards",
        help="Score completions (JSONL: 'completion' plus dataset columns) with tgsr's rewards.",
        handler=run,
    )
    p.add_argument("--input", required=True, type=Path,
                   help="JSONL; each line holds 'completion' (text or chat messages) and the "
                        "dataset columns the rewards need (answer/label, choices, evidence, duration)")
    p.add_argument("--out", required=True, type=Path,
                   help="output JSONL: each input line plus 'rewards' (name -> value) and 'spans'")
    p.add_argument("--reward", action="append", choices=sorted(_FACTORIES), dest="rewards",
                   help="reward to compute; repeat for several (default: answer and compaction)")
    p.add_argument("--compaction-count", choices=["distinct", "paper"], default="distinct",
                   help="how compaction counts citations: distinct valid spans (default) or the "
                        "paper plugin's pattern counts")


def run(args: argparse.Namespace) -> int:
    from ..answers import completion_text
    from ..errors import RecordError, TgsrError
    from ..records import iter_jsonl_dicts
    from ..rewards import RewardStats, get_reward
    from ..spans import find_spans, spans_to_rows

    if args.input.is_dir():
        raise TgsrError(f"{args.input}: is a folder; expected a JSONL file")
    if not args.input.is_file():
        raise TgsrError(f"{args.input}: input file not found")
    names = args.rewards or ["answer", "compaction"]
    stats = RewardStats()
    funcs = []
    for name in dict.fromkeys(names):  # keep order, drop repeats
        params = {"stats": stats}
        if name in ("compaction", "compaction_flat"):
            params["count"] = args.compaction_count
        elif name == "combined":
            params["components"] = {"answer": 1.0,
                                    "compaction": {"weight": 1.0, "count": args.compaction_count}}
        funcs.append(get_reward(name, **params))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    scored = 0
    skipped: list[RecordError] = []
    sums = {f.__name__: 0.0 for f in funcs}
    with open(args.out, "w", encoding="utf-8") as out:
        for lineno, obj in iter_jsonl_dicts(args.input):
            if isinstance(obj, RecordError):
                skipped.append(obj)
                print(f"tgsr rewards: skipped {obj}", file=sys.stderr)
                continue
            if "completion" not in obj:
                err = RecordError(args.input, lineno, "completion", "missing")
                skipped.append(err)
                print(f"tgsr rewards: skipped {err}", file=sys.stderr)
                continue
            completion = obj["completion"]
            if completion is not None and not isinstance(completion, (str, list)):
                err = RecordError(args.input, lineno, "completion",
                                  f"expected text or a list of chat messages, got {type(completion).__name__}")
                skipped.append(err)
                print(f"tgsr rewards: skipped {err}", file=sys.stderr)
                continue
            columns = {k: [v] for k, v in obj.items() if k not in ("completion", "rewards", "spans")}
            values = {f.__name__: f([completion], **columns)[0] for f in funcs}
            for k, v in values.items():
                sums[k] += v
            row = dict(obj)
            row["rewards"] = values
            row["spans"] = spans_to_rows(find_spans(completion_text(completion)))
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            scored += 1

    means = ", ".join(f"{k}={v / scored:.4f}" for k, v in sums.items()) if scored else "n/a"
    print(f"tgsr rewards: scored {scored} line(s), skipped {len(skipped)} malformed line(s); "
          f"mean {means}; wrote {args.out}", file=sys.stderr)
    problems = stats.snapshot()
    if problems:
        listed = ", ".join(f"{k}: {v}" for k, v in sorted(problems.items()))
        print(f"tgsr rewards: completions scored 0 for a reason: {listed}", file=sys.stderr)
    if not scored and not skipped:
        print(f"tgsr rewards: {args.input} holds no completions", file=sys.stderr)
    # Nothing scored (empty or all-malformed input) is a failure, as documented.
    return 0 if scored else 1
