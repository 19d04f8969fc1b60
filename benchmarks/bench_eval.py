"""Evaluation throughput: items/s with batched generation (batch 16) against one item at a time.

Same tiny model (random weights), same items (MMAU speech questions with 1-3 s stand-in
audio), same greedy decoding and token budget, one torch thread; both measured in this
run through ``tgsr.eval.run.run_eval``. Usage:

    python benchmarks/bench_eval.py [--items 48] [--size xs] [--max-new-tokens 32]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tgsr.audio import save_audio  # noqa: E402
from tgsr.eval.benchmarks import BENCHMARKS  # noqa: E402
from tgsr.eval.run import RunConfig, run_eval  # noqa: E402
from tgsr.models import load_model  # noqa: E402
from tgsr.models.tiny import build_tiny  # noqa: E402


def find_mmau_meta() -> Path:
    here = Path(__file__).resolve().parent.parent
    for c in [os.environ.get("TGSR_SHARED_DIR"), here.parent / "shared", here / "shared"]:
        if c and (Path(c) / "benchmarks/mmau/mmau-test-mini.json").is_file():
            return Path(c) / "benchmarks/mmau/mmau-test-mini.json"
    sys.exit("MMAU metadata not found: set TGSR_SHARED_DIR to the folder holding benchmarks/")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=48)
    ap.add_argument("--size", default="xs")
    ap.add_argument("--family", default="qwen2.5-omni")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = build_tiny(args.family, args.size, tmp / "model", seed=0)
        lm = load_model(model_dir)
        meta = find_mmau_meta()
        root = tmp / "data"
        examples = BENCHMARKS["mmau-mini-speech"].load(root, meta)[: args.items]
        rng = np.random.default_rng(0)
        for i, ex in enumerate(examples):
            save_audio(ex.audio, (0.1 * rng.standard_normal(16000 * (1 + i % 3))).astype(np.float32))

        def measure(batch: int, name: str, limit: int) -> dict:
            cfg = RunConfig(model=str(model_dir), benchmark="mmau-mini-speech", out=str(tmp / name),
                            data_root=str(root), meta=str(meta), limit=limit, batch_size=batch,
                            max_new_tokens=args.max_new_tokens)
            t0 = time.perf_counter()
            m = run_eval(cfg, lm=lm, progress=False)
            return {"items_per_s": m["throughput"]["items_per_second"], "wall_s": time.perf_counter() - t0,
                    "errors": m["tgsr"]["errors"]}

        measure(args.batch_size, "warmup", min(args.batch_size, args.items))   # warm caches, allocator
        one = measure(1, "one_by_one", args.items)
        batched = measure(args.batch_size, "batched", args.items)

    print(f"model: tiny {args.family} size {args.size}; {args.items} items; greedy, max_new_tokens "
          f"{args.max_new_tokens}; torch threads {args.threads}")
    print(f"one by one (batch 1):  {one['items_per_s']:.2f} items/s  (run {one['wall_s']:.1f}s)")
    print(f"batched (batch {args.batch_size}):   {batched['items_per_s']:.2f} items/s  (run {batched['wall_s']:.1f}s)")
    print(f"speed-up: {batched['items_per_s'] / one['items_per_s']:.2f}x (goal >= 3x)")


if __name__ == "__main__":
    main()
