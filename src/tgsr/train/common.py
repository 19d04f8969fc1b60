"""What every training stage does the same way: load the model, choose what trains, save.

- ``load_audio_lm``: the family adapter (``tgsr.models.load_model``, folder or hub id) in the
  dtype of the weights (``compute_dtype``: float32 master weights unless DeepSpeed or LoRA
  keeps them elsewhere).
- ``prepare_trainable``: freeze the vision tower (never used for speech), optionally the
  audio encoder; wrap in LoRA (PEFT) or leave everything trainable; gradient checkpointing.
- ``save_processing``: tokenizer, feature extractor and processor next to the weights, so a
  checkpoint folder is a complete model folder that ``load_model`` opens.

Checkpoints (atomic saves, ``--resume`` from the newest complete one) are ``tgsr.train.checkpoints``.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import torch

from ..errors import TgsrError
from .distributed import numel

log = logging.getLogger(__name__)


def deepspeed_enabled(trainer_args) -> bool:
    """DeepSpeed is on for this run (a ``deepspeed`` config, or ``accelerate launch`` with a DeepSpeed config)."""
    import os

    return getattr(trainer_args, "deepspeed_plugin", None) is not None or \
        os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"


def compute_dtype(trainer_args, tgsr_args) -> torch.dtype:
    """The dtype the weights are loaded in.

    With ``tgsr.dtype: auto`` and bf16/fp16 on, the trainable weights stay float32 unless
    DeepSpeed keeps float32 master weights itself: pure-bf16 AdamW at lr 5e-6 (GRPO) or 2e-5 (STA)
    rounds most updates away. So bf16 weights go with DeepSpeed, or with LoRA (the base is
    frozen and PEFT keeps the adapters in float32); full fine-tuning on one GPU, DDP or FSDP2
    loads float32 and computes under bf16 autocast (FSDP2: its mixed-precision policy).
    """
    if tgsr_args.dtype not in ("auto", "float32", "bfloat16", "float16"):
        raise TgsrError(f"tgsr.dtype must be auto, float32, bfloat16 or float16, got {tgsr_args.dtype!r}")
    half = torch.bfloat16 if getattr(trainer_args, "bf16", False) else (
        torch.float16 if getattr(trainer_args, "fp16", False) else None)
    master_elsewhere = deepspeed_enabled(trainer_args) or bool(tgsr_args.lora)
    if tgsr_args.dtype != "auto":
        dtype = getattr(torch, tgsr_args.dtype)
        if dtype != torch.float32 and not master_elsewhere:
            log.warning("tgsr.dtype=%s with full fine-tuning and no DeepSpeed: the optimizer updates %s weights "
                        "directly, and small updates (lr %g) round away. Use tgsr.dtype: auto (float32 master "
                        "weights under %s autocast), LoRA, or DeepSpeed.", tgsr_args.dtype, tgsr_args.dtype,
                        getattr(trainer_args, "learning_rate", float("nan")), tgsr_args.dtype)
        return dtype
    if half is None:
        return torch.float32
    if master_elsewhere:
        return half
    log.info("full fine-tuning with %s and no DeepSpeed: float32 master weights, %s autocast",
             str(half).split(".")[-1], str(half).split(".")[-1])
    return torch.float32


def load_audio_lm(path: str, tgsr_args, trainer_args=None):
    """The model adapter for a training stage; ``path`` is a folder or a hub id."""
    from ..models import load_model

    dtype = compute_dtype(trainer_args, tgsr_args) if trainer_args is not None else torch.float32
    return load_model(path, family=tgsr_args.family, dtype=dtype, attn_implementation=tgsr_args.attn_implementation)


def _modules_named(model: torch.nn.Module, names: tuple[str, ...]) -> list[tuple[str, torch.nn.Module]]:
    out = []
    for name, module in model.named_modules():
        last = name.rsplit(".", 1)[-1]
        if last in names and not any(name.startswith(p + ".") for p, _ in out):
            out.append((name, module))
    return out


def audio_encoder_modules(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    return _modules_named(model, ("audio_tower",))


def freeze(modules: list[tuple[str, torch.nn.Module]]) -> int:
    n = 0
    for _, m in modules:
        for p in m.parameters():
            if p.requires_grad:
                p.requires_grad_(False)
                n += numel(p)
    return n


def prepare_trainable(model: torch.nn.Module, tgsr_args, trainer_args=None, *, wrap_lora: bool = True):
    """Set requires_grad per the config. Returns (model, peft_config or None, summary dict).

    With ``wrap_lora=False`` the LoRA config is returned unapplied (TRL's GRPOTrainer wraps
    the model itself and then uses the adapter-disabled model as the reference).
    """
    vision = _modules_named(model, ("visual", "vision_tower"))
    frozen_vision = freeze(vision)  # speech training never feeds images: keep DDP free of unused grads
    frozen_audio = 0
    if tgsr_args.freeze_audio_encoder:
        enc = audio_encoder_modules(model)
        if not enc:
            raise TgsrError("tgsr.freeze_audio_encoder is set but the model has no `audio_tower` module")
        frozen_audio = freeze(enc)
    peft_config = None
    if tgsr_args.lora:
        from peft import LoraConfig

        targets = tgsr_args.lora_target_modules
        if not any(re.fullmatch(targets, n) for n, _ in model.named_modules()):
            raise TgsrError(f"tgsr.lora_target_modules {targets!r} matches no module of {type(model).__name__}")
        peft_config = LoraConfig(r=tgsr_args.lora_r, lora_alpha=tgsr_args.lora_alpha,
                                 lora_dropout=tgsr_args.lora_dropout, target_modules=targets,
                                 bias="none", task_type="CAUSAL_LM")
        if wrap_lora:
            from peft import get_peft_model

            model = get_peft_model(model, peft_config)
    if trainer_args is not None and (getattr(trainer_args, "activation_checkpointing", False)
                                     or getattr(trainer_args, "gradient_checkpointing", False)):
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()  # checkpointing with frozen embeddings needs grads on the inputs
    trainable = sum(numel(p) for p in model.parameters() if p.requires_grad)
    total = sum(numel(p) for p in model.parameters())
    summary = {"trainable_parameters": trainable, "total_parameters": total,
               "frozen_vision_parameters": frozen_vision, "frozen_audio_parameters": frozen_audio,
               "lora": bool(tgsr_args.lora)}
    return model, peft_config, summary


def save_processing(audio_lm, out_dir: str | Path) -> None:
    """Everything besides the weights that ``load_model`` needs to reopen the folder: tokenizer,
    feature extractor, processor, and the chat template the model was trained with (the one
    ``load_model`` chose by probing), so the folder renders exactly as training did."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    audio_lm.tokenizer.save_pretrained(out)
    if audio_lm.feature_extractor is not None:
        audio_lm.feature_extractor.save_pretrained(out)
    if audio_lm.processor is not None:
        audio_lm.processor.save_pretrained(out)
    (out / "chat_template.jinja").write_text(audio_lm.chat_template, encoding="utf-8")
    src = Path(audio_lm.name_or_path or "")
    extra = src / "tgsr_tiny.json"
    if extra.exists() and not (out / extra.name).exists():
        (out / extra.name).write_bytes(extra.read_bytes())


