"""Training: Stage-1 STA, reasoning SFT, Stage-2 GRPO with R_answer + R_tg.

- ``tgsr.train.config``: recipe YAML (trainer dataclass fields + a ``tgsr:`` section) and overrides.
- ``tgsr.train.sta`` / ``tgsr.train.sft``: a transformers ``Trainer`` with ``collate.SupervisedCollator``.
- ``tgsr.train.grpo``: ``AudioGRPOTrainer``, TRL's GRPOTrainer with the audio in every forward pass.
- ``tgsr.train.features``: per-clip feature cache.

Modules import torch/transformers/TRL; import them where they are used.
"""

from .config import STAGES  # light: the config module imports no torch


def run(stage: str, trainer_args, tgsr_args, *, resume: bool = False, callbacks=None) -> dict:
    """Run one stage with parsed configs (see ``tgsr.train.config.load_config``).

    The output folder is locked for the run (``tgsr.runlog.FolderLock``; the main process of a
    multi-process launch holds it for all ranks): a second run into the same folder is refused.
    """
    import os

    from ..runlog import FolderLock

    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
    with FolderLock(trainer_args.output_dir, enabled=int(os.environ.get("RANK", "0")) == 0):
        return _run_stage(stage, trainer_args, tgsr_args, resume=resume, callbacks=callbacks)


def _run_stage(stage: str, trainer_args, tgsr_args, *, resume: bool, callbacks) -> dict:
    if stage == "sta":
        from .sta import run_sta

        return run_sta(trainer_args, tgsr_args, resume=resume, callbacks=callbacks)
    if stage == "sft":
        from .sft import run_sft

        return run_sft(trainer_args, tgsr_args, resume=resume, callbacks=callbacks)
    if stage == "grpo":
        from .grpo import run_grpo

        return run_grpo(trainer_args, tgsr_args, resume=resume, callbacks=callbacks)
    raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")


__all__ = ["STAGES", "run"]
