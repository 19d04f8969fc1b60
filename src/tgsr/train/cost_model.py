"""The cost model of a GRPO step: lower bounds ("floors") on each phase from measured device ceilings.

A phase's floor is the least time the hardware needs for its unavoidable work:

- generation: every decoded token streams the decoded weights once, so ``new_tokens x weight
  bytes / copy bandwidth``; a second, tighter floor adds the KV-cache reads (each new token reads
  the keys and values of every earlier position, prompt included) and the prefill's FLOPs, once
  per prompt (its G completions share it: ``tgsr.share_prefill``);
- a log-prob pass (old policy, reference) and the loss forward: 2 FLOPs per linear weight per
  token, causal attention ``2 x layers x (heads x head_dim) x sequence^2`` (scores and values,
  a causal half each), the LM head over the completion only, the audio encoder over its frames;
- the loss backward: trained weights 2x their forward (input and weight gradients), frozen
  weights the gradient crosses 1x, attention 2x; the audio tower sits below everything, so a
  frozen tower gets no gradient; gradient checkpointing adds one recomputed forward of the
  checkpointed layers (the fraction checkpointed: ``tgsr.train.checkpointing``);
- the optimiser: AdamW reads parameter, gradient and two states and writes parameter and
  states, over the copy bandwidth.

Ceilings (``measure_ceilings``) are measured on the run's own device: a large device-to-device
copy (bytes read + written per second) and a square matrix product (FLOP/s) on random data.
``benchmarks/gpu_grpo_step.py`` prints measured phases against these floors.
"""

from __future__ import annotations

import math
import statistics
import time

import torch

GiB = 1024 ** 3


def _event_median(fn, reps: int, warmup: int, device) -> float:
    """Median seconds of ``fn`` over ``reps`` runs after ``warmup`` runs (CUDA events on a GPU)."""
    for _ in range(warmup):
        fn()
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize()
        for _ in range(reps):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b) / 1000)
    else:
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _copy_probe(device: torch.device, copy_gib: float, g: torch.Generator) -> dict:
    """Device-to-device copy: bytes read + written per second."""
    n = int(copy_gib * GiB) // 2
    # Two source buffers, alternated, so no run re-reads what the last one left in cache.
    srcs = [torch.randn(n, device=device, dtype=torch.bfloat16, generator=g) for _ in range(2)]
    dst = torch.empty_like(srcs[0])
    state = {"i": 0}

    def copy_once():
        state["i"] ^= 1
        dst.copy_(srcs[state["i"]])

    t_copy = _event_median(copy_once, reps=20, warmup=3, device=device)
    if not torch.equal(dst, srcs[state["i"]]):
        raise RuntimeError("copy probe wrote wrong data")
    return {"copy_bytes_per_buffer": 2 * n, "copy_s": t_copy, "copy_bandwidth_Bps": 2 * n * 2 / t_copy}


def _matmul_probe(device: torch.device, n: int, dtype: torch.dtype, g: torch.Generator) -> dict:
    """A square matrix product: FLOP/s, with a float64 spot check of one row."""
    a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    out = torch.empty(n, n, device=device, dtype=dtype)
    cuda = device.type == "cuda"
    t_mm = _event_median(lambda: torch.matmul(a, b, out=out), reps=10 if cuda else 3, warmup=3 if cuda else 1,
                         device=device)
    ref = a[:1].double() @ b.double()  # bf16 operands: ~1e-2 relative error at most
    rel = float((out[:1].double() - ref).norm() / ref.norm())
    if not math.isfinite(rel) or rel > 5e-2:
        raise RuntimeError(f"matmul probe is wrong: relative error {rel:.3g}")
    return {"matmul_n": n, "matmul_dtype": str(dtype).replace("torch.", ""), "matmul_s": t_mm,
            "matmul_flops": 2 * n ** 3 / t_mm, "matmul_rel_error": rel}


def measure_ceilings(device: torch.device, copy_gib: float, matmul_n: int, dtype: torch.dtype) -> dict:
    """Copy bandwidth (read + written bytes / s) and matmul rate (FLOP/s) on random data."""
    g = torch.Generator(device=device).manual_seed(1234)
    out = {**_copy_probe(device, copy_gib, g), **_matmul_probe(device, matmul_n, dtype, g)}
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def _module(model, suffix: str):
    for name, m in model.named_modules():
        if name == suffix or name.endswith("." + suffix):
            return m
    raise KeyError(suffix)


def model_shape(model) -> dict:
    """Parameter counts and attention shapes that the floors need (from the unwrapped model)."""
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    text = _module(model, "language_model")
    cfg = model.config.text_config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return {
        "total_params": count(model), "text_params": count(text),
        "text_embedding_params": count(text.embed_tokens), "lm_head_params": count(model.lm_head),
        "text_layer_params": count(text) - count(text.embed_tokens),
        "audio_params": count(_module(model, "audio_tower")), "vision_params": count(_module(model, "visual")),
        "layers": cfg.num_hidden_layers, "hidden": cfg.hidden_size, "heads": cfg.num_attention_heads,
        "kv_heads": cfg.num_key_value_heads, "head_dim": head_dim, "ffn": cfg.intermediate_size,
        "vocab": cfg.vocab_size,
        "audio_layers": model.config.audio_config.encoder_layers, "audio_d_model": model.config.audio_config.d_model,
        "audio_heads": model.config.audio_config.encoder_attention_heads,
        "audio_ffn": model.config.audio_config.encoder_ffn_dim, "mel_bins": model.config.audio_config.num_mel_bins,
    }


