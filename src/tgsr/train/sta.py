"""Stage 1: Supervised Timestamp Alignment (STA).

Train on "What is the timestamp of the following segment? <phrase>" -> "The segment <phrase>
starts at X seconds and ends at Y seconds." (``tgsr.prompts``), then report timestamp IoU and
the IoU >= 0.7 rate on a held-out STA split. The trained folder is pi_0, the GRPO reference.

``evaluate_sta`` decodes greedily and scores with ``tgsr.eval.metrics.score_spans``, the scorer
``tgsr eval`` uses: the first valid citation counts; an output without one scores IoU 0 and is
counted in ``no_span``, so the mean is always over every held-out item.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..eval.metrics import first_cited_span, score_spans
from .datasets import clean_conversation, sta_rows


@torch.no_grad()
def evaluate_sta(audio_lm, rows: list[dict[str, Any]], *, batch_size: int = 16, max_new_tokens: int = 64,
                 cache=None) -> dict[str, Any]:
    """Greedy decoding on STA rows, scored by ``tgsr.eval.metrics.score_spans``, with the outputs per item."""
    from .features import FeatureCache

    cache = cache if cache is not None else FeatureCache(audio_lm.featurize_one)
    was_training = audio_lm.model.training
    audio_lm.model.eval()
    outputs, refs = [], []
    try:
        for i in range(0, len(rows), batch_size):
            chunk = rows[i:i + batch_size]
            feats = [cache.get(r["audio"]) for r in chunk]
            inputs = audio_lm.build_inputs(feats, [clean_conversation(r["prompt"]) for r in chunk])
            gen = audio_lm.generate(inputs, max_new_tokens=max_new_tokens, do_sample=False)
            outputs += gen.texts
            refs += [(r["start"], r["end"]) for r in chunk]
    finally:
        audio_lm.model.train(was_training)
    report = score_spans(outputs, refs)
    report["per_item"] = [{"id": r["id"], "iou": v, "pred": first_cited_span(text), "gold": list(ref), "output": text}
                       for r, text, ref, v in zip(rows, outputs, refs, report.pop("ious"))]
    return report


def _reload_for_eval(trainer, tgsr_args):
    """The saved pi_0 folder, whole, on the main process's device (call under ``zero3_init_disabled``)."""
    from ..models import load_model

    args = trainer.args
    dtype = torch.bfloat16 if args.bf16 else torch.float16 if args.fp16 else torch.float32  # inference only
    lm = load_model(args.output_dir, family=tgsr_args.family, dtype=dtype,
                    attn_implementation=tgsr_args.attn_implementation)
    lm.model.to(trainer.accelerator.device)
    return lm


def run_sta(trainer_args, tgsr_args, *, resume: bool = False, callbacks=None) -> dict[str, Any]:
    """``tgsr train sta``: train, save pi_0 to ``output_dir``, report held-out IoU."""
    from .common import write_json
    from .distributed import zero3_init_disabled
    from .supervised import run_supervised

    # Read the held-out split first: a wrong path must fail before hours of training, not after.
    held = sta_rows(tgsr_args.eval_file, tgsr_args.max_eval_samples) if tgsr_args.eval_file else None
    trainer, audio_lm, summary = run_supervised(
        "sta", trainer_args, tgsr_args, lambda path, limit: sta_rows(path, limit), resume=resume,
        callbacks=callbacks)
    if held is not None and trainer.accelerator.is_main_process:
        if summary["sharding"] is None:
            report = evaluate_sta(audio_lm, held.rows, batch_size=trainer_args.per_device_eval_batch_size,
                                  max_new_tokens=tgsr_args.max_new_tokens)
            report["evaluated"] = "in-memory model"
        else:
            # A sharded model cannot generate on one rank alone; the saved folder is reloaded whole on
            # this process (which also proves it loads). generate() must not sync with the other
            # ranks either, as it would under an active ZeRO-3 config.
            with zero3_init_disabled():
                eval_lm = _reload_for_eval(trainer, tgsr_args)
                report = evaluate_sta(eval_lm, held.rows, batch_size=trainer_args.per_device_eval_batch_size,
                                      max_new_tokens=tgsr_args.max_new_tokens)
            report["evaluated"] = "saved folder, reloaded on one device"
            del eval_lm
        write_json(Path(trainer_args.output_dir) / "sta_eval.json", report)
        summary.update({"heldout_n": report["items"], "heldout_mean_iou": report["mean_iou"],
                        "heldout_iou_at_0.7": report["iou_at_0.7"], "heldout_no_span": report["no_span"],
                        "heldout_skipped": len(held.errors)})
    if trainer.accelerator.is_main_process:
        write_json(Path(trainer_args.output_dir) / "tgsr_summary.json", summary)
    return summary


__all__ = ["run_sta", "evaluate_sta"]
