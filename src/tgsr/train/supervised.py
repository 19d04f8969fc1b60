"""The supervised trainer shared by Stage-1 STA and reasoning SFT.

A plain ``transformers.Trainer`` with ``SupervisedCollator``: loss on the target tokens only,
features cached per clip, checkpoints that are complete model folders, ``--resume`` from the
newest complete ``checkpoint-N`` (``tgsr.train.checkpoints``). Options from the ``tgsr:``
section: freeze the audio encoder, LoRA (PEFT) or full fine-tuning; gradient checkpointing is
the Trainer's own flag.

The LM head runs only over the target window. A row is ~750 audio tokens plus the question and a
short target ("The segment ... starts at 1.20 seconds ..."), and the models' own loss projects
every position onto the 152k vocabulary: at the 7B shape that is 0.9 TFLOP and ~0.5 GB of
float32 logits per row that the loss never reads. ``add_target_loss`` patches the model's
forward (as TRL's fused LM head does, so DDP, FSDP, DeepSpeed and PEFT wrappers call it) to
project only the positions from the batch's first target onwards; the loss is the same sum of
target-token cross-entropies divided by the Trainer's ``num_items_in_batch`` (a test checks it
against the model's own loss).
"""

from __future__ import annotations

import functools
import types
from pathlib import Path
from typing import Callable

import torch
from transformers import Trainer
from transformers.modeling_outputs import CausalLMOutput

from .checkpoints import AtomicCheckpointMixin
from .common import SaveProcessingMixin
from .distributed import ShardedCpuMixin


def add_target_loss(model) -> None:
    """``model(..., labels=labels, tgsr_target_loss=True)`` returns the loss on the label tokens with
    the LM head applied only from the first labelled column on; without the flag the forward is
    the original one (generation is unchanged)."""
    original = model.forward

    @functools.wraps(type(model).forward)
    def forward(self, *args, tgsr_target_loss=False, labels=None, num_items_in_batch=None, **kwargs):
        if not tgsr_target_loss:
            if labels is not None:
                kwargs["labels"] = labels
            if num_items_in_batch is not None:
                kwargs["num_items_in_batch"] = num_items_in_batch
            return original(*args, **kwargs)
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state  # looked up per call: FSDP/PEFT swap modules
        targets = labels[:, 1:]  # position t predicts token t + 1
        has_target = (targets != -100).any(0)
        first = int(has_target.nonzero()[0]) if bool(has_target.any()) else targets.shape[1] - 1
        head = self.get_output_embeddings()
        logits = head(hidden[:, first:-1].to(head.weight.device)).float()
        window = targets[:, first:].to(logits.device)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), window.reshape(-1),
                                                 ignore_index=-100, reduction="sum")
        count = num_items_in_batch if num_items_in_batch is not None else (window != -100).sum().clamp(min=1)
        return CausalLMOutput(loss=loss / count)

    model.forward = types.MethodType(forward, model)


class AudioSupervisedTrainer(ShardedCpuMixin, SaveProcessingMixin, AtomicCheckpointMixin, Trainer):
    def __init__(self, audio_lm, *args, **kwargs):
        self.audio_lm = audio_lm
        super().__init__(*args, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # The Trainer's own path (num_items_in_batch, token averaging across devices), with the target-window head.
        return super().compute_loss(model, {**inputs, "tgsr_target_loss": True}, return_outputs=return_outputs,
                                    num_items_in_batch=num_items_in_batch)


def run_supervised(stage: str, trainer_args, tgsr_args, rows_fn: Callable, *, resume: bool = False,
                   callbacks=None):
    """Train on ``rows_fn(path, limit)`` rows; return (trainer, audio_lm, summary)."""
    from transformers import set_seed

    from .checkpoints import resume_checkpoint
    from .collate import ListDataset, SupervisedCollator
    from .common import load_audio_lm, prepare_trainable, rank_parameter_counts, save_model_folder
    from .config import dump_config
    from .distributed import sharding
    from .features import FeatureCache

    set_seed(trainer_args.seed)
    out_dir = Path(trainer_args.output_dir)
    checkpoint = resume_checkpoint(out_dir, resume, needs_optimizer=not trainer_args.save_only_model)
    trainer_args.remove_unused_columns = False  # rows carry paths and text; the collator builds tensors
    audio_lm = load_audio_lm(tgsr_args.model, tgsr_args, trainer_args)
    add_target_loss(audio_lm.model)  # before PEFT wraps it, which then calls the patched forward
    model, _, params = prepare_trainable(audio_lm.model, tgsr_args, trainer_args, wrap_lora=True)
    train = rows_fn(tgsr_args.train_file, tgsr_args.max_train_samples)
    print(train.summary())
    eval_set = None
    if tgsr_args.eval_file and trainer_args.eval_strategy != "no":
        eval_set = rows_fn(tgsr_args.eval_file, tgsr_args.max_eval_samples)
        print(eval_set.summary())
    cache = FeatureCache(audio_lm.featurize_one, enabled=tgsr_args.feature_cache,
                         max_clips=tgsr_args.feature_cache_size)
    trainer = AudioSupervisedTrainer(
        audio_lm, model=model, args=trainer_args, data_collator=SupervisedCollator(audio_lm, cache),
        train_dataset=ListDataset(train.rows), eval_dataset=ListDataset(eval_set.rows) if eval_set else None,
        processing_class=audio_lm.tokenizer, callbacks=callbacks)
    if trainer.accelerator.is_main_process:
        dump_config(trainer_args, tgsr_args, out_dir / "tgsr_config.yaml")
    result = trainer.train(resume_from_checkpoint=checkpoint)
    counts = rank_parameter_counts(trainer)
    saved_digest = save_model_folder(trainer, audio_lm, out_dir)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    summary = {"stage": stage, "output_dir": str(out_dir), "global_step": trainer.state.global_step,
               "train_runtime_s": result.metrics.get("train_runtime"), "loss_first": losses[0] if losses else None,
               "loss_last": losses[-1] if losses else None, "train_rows": len(train.rows),
               "skipped_rows": len(train.errors), "feature_cache": cache.stats(),
               "num_processes": trainer.accelerator.num_processes, "sharding": sharding(trainer),
               "rank_parameters": counts, "saved_weights_digest": saved_digest,
               "weights_dtype": str(trainer.accelerator.unwrap_model(trainer.model).dtype), **params}
    return trainer, audio_lm, summary


__all__ = ["AudioSupervisedTrainer", "add_target_loss", "run_supervised"]