def step_floors(shape: dict, gens: list[dict], ceilings: dict, *, elt_bytes: int, lora: bool,
                recompute: float, audio_frames_per_row: int, trainable_audio: bool, lora_params: int,
                opt_bytes: float | None, generations_per_prompt: int = 1, audio_recompute: float | None = None) -> dict:
    """Lower bounds on each phase of one step (see the module docstring).

    ``gens``: the step's generation batches, each ``{"prompt_tokens": [...], "completion_tokens":
    [...]}`` per row, the G rows of a prompt next to each other (``tgsr.train.profiling.StepProfile.
    generations``); ``ceilings``: ``copy_bandwidth_Bps`` and ``matmul_flops``; ``shape``: ``model_shape``.
    ``recompute``: the fraction of decoder layers checkpointed (0 none, 1 all: one more forward of each in
    the backward), ``audio_recompute`` the audio encoder's (default the same). The prefill is counted once
    per prompt (``generations_per_prompt`` rows share it): the G copies of a prompt need no more.
    """
    bw, rate = ceilings["copy_bandwidth_Bps"], ceilings["matmul_flops"]
    P = [p for g in gens for p in g["prompt_tokens"]]
    C = [c for g in gens for c in g["completion_tokens"]]
    S = [p + c for p, c in zip(P, C)]
    n_new = max(C) if C else 0
    L, d_attn = shape["layers"], shape["heads"] * shape["head_dim"]
    n_lin, n_head, n_audio = shape["text_layer_params"], shape["lm_head_params"], shape["audio_params"]
    rows = len(P)
    audio_rows_frames = rows * audio_frames_per_row
    g = max(1, int(generations_per_prompt))
    if rows % g:
        raise ValueError(f"{rows} generated rows are not groups of {g} per prompt")
    prompts = P[::g]
    # generation
    decoded_weights = (n_lin + n_head + lora_params) * elt_bytes
    kv_per_token = L * 2 * shape["kv_heads"] * shape["head_dim"] * elt_bytes
    kv_bytes = kv_per_token * sum(n_new * p + n_new * (n_new - 1) / 2 for p in P)
    prefill_flops = (2 * n_lin * sum(prompts) + 2 * L * d_attn * sum(p * p for p in prompts)
                     + 2 * n_audio * len(prompts) * audio_frames_per_row)
    gen_weights_floor = n_new * decoded_weights / bw
    gen_full_floor = gen_weights_floor + kv_bytes / bw + prefill_flops / rate
    # one forward over prompt + completion (log-prob passes; the loss forward)
    lin = 2 * n_lin * sum(S)
    head = 2 * n_head * sum(C)
    attn = 2 * L * d_attn * sum(s * s for s in S)
    audio = 2 * n_audio * audio_rows_frames
    fwd = lin + head + attn + audio
    # backward: trained weights 2x forward (input and weight gradients), frozen layers that the
    # gradient crosses 1x, attention 2x; the audio tower sits below everything, so when it is
    # frozen no gradient enters it. Checkpointing recomputes the checkpointed layers' forward.
    w = 1 if lora else 2
    bwd = w * (lin + head) + 2 * attn + (2 * audio if trainable_audio else 0)
    audio_recompute = recompute if audio_recompute is None else audio_recompute
    recomputed = recompute * (lin + attn) + (audio_recompute * audio if trainable_audio else 0)
    out = {
        "decoded_weight_bytes": decoded_weights, "kv_bytes_read": kv_bytes, "prefill_flops": prefill_flops,
        "generation_floor_s": gen_weights_floor, "generation_floor_with_kv_prefill_s": gen_full_floor,
        "logprob_pass_flops": fwd, "logprob_pass_floor_s": fwd / rate,
        "loss_fwd_bwd_flops": fwd + bwd + recomputed, "loss_fwd_bwd_floor_s": (fwd + bwd + recomputed) / rate,
        "loss_fwd_bwd_floor_no_recompute_s": (fwd + bwd) / rate,
        "rows": rows, "prompt_tokens_mean": statistics.mean(P) if P else 0, "new_tokens": n_new,
        "completion_tokens_total": sum(C), "sequence_tokens_total": sum(S),
    }
    if opt_bytes is not None:
        out["optimizer_bytes"] = opt_bytes
        out["optimizer_floor_s"] = opt_bytes / bw
    return out


def optimizer_bytes(optimizer) -> float | None:
    """Bytes one AdamW step must move: read param, grad and states; write param and states."""
    try:
        total = 0
        for group in optimizer.param_groups:
            for prm in group["params"]:
                if prm.grad is None and not optimizer.state.get(prm):
                    continue
                b = prm.numel() * prm.element_size()
                total += 2 * b + b  # param read + write, grad read (grad dtype = param dtype here)
                for v in optimizer.state.get(prm, {}).values():
                    if hasattr(v, "numel") and v.numel() == prm.numel():
                        total += 2 * v.numel() * v.element_size()
        return float(total)
    except Exception:  # an optimiser wrapper without plain state: no floor
        return None


def full_finetune_bytes(shape: dict, elt_bytes: int, adam_state_bytes: int) -> float:
    """Full fine-tuning memory before activations: policy + reference copy + grads + AdamW states."""
    trainable = shape["total_params"] - shape["vision_params"]
    return (2 * shape["total_params"] * elt_bytes + trainable * (elt_bytes + adam_state_bytes))



__all__ = ["GiB", "measure_ceilings", "model_shape", "step_floors", "optimizer_bytes", "full_finetune_bytes"]
