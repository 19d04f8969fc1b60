"""Checkpoints: verified before resuming, the newest complete one used, saves that cannot be half-written."""

from __future__ import annotations

import json
import re

import pytest
import torch

from tgsr.errors import TgsrError
from tgsr.train.checkpoints import STAGING, checkpoint_problem, resume_checkpoint
from tgsr.train.config import load_config


def _fake_checkpoint(folder, step: int):
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    save_file({"w": torch.arange(64, dtype=torch.float32)}, str(folder / "model.safetensors"))
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": []}))
    torch.save({"state": {}, "param_groups": []}, folder / "optimizer.pt")
    torch.save({"last_epoch": step}, folder / "scheduler.pt")
    return folder


def _truncate(path, keep: int | None = None):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 if keep is None else keep])


def test_a_complete_checkpoint_has_no_problem(tmp_path):
    assert checkpoint_problem(_fake_checkpoint(tmp_path / "checkpoint-2", 2)) is None


@pytest.mark.parametrize("damage, message", [
    (lambda f: _truncate(f / "model.safetensors"), "model.safetensors: .*incomplete metadata"),
    (lambda f: _truncate(f / "model.safetensors", 4), "model.safetensors: .*header too small"),
    (lambda f: (f / "model.safetensors").unlink(), "no weights"),
    (lambda f: (f / "trainer_state.json").write_text('{"global_step": 2, "log_hi'), "trainer_state.json is unreadable"),
    (lambda f: (f / "trainer_state.json").unlink(), "trainer_state.json is missing"),
    (lambda f: (f / "optimizer.pt").unlink(), "optimizer.pt is missing"),
    (lambda f: _truncate(f / "optimizer.pt"), "optimizer.pt: incomplete"),
    (lambda f: _truncate(f / "scheduler.pt"), "scheduler.pt: incomplete"),
    (lambda f: (f / "scheduler.pt").unlink(), "scheduler.pt is missing"),
])
def test_each_kind_of_damage_is_named(tmp_path, damage, message):
    folder = _fake_checkpoint(tmp_path / "checkpoint-2", 2)
    damage(folder)
    problem = checkpoint_problem(folder)
    assert problem is not None and re.search(message, problem), problem


def test_sharded_index_with_a_missing_shard(tmp_path):
    folder = _fake_checkpoint(tmp_path / "checkpoint-2", 2)
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "w": "model-00001-of-00002.safetensors", "v": "model-00002-of-00002.safetensors"}}))
    assert "names missing shards: model-00002-of-00002.safetensors" in checkpoint_problem(folder)


def _framework_checkpoint(folder, kind: str):
    """A checkpoint as FSDP (full or sharded state) or DeepSpeed lays it out."""
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 2}))
    if kind == "fsdp-full":
        torch.save({"w": torch.zeros(4)}, folder / "pytorch_model_fsdp.bin")
        torch.save({"state": {}}, folder / "optimizer.bin")
        torch.save({"last_epoch": 2}, folder / "scheduler.pt")
    elif kind == "fsdp-sharded":
        for name in ("pytorch_model_fsdp_0", "optimizer_0"):
            (folder / name).mkdir()
            (folder / name / "__0_0.distcp").write_bytes(b"shard")
            (folder / name / ".metadata").write_bytes(b"meta")
        torch.save({"last_epoch": 2}, folder / "scheduler.pt")
    else:  # deepspeed: model, optimizer and scheduler inside global_step2/, then 'latest'
        (folder / "global_step2").mkdir()
        (folder / "global_step2" / "mp_rank_00_model_states.pt").write_bytes(b"x")
        (folder / "latest").write_text("global_step2")
    return folder


