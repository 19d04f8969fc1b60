"""Reasoning SFT on rationales.

``tgsr.target: rationale_plain`` is the paper's "+ Reasoning SFT" baseline (reasoning without
timestamps); ``rationale`` trains on grounded rationales that cite "From Xs to Ys", a warm
start for GRPO. Each target ends with the ``Final answer: (x) <choice>`` line. The prompt
style (``tgsr.prompt_style``) is ``cot`` or ``grounded`` to match the evaluation prompt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .datasets import sft_rows


def run_sft(trainer_args, tgsr_args, *, resume: bool = False, callbacks=None) -> dict[str, Any]:
    from .common import write_json
    from .supervised import run_supervised

    def rows(path, limit):
        return sft_rows(path, tgsr_args.target, tgsr_args.prompt_style, limit)

    trainer, _, summary = run_supervised("sft", trainer_args, tgsr_args, rows, resume=resume, callbacks=callbacks)
    summary["target"] = tgsr_args.target
    if trainer.accelerator.is_main_process:
        write_json(Path(trainer_args.output_dir) / "tgsr_summary.json", summary)
    return summary


__all__ = ["run_sft"]
