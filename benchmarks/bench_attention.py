"""Peak memory of block-attention analysis: tgsr's chunked recorder vs ``output_attentions=True``.

Both variants run in fresh subprocesses on the same randomly initialised
Qwen2.5-Omni thinker (real transformers class) and the same ~2k-token sequence
(system + audio + question + generated tokens), one teacher-forced forward pass each.
Peak memory is the highest resident set size seen during the forward pass (sampled every
millisecond) minus the resident size just before it. The per-layer block masses of the
generated tokens are compared element by element.

    .venv/bin/python benchmarks/bench_attention.py [--layers 8 --heads 8 --tokens 2048]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _build(layers: int, heads: int, hidden: int):
    import torch
    from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration

    torch.manual_seed(0)
    cfg = Qwen2_5OmniThinkerConfig(
        audio_config=dict(d_model=64, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=128,
                          num_mel_bins=128, output_dim=hidden, n_window=100, max_source_positions=1500),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=32, num_heads=2, out_hidden_size=hidden,
                           fullatt_block_indexes=[0]),
        text_config=dict(vocab_size=1024, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=heads // 2,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                          "mrope_section": [hidden // heads // 8, hidden // heads // 8 * 3 // 2,
                                                            hidden // heads // 2 - hidden // heads // 8
                                                            - hidden // heads // 8 * 3 // 2]}),
        audio_token_id=1000, vision_start_token_id=1001, image_token_id=1002, video_token_id=1003,
        audio_start_token_id=1004, audio_end_token_id=1005,
    )
    return Qwen2_5OmniThinkerForConditionalGeneration(cfg).eval()


def _inputs(tokens: int):
    import torch

    n_frames = 4000                                   # 40 s of 10 ms frames -> 1000 audio tokens
    n_audio = ((n_frames - 1) // 2 + 1 - 2) // 2 + 1
    n_sys, n_q = 24, 40
    n_gen = tokens - n_sys - n_q - n_audio - 2
    g = torch.Generator().manual_seed(1)
    ids = torch.cat([torch.randint(0, 990, (n_sys,), generator=g), torch.tensor([1004]),
                     torch.full((n_audio,), 1000), torch.tensor([1005]), torch.randint(0, 990, (n_q,), generator=g),
                     torch.randint(0, 990, (n_gen,), generator=g)])
    inputs = {"input_ids": ids[None], "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
              "input_features": torch.randn(1, 128, n_frames, generator=g),
              "feature_attention_mask": torch.ones(1, n_frames, dtype=torch.long)}
    a0 = n_sys
    blocks = {"system": (0, a0), "audio": (a0, a0 + n_audio + 2), "question": (a0 + n_audio + 2, len(ids) - n_gen),
              "output": (len(ids) - n_gen, len(ids))}
    return inputs, blocks, n_gen


def worker(variant: str, layers: int, heads: int, hidden: int, tokens: int, out: str, chunk: int) -> None:
    import torch

    from tgsr.analysis.attention import block_attention, partition_blocks, reduce_full_attentions

    torch.set_num_threads(max(1, int(os.environ.get("BENCH_THREADS", "2"))))
    model = _build(layers, heads, hidden)
    inputs, blocks, n_gen = _inputs(tokens)
    seq = inputs["input_ids"].shape[1]
    layout = partition_blocks(blocks, seq)
    rows = (seq - n_gen - 1, seq - 1)
    if variant == "full":
        model.set_attn_implementation("eager")
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.001)

    base = _rss()
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.perf_counter()
    with torch.no_grad():
        if variant == "full":
            o = model(**inputs, output_attentions=True, use_cache=False)
            res = reduce_full_attentions(o.attentions, layout, rows)
            held = sum(a.numel() * a.element_size() for a in o.attentions)
            del o
        else:
            res = block_attention(model, inputs, layout, rows, chunk=chunk)
            held = res.peak_chunk_bytes
    dt = time.perf_counter() - t0
    stop.set()
    th.join()
    torch.save({"mass": res.mass, "per_token": res.per_token}, out + ".pt")
    with open(out + ".json", "w") as fh:
        json.dump({"peak_delta": max(0, peak[0] - base), "seconds": dt, "seq": seq, "n_gen": n_gen,
                   "attention_bytes": held}, fh)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--chunk", type=int, default=128)
    ap.add_argument("--worker", choices=["full", "blocks"], help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(a.worker, a.layers, a.heads, a.hidden, a.tokens, a.result, a.chunk)
        return 0
    import torch

    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in ("full", "blocks"):
            out = os.path.join(tmp, variant)
            subprocess.run([sys.executable, __file__, "--worker", variant, "--result", out, "--layers", str(a.layers),
                            "--heads", str(a.heads), "--hidden", str(a.hidden), "--tokens", str(a.tokens),
                            "--chunk", str(a.chunk)], check=True)
            with open(out + ".json") as fh:
                res[variant] = json.load(fh)
            res[variant]["arrays"] = torch.load(out + ".pt")
    f, b = res["full"], res["blocks"]
    diff_mass = float((f["arrays"]["mass"] - b["arrays"]["mass"]).abs().max())
    diff_pt = float((f["arrays"]["per_token"] - b["arrays"]["per_token"]).abs().max())
    mib = 1024 ** 2
    print(f"Qwen2.5-Omni thinker, {a.layers} layers x {a.heads} heads, hidden {a.hidden}; sequence {f['seq']} tokens, "
          f"{f['n_gen']} generated rows analysed; torch threads {os.environ.get('BENCH_THREADS', '2')}")
    print(f"{'variant':<34} {'peak extra RSS':>15} {'attention held':>15} {'forward s':>10}")
    print(f"{'output_attentions=True (eager)':<34} {f['peak_delta'] / mib:>12.1f} MiB "
          f"{f['attention_bytes'] / mib:>12.1f} MiB {f['seconds']:>10.2f}")
    print(f"{'tgsr block recorder (chunk ' + str(a.chunk) + ')':<34} {b['peak_delta'] / mib:>12.1f} MiB "
          f"{b['attention_bytes'] / mib:>12.1f} MiB {b['seconds']:>10.2f}")
    print(f"peak memory ratio (recorder / full): {b['peak_delta'] / f['peak_delta']:.3f}x  (goal <= 0.1x)")
    print(f"max |difference|: mass {diff_mass:.2e}, per-token {diff_pt:.2e}  (goal <= 1e-6)")
    return 0 if diff_mass <= 1e-6 and diff_pt <= 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
