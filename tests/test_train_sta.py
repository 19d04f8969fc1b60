"""Stage-1 STA and the supervised trainer: target-only labels, learning, checkpoints, resume."""

from __future__ import annotations

import json

import pytest
import torch

from tgsr.train.config import load_config


def _sta_config(model_dir, corpus, out_dir, **extra):
    base = {"tgsr.model": str(model_dir), "tgsr.train_file": str(corpus / "train" / "sta.jsonl"),
            "output_dir": str(out_dir), "per_device_train_batch_size": 8, "learning_rate": 3e-3,
            "warmup_steps": 5, "lr_scheduler_type": "cosine", "adam_beta2": 0.98, "logging_steps": 1,
            "save_strategy": "no", "seed": 0, "disable_tqdm": True}
    base.update(extra)
    return load_config("sta", None, [], extra=base)


def test_collator_labels_only_the_target(tiny_omni_dir, toy_corpus):
    from tgsr.models import load_model
    from tgsr.train.collate import SupervisedCollator
    from tgsr.train.datasets import sta_rows

    lm = load_model(tiny_omni_dir)
    rows = sta_rows(str(toy_corpus / "train" / "sta.jsonl")).rows[:3]
    batch = SupervisedCollator(lm)(rows)
    for i, r in enumerate(rows):
        labelled = batch["labels"][i][batch["labels"][i] != -100].tolist()
        assert lm.tokenizer.decode(labelled[:-1]) == r["target"]
        assert labelled[-1] == lm.im_end_id  # the model learns to stop
    assert batch["input_features"].shape[0] == 3  # one clip per row, in row order


def test_sta_loss_falls_and_heldout_iou_beats_untrained(tiny_omni_dir, toy_corpus, tmp_path):
    from tgsr.models import load_model
    from tgsr.train.datasets import sta_rows
    from tgsr.train.sta import evaluate_sta, run_sta

    held = sta_rows(str(toy_corpus / "test" / "sta.jsonl")).rows
    untrained = evaluate_sta(load_model(tiny_omni_dir), held, max_new_tokens=40)
    args, tg = _sta_config(tiny_omni_dir, toy_corpus, tmp_path / "sta", max_steps=100,
                           **{"tgsr.eval_file": str(toy_corpus / "test" / "sta.jsonl"), "tgsr.max_new_tokens": 40})
    summary = run_sta(args, tg)
    assert summary["loss_last"] < 0.25 * summary["loss_first"]
    assert summary["heldout_n"] == len(held)  # every held-out item is in the denominator
    assert summary["heldout_mean_iou"] > untrained["mean_iou"]
    assert summary["feature_cache"]["misses"] == 24  # each training clip featurised once
    report = json.loads((tmp_path / "sta" / "sta_eval.json").read_text())
    assert {"mean_iou", "iou_at_0.7", "no_span", "items", "per_item"} <= set(report)
    assert report["items"] == len(report["per_item"]) == len(held) and 0 <= report["mean_iou"] <= 1
    # the output folder is a complete model folder (safetensors) that load_model reopens
    assert (tmp_path / "sta" / "model.safetensors").exists()
    reopened = load_model(tmp_path / "sta")
    assert reopened.family == "qwen2.5-omni"


class _Killed(Exception):
    pass


def test_resume_after_kill_continues_exactly(tiny_omni_dir, toy_corpus, tmp_path):
    from transformers import TrainerCallback

    from tgsr.train.sta import run_sta

    common = dict(max_steps=6, save_strategy="steps", save_steps=3, learning_rate=2e-3)
    args, tg = _sta_config(tiny_omni_dir, toy_corpus, tmp_path / "full", **common)
    run_sta(args, tg)
    full = {h["step"]: h["loss"] for h in json.loads(
        (tmp_path / "full" / "checkpoint-6" / "trainer_state.json").read_text())["log_history"] if "loss" in h}

    class KillAfterSave(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            if state.global_step == 3:
                raise _Killed()

    args, tg = _sta_config(tiny_omni_dir, toy_corpus, tmp_path / "killed", **common)
    with pytest.raises(_Killed):
        run_sta(args, tg, callbacks=[KillAfterSave()])
    assert (tmp_path / "killed" / "checkpoint-3" / "model.safetensors").exists()
    args, tg = _sta_config(tiny_omni_dir, toy_corpus, tmp_path / "killed", **common)
    run_sta(args, tg, resume=True)
    resumed = {h["step"]: h["loss"] for h in json.loads(
        (tmp_path / "killed" / "checkpoint-6" / "trainer_state.json").read_text())["log_history"] if "loss" in h}
    assert resumed[4] == pytest.approx(full[4], abs=1e-6)
    assert resumed[6] == pytest.approx(full[6], abs=1e-6)


def test_resume_without_checkpoint_is_a_clear_error(tiny_omni_dir, toy_corpus, tmp_path):
    from tgsr.errors import TgsrError
    from tgsr.train.sta import run_sta

    args, tg = _sta_config(tiny_omni_dir, toy_corpus, tmp_path / "nothing", max_steps=1)
    with pytest.raises(TgsrError, match="no checkpoint"):
        run_sta(args, tg, resume=True)


def test_freeze_audio_encoder_and_lora(tiny_omni_dir, toy_corpus, tmp_path):
    from tgsr.train.sta import run_sta

    args, tg = _sta_config(tiny_omni_dir, toy_corpus, tmp_path / "lora", max_steps=2,
                           **{"tgsr.freeze_audio_encoder": True, "tgsr.lora": True, "tgsr.lora_r": 4})
    summary = run_sta(args, tg)
    assert summary["frozen_audio_parameters"] > 0
    assert 0 < summary["trainable_parameters"] < 0.5 * summary["total_parameters"]
    from tgsr.models import load_model

    merged = load_model(tmp_path / "lora")  # LoRA merged into a plain model folder
    assert not any("lora" in n for n, _ in merged.model.named_parameters())
    base = load_model(tiny_omni_dir)
    enc = dict(base.model.named_parameters())
    changed = [n for n, p in merged.model.named_parameters() if not torch.equal(p, enc[n])]
    assert changed and not any("audio_tower" in n for n in changed)
