"""``tgsr train sta|sft|grpo --config RECIPE.yaml [key=value ...] [--resume]``; ``tgsr train fields STAGE``."""

from __future__ import annotations

import argparse
import json

HELP = {
    "sta": "Stage 1, Supervised Timestamp Alignment: fine-tune on 'what is the timestamp of <phrase>' and "
           "report held-out IoU and the IoU>=0.7 rate. The result is the GRPO reference policy.",
    "sft": "Reasoning SFT on rationales (tgsr.target=rationale_plain: the paper's baseline without timestamps; "
           "rationale: grounded warm start).",
    "grpo": "Stage 2, GRPO with R_answer + R_tg (compaction) and a KL to the Stage-1 policy; ablations via "
            "tgsr.ablation=paper|no_grounding|no_compaction|grounding_iou|grounding_f1|answer_only.",
}


def register(tree) -> None:
    group = tree.group("train", help="Train: Stage-1 STA, reasoning SFT, Stage-2 GRPO.")
    for stage in ("sta", "sft", "grpo"):
        p = group.command(stage, help=HELP[stage], handler=_handler(stage),
                          epilog="Overrides: trainer fields as key=value (learning_rate=1e-5, max_steps=50), "
                                 "tgsr fields as tgsr.key=value (tgsr.lora=true). Values are YAML.")
        p.add_argument("--config", required=True, help="recipe YAML, e.g. recipes/tiny-cpu/%s.yaml" % stage)
        p.add_argument("--resume", action="store_true",
                       help="continue from the last checkpoint-N in output_dir (a killed run)")
        p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p = group.command("fields", help="List the tgsr: recipe fields of a stage with their type, default and help "
                                     "(trainer fields: see TrainingArguments / TRL's GRPOConfig).", handler=_fields)
    p.add_argument("stage", nargs="?", default="grpo", choices=("sta", "sft", "grpo"))


def _fields(args: argparse.Namespace) -> int:
    from ..train.config import field_help

    rows = field_help(args.stage)
    print(f"tgsr: fields of the {args.stage} recipe (set as tgsr.<name>=<value> or under 'tgsr:' in the YAML)")
    for r in rows:
        print(f"  {r['name']}  ({r['type']}; default {r['default']})")
        print(f"      {r['help']}")
    return 0


def _handler(stage: str):
    def run(args: argparse.Namespace) -> int:
        from ..train import run as run_stage
        from ..train.config import load_config

        trainer_args, tgsr_args = load_config(stage, args.config, args.overrides)
        try:
            summary = run_stage(stage, trainer_args, tgsr_args, resume=args.resume)
        finally:
            _close_process_group()
        keys = [k for k in summary if k not in ("logprob_checks",)]
        print(json.dumps({k: summary[k] for k in keys}, indent=2, default=str))
        return 0

    return run


def _close_process_group() -> None:
    """Under ``accelerate launch`` end the process group before the interpreter exits: a gloo group
    left to interpreter teardown occasionally aborted a rank ("terminate called without an active
    exception", exit -6) after the run had finished and saved."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()

