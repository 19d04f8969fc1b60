"""Sharded training for real, on two CPU processes: FSDP2 and DeepSpeed ZeRO-3, with the shipped
accelerate configs (``recipes/accelerate/fsdp.yaml``, ``deepspeed_zero3.yaml``, 2 processes).

Each run must actually shard (every rank holds about half of every parameter), save a complete
model folder from the gathered weights (it reloads to exactly the weights that were gathered), and
evaluate: STA's held-out IoU runs on the saved folder reloaded on one process; GRPO keeps the audio
guard and its KL reference (built by tgsr's loader) sharded alongside.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ACCELERATE_CONFIGS = {"fsdp": "fsdp.yaml", "deepspeed": "deepspeed_zero3.yaml"}


def _launch(accelerate: str, kind: str, stage: str, overrides: list[str], tmp_path: Path) -> dict:
    port = 29000 + (os.getpid() * 7 + len(stage) + (kind == "deepspeed") * 37) % 900
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [str(accelerate), "launch", "--config_file", str(REPO / "recipes" / "accelerate" / ACCELERATE_CONFIGS[kind]),
           "--num_processes", "2", "--main_process_port", str(port), "-m", "tgsr", "train", stage,
           "--config", str(REPO / "recipes" / "tiny-cpu" / f"{stage}.yaml"), *overrides,
           "logging_steps=1", "save_strategy=no", "disable_tqdm=true"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    out = next(Path(o.split("=", 1)[1]) for o in overrides if o.startswith("output_dir="))
    return json.loads((out / "tgsr_summary.json").read_text())


def _check_sharded_folder(summary: dict, kind: str, out: Path) -> None:
    from tgsr.models import load_model
    from tgsr.train.common import state_digest

    assert summary["num_processes"] == 2 and summary["sharding"] == kind
    for local, total in summary["rank_parameters"]:  # really sharded: each rank holds about half
        assert 0.4 * total < local < 0.6 * total, summary["rank_parameters"]
    reloaded = load_model(out)  # refuses a folder with missing (e.g. empty, partitioned) weights
    assert state_digest(reloaded.model.state_dict()) == summary["saved_weights_digest"]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("kind", ["fsdp", "deepspeed"])
def test_two_process_sharded_sta_then_grpo(kind, tiny_omni_dir, warm_pitch_model, toy_corpus, tmp_path,
                                           accelerate_cli):
    if kind == "deepspeed":
        pytest.importorskip("deepspeed")
    # The accelerate configs set mixed_precision: bf16, so the recipes run with bf16 on (DeepSpeed checks
    # that the two agree); on the CPU that is bfloat16 autocast.
    sta = tmp_path / "sta"
    summary = _launch(accelerate_cli, kind, "sta", [
                                    f"tgsr.model={tiny_omni_dir}", f"tgsr.train_file={toy_corpus}/train/sta.jsonl",
                                    f"tgsr.eval_file={toy_corpus}/test/sta.jsonl", "tgsr.max_eval_samples=2",
                                    "tgsr.max_new_tokens=8", "max_steps=2", "per_device_train_batch_size=2",
                                    "bf16=true", f"output_dir={sta}"], tmp_path)
    _check_sharded_folder(summary, kind, sta)
    assert summary["heldout_n"] == 2
    assert json.loads((sta / "sta_eval.json").read_text())["evaluated"] == "saved folder, reloaded on one device"

    grpo = tmp_path / "grpo"
    summary = _launch(accelerate_cli, kind, "grpo", [
                                     f"tgsr.model={warm_pitch_model}", f"tgsr.ref_model={warm_pitch_model}",
                                     f"tgsr.train_file={toy_corpus}/train/qa.jsonl", "tgsr.ablation=no_grounding",
                                     "tgsr.prompt_style=direct", "max_steps=2", "per_device_train_batch_size=8",
                                     "num_generations=4", "max_completion_length=8", "learning_rate=1e-3",
                                     "bf16=true", f"output_dir={grpo}"], tmp_path)
    _check_sharded_folder(summary, kind, grpo)
    assert summary["reference_model"] == str(warm_pitch_model)
    check = summary["logprob_checks"][0]
    assert check["precision"] == "reduced" and check["passed"] and check["swapped_mean"] is not None, check
    from tgsr.models import load_model
    from tgsr.train.common import state_digest

    # bf16 runs store their final folder in bf16 (the masters stay in checkpoint-N): compare like with like
    start = state_digest(load_model(warm_pitch_model, dtype="bfloat16").model.state_dict())
    assert summary["saved_weights_digest"] != start  # the sharded update reached the saved weights
    shutil.rmtree(tmp_path / "grpo", ignore_errors=True)
