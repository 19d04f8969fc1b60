"""Sharded training (DeepSpeed ZeRO-3, FSDP2): what changes when no process holds whole weights.

- ``sharding(trainer)``: "deepspeed" (ZeRO-3), "fsdp" or None.
- ``ShardedCpuMixin``: Accelerate builds FSDP only for accelerators, so
  ``accelerate launch --config_file recipes/accelerate/fsdp.yaml`` on a machine without a GPU
  would silently train plain data-parallel (every rank a whole copy). The mixin switches such a
  run to real FSDP2 over gloo, so a recipe's sharded path can be checked on a laptop.
- ``gathered_state_dict(trainer)``: the whole weights, gathered from every rank onto the main
  process's CPU (every rank must call it); the final model folder is written from it, because
  ``save_pretrained`` on a partitioned model writes empty tensors.
- ``merge_lora_state_dict``: LoRA folded into the base weights of such a state dict (a sharded
  PEFT model cannot ``merge_and_unload``).
- ``parameter_counts``: this rank's local and the global parameter count, the evidence that a
  run really sharded; ``numel`` reads ZeRO-3's ``ds_numel`` (a partitioned weight reports 0).
- ``zero3_init_disabled``: load a whole model on one process while a ZeRO-3 config is active
  (``from_pretrained`` would otherwise partition it and wait for the other ranks).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re

import torch

from ..errors import TgsrError

log = logging.getLogger(__name__)


def numel(p: torch.Tensor) -> int:
    """Elements of a parameter, also when ZeRO-3 has partitioned it away (``ds_numel``)."""
    return int(getattr(p, "ds_numel", 0) or p.numel())


def sharding(trainer) -> str | None:
    if getattr(trainer, "is_deepspeed_enabled", False):
        ds = trainer.accelerator.state.deepspeed_plugin
        return "deepspeed" if ds is not None and ds.zero_stage == 3 else None
    if getattr(trainer, "is_fsdp_enabled", False):
        return "fsdp"
    return None


def cpu_fsdp_requested() -> bool:
    """An FSDP launch (accelerate sets ACCELERATE_USE_FSDP) of several processes without a GPU."""
    return (os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
            and int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available())


class ShardedCpuMixin:
    """For Trainer subclasses: make an FSDP launch on a CPU machine shard (FSDP2 over gloo)."""

    def create_accelerator_and_postprocess(self):
        super().create_accelerator_and_postprocess()
        if not cpu_fsdp_requested() or self.is_fsdp_enabled:
            return
        from accelerate.state import PartialState
        from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

        plugin = FullyShardedDataParallelPlugin(**(self.args.fsdp_plugin_args or {}))  # reads the FSDP_* launch env
        if plugin.fsdp_version != 2:
            raise TgsrError("FSDP on a CPU machine needs fsdp_version: 2 in the accelerate config (FSDP1 needs CUDA)")
        state = self.accelerator.state
        state.fsdp_plugin = plugin
        state.distributed_type = DistributedType.FSDP
        # AcceleratorState re-reads distributed_type from PartialState whenever it is constructed again.
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP
        if state.mixed_precision != "no":
            plugin.set_mixed_precision(state.mixed_precision)
        self.is_fsdp_enabled = True
        log.info("FSDP2 over gloo on the CPU (%d processes)", int(os.environ.get("WORLD_SIZE", "1")))


def gathered_state_dict(trainer) -> dict[str, torch.Tensor] | None:
    """The whole model's weights on the main process (CPU tensors), None on the other ranks.

    Collective: every rank must call it. ZeRO-3 consolidates 16-bit weights (the accelerate config
    needs ``zero3_save_16bit_model: true``); FSDP2 gathers the DTensors with
    ``get_model_state_dict(full_state_dict=True, cpu_offload=True)``."""
    kind = sharding(trainer)
    acc = trainer.accelerator
    if kind == "deepspeed":
        try:
            state = acc.get_state_dict(trainer.deepspeed)
        except ValueError as e:  # stage3_gather_16bit_weights_on_model_save is off
            raise TgsrError(f"cannot gather the ZeRO-3 weights for the final model folder: {e}") from None
    elif kind == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(trainer.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    else:
        raise TgsrError("internal: gathered_state_dict on a model that is not sharded")
    if not acc.is_main_process:
        return None
    return {k: v.detach().cpu() for k, v in state.items()}


_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<which>A|B)\.(?P<adapter>[^.]+)\.weight$")


def merge_lora_state_dict(state: dict[str, torch.Tensor], peft_config) -> dict[str, torch.Tensor]:
    """A PEFT model's state dict with standard LoRA (W + alpha/r * B @ A) folded in, under the base
    model's own key names. DoRA, rsLoRA and per-module ranks are refused rather than mis-merged."""
    if getattr(peft_config, "use_dora", False) or getattr(peft_config, "use_rslora", False) \
            or getattr(peft_config, "rank_pattern", None) or getattr(peft_config, "alpha_pattern", None):
        raise TgsrError("merging a sharded LoRA model supports plain LoRA only (no DoRA, rsLoRA or rank patterns)")
    scale = peft_config.lora_alpha / peft_config.r
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        m = _LORA_KEY.match(key)
        if m:
            pairs.setdefault(m["module"], {})[m["which"]] = value
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if _LORA_KEY.match(key) or ".lora_" in key:
            continue
        module = key.rsplit(".base_layer.", 1)[0] if ".base_layer." in key else None
        if module is not None and key.endswith(".base_layer.weight") and module in pairs:
            a, b = pairs[module]["A"].float(), pairs[module]["B"].float()
            value = (value.float() + scale * (b @ a)).to(value.dtype)
        name = key.replace(".base_layer.", ".")
        name = name[len("base_model.model."):] if name.startswith("base_model.model.") else name
        out[name] = value
    return out


def parameter_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(elements this process stores, elements of the whole model)."""
    local = total = 0
    for p in model.parameters():
        whole = numel(p)
        total += whole
        if hasattr(p, "ds_tensor"):  # ZeRO-3 partition
            local += int(p.ds_tensor.numel())
        elif hasattr(p, "to_local"):  # FSDP2 DTensor shard
            local += int(p.to_local().numel())
        else:
            local += whole
    return local, total


@contextlib.contextmanager
def zero3_init_disabled():
    """Temporarily hide an active ZeRO-3 config from ``from_pretrained`` (whole-model load on one rank)."""
    from transformers.integrations import deepspeed as hf_ds

    ref = getattr(hf_ds, "_hf_deepspeed_config_weak_ref", None)
    hf_ds._hf_deepspeed_config_weak_ref = None
    try:
        yield
    finally:
        hf_ds._hf_deepspeed_config_weak_ref = ref


__all__ = ["ShardedCpuMixin", "cpu_fsdp_requested", "gathered_state_dict", "merge_lora_state_dict", "numel",
           "parameter_counts", "sharding", "zero3_init_disabled"]