@pytest.mark.parametrize("kind, damage, message", [
    ("fsdp-full", None, None),
    ("fsdp-full", lambda f: _truncate(f / "optimizer.bin"), "optimizer.bin: incomplete"),
    ("fsdp-full", lambda f: _truncate(f / "pytorch_model_fsdp.bin"), "pytorch_model_fsdp.bin: incomplete"),
    ("fsdp-sharded", None, None),
    ("fsdp-sharded", lambda f: (f / "optimizer_0" / ".metadata").unlink(), "optimizer_0: sharded state without"),
    ("deepspeed", None, None),
    ("deepspeed", lambda f: (f / "latest").unlink(), "global_step2: DeepSpeed state without its 'latest'"),
])
def test_fsdp_and_deepspeed_layouts(tmp_path, kind, damage, message):
    folder = _framework_checkpoint(tmp_path / "checkpoint-2", kind)
    if damage is not None:
        damage(folder)
    problem = checkpoint_problem(folder)
    assert (problem is None) if message is None else (problem is not None and message in problem), problem


def test_model_only_checkpoints_need_no_optimizer(tmp_path):
    folder = _fake_checkpoint(tmp_path / "checkpoint-2", 2)
    (folder / "optimizer.pt").unlink()
    (folder / "scheduler.pt").unlink()
    assert checkpoint_problem(folder, needs_optimizer=False) is None


def test_resume_falls_back_to_the_newest_complete_checkpoint_and_says_so(tmp_path):
    for step in (3, 6, 9):
        _fake_checkpoint(tmp_path / f"checkpoint-{step}", step)
    _truncate(tmp_path / "checkpoint-9" / "model.safetensors")
    (tmp_path / "checkpoint-6" / "optimizer.pt").unlink()
    said = []
    assert resume_checkpoint(tmp_path, True, echo=said.append) == str(tmp_path / "checkpoint-3")
    assert len(said) == 1
    assert "checkpoint-9 (model.safetensors" in said[0] and "checkpoint-6 (optimizer.pt is missing)" in said[0]
    assert "resuming from checkpoint-3" in said[0]


def test_resume_with_no_complete_checkpoint_lists_them(tmp_path):
    _fake_checkpoint(tmp_path / "checkpoint-4", 4)
    _truncate(tmp_path / "checkpoint-4" / "model.safetensors")
    with pytest.raises(TgsrError, match=r"no complete checkpoint .*checkpoint-4 \(model.safetensors"):
        resume_checkpoint(tmp_path, True)
    assert resume_checkpoint(tmp_path, False) is None


def test_resume_mentions_an_interrupted_save(tmp_path):
    _fake_checkpoint(tmp_path / "checkpoint-2", 2)
    (tmp_path / STAGING / "checkpoint-4").mkdir(parents=True)
    said = []
    assert resume_checkpoint(tmp_path, True, echo=said.append).endswith("checkpoint-2")
    assert "interrupted save (checkpoint-4)" in said[0]


def test_every_trainer_saves_atomically():
    from tgsr.train.checkpoints import AtomicCheckpointMixin
    from tgsr.train.grpo import AudioGRPOTrainer
    from tgsr.train.supervised import AudioSupervisedTrainer

    for cls in (AudioGRPOTrainer, AudioSupervisedTrainer):
        assert cls._save_checkpoint is AtomicCheckpointMixin._save_checkpoint


# ---------------------------------------------------------------- the real trainer (tiny model)

def _sta(model_dir, corpus, out_dir):
    return load_config("sta", None, [], extra={
        "tgsr.model": str(model_dir), "tgsr.train_file": str(corpus / "train" / "sta.jsonl"),
        "output_dir": str(out_dir), "per_device_train_batch_size": 8, "learning_rate": 2e-3, "logging_steps": 1,
        "max_steps": 6, "save_strategy": "steps", "save_steps": 3, "seed": 0, "disable_tqdm": True})


def _losses(folder):
    state = json.loads((folder / "trainer_state.json").read_text())
    return {h["step"]: h["loss"] for h in state["log_history"] if "loss" in h}


