"""Stage-1 variants of the demo on a development split: does pi_0 keep the base's listening?

The demo's Stage 1 (turn-level STA with the base task replayed) costs the shipped base its
listening (docs/demo.md). This script trains Stage 1 variants from the shipped base and scores
each pi_0 with direct answers, own and swapped audio, on a development split: test-split
dialogues 0-135 of seed 0, which earlier designs looked at and the demo never scores (it
scores 200-799 and gates on 140-195). With ``--sft`` it also trains the grounded and the plain
reasoning SFT from that pi_0 and scores them the same way. Every number comes from
``tgsr.demo.steps``, the functions the demo itself runs.

    python benchmarks/demo_stage1_variants.py --name shipped
    python benchmarks/demo_stage1_variants.py --name replay3 --replay 3
    python benchmarks/demo_stage1_variants.py --name frozen --sta tgsr.freeze_audio_encoder=true \
        --sft tgsr.freeze_audio_encoder=true

Results are appended to OUT/variants.jsonl (one line per variant); stages are cached in
OUT/stages, so the base's scores and a variant's pi_0 are computed once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", required=True, help="the variant's name (its stage folders and result line)")
    p.add_argument("--replay", type=int, default=1, help="DemoConfig.sta_replay: the base task's rows, repeated")
    p.add_argument("--sta", nargs="*", default=[], metavar="KEY=VALUE", help="overrides on the STA recipe")
    p.add_argument("--sft", nargs="*", default=None, metavar="KEY=VALUE",
                   help="also train both reasoning SFTs from pi_0, with these overrides on the SFT recipe")
    p.add_argument("--out", default="demo-stage1-variants")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    import torch

    from tgsr.demo.config import PACKAGED_BASE, DemoConfig
    from tgsr.demo.stages import StageRunner
    from tgsr.demo.steps import adopt_base, evaluate, evaluate_timestamps, make_corpus, train_sft, train_sta

    torch.set_num_threads(args.threads)
    # the development split: test-split dialogues 0-135, all their questions (~260)
    cfg = DemoConfig(name="full", first_test_clip=0, n_test_clips=136, eval_items=400, control_items=400,
                     sta_replay=args.replay)
    cfg = cfg.with_overrides("sta", *args.sta) if args.sta else cfg
    if args.sft:
        cfg = cfg.with_overrides("sft", *args.sft)
    out = Path(args.out)
    runner = StageRunner(out)
    corpus = runner.run("corpus", {"development": [0, 136]}, lambda d: make_corpus(cfg, d))
    base = runner.run("base", {"shipped": True}, lambda d: adopt_base(d, PACKAGED_BASE))
    sta = runner.run(f"sta-{args.name}", {"replay": args.replay, "overrides": args.sta},
                     lambda d: train_sta(cfg, d, base, corpus), base, corpus)

    def score(tag: str, stage, prompt: str) -> dict:
        acc = {}
        for cond in ("own", "swapped"):
            st = runner.run(f"eval-{tag}-{cond}", {"prompt": prompt},
                            lambda d, cond=cond: evaluate(cfg, d, stage, corpus, prompt, cond), stage, corpus)
            acc[cond] = st.summary["tgsr"]
        return {"own": acc["own"]["accuracy"], "swapped": acc["swapped"]["accuracy"], "n": acc["own"]["items"],
                "by_task": {k: round(v["accuracy"], 3) for k, v in acc["own"]["by"]["task"].items()}}

    result = {"name": args.name, "replay": args.replay, "sta_overrides": args.sta, "sft_overrides": args.sft,
              "sta_seconds": round(sta.seconds, 1), "base": score("base", base, "direct"),
              "pi_0": score(f"pi0-{args.name}", sta, "direct")}
    ts = runner.run(f"timestamps-{args.name}", {}, lambda d: evaluate_timestamps(cfg, d, sta, corpus), sta, corpus)
    result["pi_0_timestamps"] = {"mean_iou": ts.summary["mean_iou"], "iou_at_0.7": ts.summary["iou_at_0.7"],
                                 "no_span": ts.summary["no_span"], "n": ts.summary["items"]}
    if args.sft is not None:
        for target, style in (("rationale", "grounded"), ("rationale_plain", "cot")):
            sft = runner.run(f"sft-{args.name}-{style}", {"overrides": args.sft},
                             lambda d, t=target, s=style: train_sft(cfg, d, sta, corpus, t, s), sta, corpus)
            result[f"sft_{style}"] = {**score(f"sft-{args.name}-{style}", sft, style),
                                      "seconds": round(sft.seconds, 1)}
    print(json.dumps(result, indent=1))
    with open(out / "variants.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({**result, "config": {k: v for k, v in dataclasses.asdict(cfg).items()
                                                  if k in ("first_test_clip", "n_test_clips", "seed")}}) + "\n")


if __name__ == "__main__":
    main()
