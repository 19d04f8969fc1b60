"""The supervised trainer shared by Stage-1 STA and reasoning SFT.

A plain ``transformers.Trainer`` with ``SupervisedCollator``: loss on the target tokens only,
features cached per clip, checkpoints that are complete model folders, ``--resume`` from the
last ``checkpoint-N``. Options from the ``tgsr:`` section: freeze the audio encoder, LoRA
(PEFT) or full fine-tuning; gradient checkpointing is the Trainer's own flag.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from transformers import Trainer

from .common import SaveProcessingMixin
from .distributed import ShardedCpuMixin


class AudioSupervisedTrainer(ShardedCpuMixin, SaveProcessingMixin, Trainer):
    def __init__(self, audio_lm, *args, **kwargs):
        self.audio_lm = audio_lm
        super().__init__(*args, **kwargs)


def run_supervised(stage: str, trainer_args, tgsr_args, rows_fn: Callable, *, resume: bool = False,
                   callbacks=None):
    """Train on ``rows_fn(path, limit)`` rows; return (trainer, audio_lm, summary)."""
    from transformers import set_seed

    from .collate import ListDataset, SupervisedCollator
    from .common import load_audio_lm, prepare_trainable, rank_parameter_counts, resume_checkpoint, save_model_folder
    from .config import dump_config
    from .distributed import sharding
    from .features import FeatureCache

    set_seed(trainer_args.seed)
    out_dir = Path(trainer_args.output_dir)
    checkpoint = resume_checkpoint(out_dir, resume)
    trainer_args.remove_unused_columns = False  # rows carry paths and text; the collator builds tensors
    audio_lm = load_audio_lm(tgsr_args.model, tgsr_args, trainer_args)
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
    save_model_folder(trainer, audio_lm, out_dir)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    summary = {"stage": stage, "output_dir": str(out_dir), "global_step": trainer.state.global_step,
               "train_runtime_s": result.metrics.get("train_runtime"), "loss_first": losses[0] if losses else None,
               "loss_last": losses[-1] if losses else None, "train_rows": len(train.rows),
               "skipped_rows": len(train.errors), "feature_cache": cache.stats(),
               "num_processes": trainer.accelerator.num_processes, "sharding": sharding(trainer),
               "rank_parameters": counts, "weights_dtype": str(trainer.accelerator.unwrap_model(trainer.model).dtype),
               **params}
    return trainer, audio_lm, summary


__all__ = ["AudioSupervisedTrainer", "run_supervised"]
