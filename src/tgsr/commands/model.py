"""``tgsr model``: build offline models: tiny ones (``tiny``) and random-weight folders laid out like
the real hub checkpoints (``hub-layout``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

FAMILY_NAMES = ("qwen2.5-omni", "qwen2-audio", "audio-flamingo-3", "qwen3-omni")


def register(tree) -> None:
    group = tree.group("model", help="Model utilities: build tiny offline models of the supported architectures, "
                                     "or random-weight folders laid out like the real hub checkpoints.")
    p = group.command(
        "tiny",
        help="Write a tiny randomly initialised model (tokenizer, processor, config, weights) that "
             "from_pretrained opens offline.",
        handler=run_tiny,
    )
    p.add_argument("--family", required=True, choices=FAMILY_NAMES, help="model architecture")
    p.add_argument("--size", default="xs", choices=("xs", "s", "m"),
                   help="xs ~0.3 M parameters (tests), s ~1.4 M (demo), m a few M (default: xs)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="weight initialisation seed (default: 0)")
    p.add_argument("--hop-length", type=int, default=None, choices=(160, 320),
                   help="log-mel hop in samples (default 320 = 12.5 audio tokens/s, faster to train; 160 = the "
                        "real models' rate; Qwen3-Omni defaults to 160, which already gives 12.5/s)")


    from ..models.hub_layout import CHECKPOINTS

    p = group.command(
        "hub-layout",
        help="Write a random-weight folder laid out exactly like a real hub checkpoint (its config, templates, "
             "tokenizer ids, preprocessor and generation files, sharded weights under the hub's key names), to "
             "dry-run recipes, evaluation and the sharded path before downloading the weights.",
        handler=run_hub_layout,
    )
    p.add_argument("--repo", required=True, choices=sorted(CHECKPOINTS), help="the hub checkpoint to reproduce")
    p.add_argument("--out", required=True, type=Path, help="output folder (new or empty)")
    p.add_argument("--size", default="xs", choices=("xs", "full"),
                   help="xs: tiny layers, real vocabulary and token ids (default); full: the real 7B shape")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"),
                   help="weights as stored (default bfloat16, as on the hub)")
    p.add_argument("--cache", type=Path, metavar="HF_HUB_CACHE",
                   help="also install the folder in this Hugging Face cache as the repo's main snapshot, so the "
                        "hub id itself resolves (e.g. with HF_HUB_OFFLINE=1)")


def run_hub_layout(args: argparse.Namespace) -> int:
    from ..models.hub_layout import build_hub_layout, install_in_cache

    out = build_hub_layout(args.repo, args.out, size=args.size, seed=args.seed, dtype=args.dtype)
    shards = sorted(p.name for p in out.glob("model-*.safetensors"))
    print(f"wrote {args.repo} ({args.size}, {len(shards)} shards) to {out}")
    if args.cache:
        snap = install_in_cache(out, args.repo, args.cache)
        print(f"installed as {args.repo} in {args.cache} ({snap})")
    return 0


def run_tiny(args: argparse.Namespace) -> int:
    from ..models.tiny import build_tiny

    out = build_tiny(args.family, args.size, args.out, seed=args.seed, hop_length=args.hop_length)
    meta = json.loads((out / "tgsr_tiny.json").read_text())
    print(f"wrote {args.family} ({args.size}, {meta['parameters'] / 1e6:.2f} M parameters, "
          f"hop {meta['hop_length']}) to {out}")
    return 0
