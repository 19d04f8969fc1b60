"""Generate with the LoRA adapter folded into the base weights, then put the exact weights back.

Why: during GRPO sampling a LoRA policy runs every adapted linear as ``base(x) + B(A(drop(x)))``:
at decode time that is four to six extra small kernels (and their Python dispatch) on each of
the 196 adapted projections of a 7B model, for every generated token. Decoding is launch- and
memory-bound, so those kernels cost a large share of generation time. Folding ``scaling * B @ A``
into a copy of each base weight makes every projection one matmul again.

How: for each adapted ``nn.Linear`` the merged weight ``W + scaling * B @ A`` is computed in
float32, cast to the weight's dtype, and swapped in for the duration of the block, with the
adapter branches disabled. The original weight tensors are kept and swapped back, so the base
weights come back bit for bit (PEFT's merge/unmerge works in place and would drift in bf16).
The copy costs the size of the adapted weights in memory while the block runs; with
``policy="auto"`` the merge happens only when the GPU has that much free memory.

Measured (benchmarks/RESULTS.md, H100, Qwen2.5-Omni-7B-shaped thinker, LoRA r 16, 64 rows x 256
tokens): generation 19.0-21.1 s -> 8.3-9.3 s per GRPO step, peak memory 39.5 -> 51.7 GiB.

The sampled distribution equals the policy's up to the rounding of the merged weights (exact in
float32, about 1e-2 in log-probs with bf16 weights) and without LoRA dropout, as in TRL's vLLM
path, which also samples from merged weights.
"""

from __future__ import annotations

import contextlib
import logging

import torch

log = logging.getLogger(__name__)


def _lora_linears(model: torch.nn.Module):
    """(module, base nn.Linear, active adapter names) for every LoRA linear; None if any cannot merge."""
    try:
        from peft.tuners.lora.layer import Linear as LoraLinear
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:  # no PEFT, no adapters
        return []
    out = []
    for name, m in model.named_modules():
        if not isinstance(m, BaseTunerLayer):
            continue
        active = [a for a in m.active_adapters if a in getattr(m, "lora_A", {})]
        if not active:
            continue
        base = m.get_base_layer()
        reason = None
        if not isinstance(m, LoraLinear) or type(base) is not torch.nn.Linear:
            reason = f"{type(m).__name__} over {type(base).__name__}"
        elif not base.weight.is_floating_point():
            reason = f"quantised base weight ({base.weight.dtype})"
        elif m.merged:
            reason = "already merged"
        elif any(m.use_dora.get(a, False) for a in active):
            reason = "DoRA"
        elif getattr(m, "fan_in_fan_out", False):
            reason = "fan_in_fan_out"
        if reason:
            log.warning("LoRA merge for generation skipped: %s at %s", reason, name)
            return None
        out.append((m, base, active))
    return out


def _merged_weight(m, base: torch.nn.Linear, adapters: list[str]) -> torch.Tensor:
    w = base.weight.detach().float()
    for a in adapters:
        w = w + m.scaling[a] * (m.lora_B[a].weight.detach().float() @ m.lora_A[a].weight.detach().float())
    return w.to(base.weight.dtype)


def merge_policy(value) -> str:
    """``tgsr.merge_lora_for_generation``: true, false or "auto" (merge when the copy fits)."""
    if isinstance(value, bool):
        return "always" if value else "never"
    if isinstance(value, str) and value.lower() in ("auto", "true", "false"):
        return {"auto": "auto", "true": "always", "false": "never"}[value.lower()]
    raise ValueError(f"merge_lora_for_generation must be true, false or auto, got {value!r}")


def _copy_fits(layers) -> bool:
    """On a GPU: is there room for the merged copies (plus one float32 layer and 1 GiB of slack)?"""
    weights = [base.weight for _, base, _ in layers]
    device = weights[0].device
    if device.type != "cuda":
        return True
    need = sum(w.numel() * w.element_size() for w in weights) + max(w.numel() for w in weights) * 4 + 2 ** 30
    free, _ = torch.cuda.mem_get_info(device)
    return free >= need


@contextlib.contextmanager
def merged_lora(model: torch.nn.Module, policy: str = "always"):
    """Inside the block, ``model`` (a ``PeftModel``) runs on merged weights with adapters off.

    Yields True when the weights were merged, False when the model has nothing to merge, a
    layer that cannot be merged exactly (quantised, DoRA, ...), or (``policy="auto"``) no GPU
    memory for the copy; the model then runs unchanged.
    """
    layers = _lora_linears(model) if policy != "never" else None
    if not layers or not hasattr(model, "disable_adapter") or (policy == "auto" and not _copy_fits(layers)):
        yield False
        return
    swapped: list[tuple[torch.nn.Linear, torch.Tensor]] = []
    try:
        with torch.no_grad():
            for m, base, adapters in layers:
                merged = _merged_weight(m, base, adapters)
                swapped.append((base, base.weight.data))
                base.weight.data = merged
        with model.disable_adapter():
            yield True
    finally:
        for base, original in swapped:
            base.weight.data = original


__all__ = ["merge_policy", "merged_lora"]