def test_resume_skips_a_half_written_newest_checkpoint(tiny_omni_dir, toy_corpus, tmp_path, capsys):
    """The issue's case: checkpoint-6 truncated; --resume continued from checkpoint-3, not a SafetensorError."""
    from tgsr.train.sta import run_sta

    run_sta(*_sta(tiny_omni_dir, toy_corpus, tmp_path / "run"))
    full = _losses(tmp_path / "run" / "checkpoint-6")
    _truncate(tmp_path / "run" / "checkpoint-6" / "model.safetensors")
    capsys.readouterr()
    run_sta(*_sta(tiny_omni_dir, toy_corpus, tmp_path / "run"), resume=True)
    out = capsys.readouterr().out
    assert "skipping incomplete checkpoint-6 (model.safetensors" in out and "resuming from checkpoint-3" in out
    assert checkpoint_problem(tmp_path / "run" / "checkpoint-6") is None  # saved again, whole
    resumed = _losses(tmp_path / "run" / "checkpoint-6")
    assert resumed[4] == pytest.approx(full[4], abs=1e-6) and resumed[6] == pytest.approx(full[6], abs=1e-6)


class _DiskFull(OSError):
    pass


def test_a_save_that_dies_midway_leaves_no_checkpoint_folder(tiny_omni_dir, toy_corpus, tmp_path, monkeypatch):
    """Weights written, then the optimizer save fails: checkpoint-6 must not exist (only the staging folder)."""
    from transformers import Trainer

    from tgsr.train.sta import run_sta

    original = Trainer._save_optimizer_and_scheduler

    def failing(self, output_dir):
        if output_dir.endswith("checkpoint-6"):
            raise _DiskFull("no space left on device")
        return original(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", failing)
    with pytest.raises(_DiskFull):
        run_sta(*_sta(tiny_omni_dir, toy_corpus, tmp_path / "run"))
    assert not (tmp_path / "run" / "checkpoint-6").exists()
    assert (tmp_path / "run" / STAGING / "checkpoint-6" / "model.safetensors").exists()
    assert checkpoint_problem(tmp_path / "run" / "checkpoint-3") is None
    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", original)
    summary = run_sta(*_sta(tiny_omni_dir, toy_corpus, tmp_path / "run"), resume=True)
    assert summary["global_step"] == 6
    assert checkpoint_problem(tmp_path / "run" / "checkpoint-6") is None
    assert not (tmp_path / "run" / STAGING).exists()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_process_saves_publish_whole_checkpoints_and_resume(tiny_omni_dir, toy_corpus, tmp_path,
                                                                 accelerate_cli):
    """DDP over gloo: every rank writes into the staging folder, rank 0 publishes after the barrier;
    the output folder is locked by rank 0 alone (a second rank taking it would refuse the run)."""
    import os
    import subprocess
    from pathlib import Path

    import yaml

    repo = Path(__file__).resolve().parent.parent
    accelerate = accelerate_cli
    out = tmp_path / "out"
    recipe = {"tgsr": {"model": str(tiny_omni_dir), "train_file": str(toy_corpus / "train" / "sta.jsonl"),
                       "max_train_samples": 16},
              "output_dir": str(out), "per_device_train_batch_size": 4, "max_steps": 2, "learning_rate": 1e-3,
              "logging_steps": 1, "save_strategy": "steps", "save_steps": 1, "seed": 0, "disable_tqdm": True}
    cfg = tmp_path / "sta.yaml"
    cfg.write_text(yaml.safe_dump(recipe))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

    def launch(*extra):
        port = 29500 + (os.getpid() + len(extra)) % 400
        return subprocess.run(
            [str(accelerate), "launch", "--config_file", str(repo / "recipes" / "accelerate" / "cpu_2proc.yaml"),
             "--main_process_port", str(port), "-m", "tgsr", "train", "sta", "--config", str(cfg), *extra],
            cwd=repo, env=env, capture_output=True, text=True, timeout=280)

    proc = launch()
    assert proc.returncode == 0, proc.stderr[-3000:]
    for step in (1, 2):
        assert checkpoint_problem(out / f"checkpoint-{step}") is None
    assert not (out / STAGING).exists() and not (out / ".tgsr.lock").exists()
    _truncate(out / "checkpoint-2" / "model.safetensors")
    proc = launch("--resume", "max_steps=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "skipping incomplete checkpoint-2" in proc.stdout + proc.stderr
    assert checkpoint_problem(out / "checkpoint-3") is None
    assert json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())["global_step"] == 3
