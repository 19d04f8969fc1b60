"""Speed of the model layer per family at batch 8 on tiny models (CPU, 1 thread).

For each family and tiny size: input building from waveforms vs from cached per-clip features,
one forward (``completion_logprobs`` of 40-token completions, the GRPO/SFT pass) and
``generate`` of 40 new tokens with the KV cache. Ratios are against Qwen2.5-Omni measured in the
same run. Run: ``.venv/bin/python benchmarks/bench_models.py [--sizes xs s] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tgsr.models import load_model  # noqa: E402
from tgsr.models.tiny import build_tiny  # noqa: E402
from tgsr.prompts import reasoning_question, user_messages  # noqa: E402

FAMILIES = ["qwen2.5-omni", "qwen2-audio", "audio-flamingo-3", "qwen3-omni"]
BATCH, NEW_TOKENS, SECONDS = 8, 40, 5.0


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def bench(family, size, root, repeats):
    lm = load_model(build_tiny(family, size, os.path.join(root, f"{family}-{size}"), seed=0))
    rng = np.random.default_rng(0)
    audios = [0.1 * rng.standard_normal(int(SECONDS * 16000)).astype(np.float32) for _ in range(BATCH)]
    convs = [user_messages(reasoning_question("How many speakers are there?", ["one", "two", "three"]))] * BATCH
    t_wave, inputs = timed(lambda: lm.build_inputs(audios, convs), repeats)
    feats = lm.featurize(audios)
    t_cached, _ = timed(lambda: lm.build_inputs(feats, convs), repeats)
    ids = torch.randint(20, len(lm.tokenizer), (BATCH, NEW_TOKENS))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        t_fwd, _ = timed(lambda: lm.completion_logprobs(inputs, ids, mask), repeats)

    def gen():
        # the end token is a suppressed placeholder: every row runs the full NEW_TOKENS steps
        lm.eos_token_ids = [lm.audio_token_id]
        return lm.generate(inputs, max_new_tokens=NEW_TOKENS, do_sample=True, temperature=0.8)

    torch.manual_seed(0)
    t_gen, g = timed(gen, repeats)
    assert g.completion_ids.shape == (BATCH, NEW_TOKENS)
    return {"params": sum(p.numel() for p in lm.model.parameters()), "prompt_len": inputs["input_ids"].shape[1],
            "wave": t_wave, "cached": t_cached, "fwd": t_fwd, "gen": t_gen}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["xs", "s"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"batch {BATCH}, {SECONDS:.0f} s clips, {NEW_TOKENS} new tokens, {args.threads} thread(s), "
          f"median of {args.repeats}; torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as root:
        for size in args.sizes:
            rows = {f: bench(f, size, root, args.repeats) for f in FAMILIES}
            base = rows["qwen2.5-omni"]
            print(f"\nsize {size}")
            print(f"{'family':<18}{'params':>9}{'prompt':>8}{'inputs(wav)':>13}{'inputs(cached)':>16}"
                  f"{'forward':>10}{'generate':>10}{'fwd x':>7}{'gen x':>7}")
            for f, r in rows.items():
                print(f"{f:<18}{r['params'] / 1e6:>8.2f}M{r['prompt_len']:>8}{r['wave'] * 1e3:>11.1f}ms"
                      f"{r['cached'] * 1e3:>14.1f}ms{r['fwd'] * 1e3:>8.1f}ms{r['gen'] * 1e3:>8.1f}ms"
                      f"{r['fwd'] / base['fwd']:>7.2f}{r['gen'] / base['gen']:>7.2f}")
            print("(fwd x / gen x: time relative to qwen2.5-omni; inputs(cached) reuses featurize() output)")


if __name__ == "__main__":
    main()