class SaveProcessingMixin:
    """For Trainer subclasses with an ``audio_lm``: every checkpoint is a complete model folder
    (weights in safetensors plus tokenizer, feature extractor and processor)."""

    def _save(self, output_dir: str | None = None, state_dict=None):
        super()._save(output_dir, state_dict=state_dict)
        if self.args.should_save:
            save_processing(self.audio_lm, output_dir or self.args.output_dir)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        """Resume through ``from_pretrained``: these models save their weights under the original
        checkpoint names (``audio_tower.*``, ``model.layers.*``), which the Trainer's plain
        ``load_state_dict`` does not map back, so it would resume from untouched weights."""
        model = model if model is not None else self.model
        target = self.accelerator.unwrap_model(model)
        single_file = (Path(resume_from_checkpoint) / "model.safetensors").is_file()
        sharded = (Path(resume_from_checkpoint) / "model.safetensors.index.json").is_file()
        if hasattr(target, "peft_config") or not (single_file or sharded):
            return super()._load_from_checkpoint(resume_from_checkpoint, model=model)
        fresh = type(target).from_pretrained(resume_from_checkpoint, dtype=target.dtype, device_map=None)
        result = target.load_state_dict(fresh.state_dict(), strict=False)
        bad = [k for k in result.missing_keys if not k.endswith("rotary_emb.inv_freq")] + list(result.unexpected_keys)
        if bad:
            raise TgsrError(f"{resume_from_checkpoint}: checkpoint does not match the model: {bad[:5]}")
        del fresh


