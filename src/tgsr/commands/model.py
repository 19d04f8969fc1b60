"""``tgsr model``: build tiny offline models (``tgsr model tiny``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

FAMILY_NAMES = ("qwen2.5-omni", "qwen2-audio", "audio-flamingo-3", "qwen3-omni")


def register(tree) -> None:
    group = tree.group("model", help="Model utilities: build tiny offline models of the supported architectures.")
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


def run_tiny(args: argparse.Namespace) -> int:
    from ..models.tiny import build_tiny

    out = build_tiny(args.family, args.size, args.out, seed=args.seed, hop_length=args.hop_length)
    meta = json.loads((out / "tgsr_tiny.json").read_text())
    print(f"wrote {args.family} ({args.size}, {meta['parameters'] / 1e6:.2f} M parameters, "
          f"hop {meta['hop_length']}) to {out}")
    return 0