def _mark_stored_dtype(config_file: Path, dtype: torch.dtype) -> None:
    """config.json says what the tensors are (save_pretrained writes the float32 masters' dtype)."""
    name = str(dtype).removeprefix("torch.")

    def mark(node):
        if isinstance(node, dict):
            for key in node:
                if key in ("dtype", "torch_dtype") and isinstance(node[key], str):
                    node[key] = name
                else:
                    mark(node[key])

    config = json.loads(config_file.read_text(encoding="utf-8"))
    mark(config)
    config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def save_model_folder(trainer, audio_lm, out_dir: str | Path) -> str | None:
    """Final weights (LoRA merged in) plus processing files: a folder ``load_model`` opens.

    Called on every rank. Sharded weights (ZeRO-3, FSDP) are gathered onto the main process
    first, since ``save_pretrained`` on a partitioned model writes empty tensors. Afterwards
    ``audio_lm.model`` is the trained model, ready for evaluation, unless it is sharded (then
    ``audio_lm.model`` stays the sharded model: reload the folder to evaluate it on one device).
    The weights are stored in the precision training computed in (bf16/fp16 when on, as the hub
    checkpoints are): float32 master weights are for the optimizer, and a float32 7B folder would
    take 36 GB. ``checkpoint-N`` folders keep the masters, so a resumed run continues exactly.
    Returns the digest of the weights written (``state_digest``) on the main process, else None.
    """
    from .distributed import gathered_state_dict, merge_lora_state_dict, sharding

    args = trainer.args
    store = torch.bfloat16 if args.bf16 else torch.float16 if args.fp16 else None

    out = Path(out_dir)
    model = trainer.accelerator.unwrap_model(trainer.model)
    sharded = sharding(trainer)
    state = gathered_state_dict(trainer) if sharded else None
    if sharded is None:
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
        audio_lm.model = model
    if trainer.accelerator.is_main_process:
        base = model
        if hasattr(model, "get_base_model"):  # PEFT, sharded: fold the adapters into the gathered weights
            state = merge_lora_state_dict(state, model.peft_config["default"])
            base = model.get_base_model()
        if state is None and store is not None:
            state = base.state_dict()
        if store is not None:
            state = {k: v.to(store) if v.is_floating_point() else v for k, v in state.items()}
        base.save_pretrained(out, state_dict=state)
        if store is not None:
            _mark_stored_dtype(out / "config.json", store)
        save_processing(audio_lm, out)
        digest = state_digest(state if state is not None else base.state_dict())
    else:
        digest = None
    trainer.accelerator.wait_for_everyone()
    return digest


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """A short hash of a state dict (names and float32 values); FSDP2 DTensors hash this rank's shard."""
    import hashlib

    h = hashlib.sha256()
    for name, p in sorted(state.items()):
        h.update(name.encode())
        p = p.to_local() if hasattr(p, "to_local") else p
        h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def weights_digest(model: torch.nn.Module) -> str:
    """A short hash of every parameter: equal on all ranks when data-parallel training is in sync."""
    return state_digest(model.state_dict())


def rank_digests(trainer) -> list[str]:
    """The weights digest of every process (gathered), in rank order (of its shard, when sharded)."""
    from accelerate.utils import gather_object

    return gather_object([weights_digest(trainer.accelerator.unwrap_model(trainer.model))])


def rank_parameter_counts(trainer) -> list[list[int]]:
    """[local, total] parameter elements of every process, in rank order: local < total shows sharding."""
    from accelerate.utils import gather_object

    from .distributed import parameter_counts

    return gather_object([list(parameter_counts(trainer.model))])


def write_json(path: str | Path, data: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


__all__ = ["SaveProcessingMixin", "audio_encoder_modules", "compute_dtype", "deepspeed_enabled", "load_audio_lm",
           "prepare_trainable", "rank_digests", "rank_parameter_counts", "save_model_folder",
           "save_processing", "state_digest", "weights_digest", "write_json"]
