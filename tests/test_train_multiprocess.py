"""`accelerate launch` with two CPU processes (DDP over gloo): GRPO steps, ranks stay in sync."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_process_grpo_keeps_ranks_identical(warm_pitch_model, toy_corpus, tmp_path, accelerate_cli):
    accelerate = accelerate_cli
    out = tmp_path / "out"
    recipe = {
        "tgsr": {"model": str(warm_pitch_model), "train_file": str(toy_corpus / "train" / "qa.jsonl"),
                 "ablation": "no_grounding", "prompt_style": "direct", "max_train_samples": 8},
        "output_dir": str(out), "per_device_train_batch_size": 4, "num_generations": 4,
        "max_completion_length": 8, "max_steps": 2, "learning_rate": 1e-3, "beta": 0.04,
        "logging_steps": 1, "save_strategy": "no", "seed": 0, "disable_tqdm": True,
    }
    cfg = tmp_path / "grpo.yaml"
    cfg.write_text(yaml.safe_dump(recipe))
    port = 29500 + os.getpid() % 400  # avoid clashing with another run of the suite
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(
        [str(accelerate), "launch", "--config_file", str(REPO / "recipes" / "accelerate" / "cpu_2proc.yaml"),
         "--main_process_port", str(port), "-m", "tgsr", "train", "grpo", "--config", str(cfg)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "tgsr_summary.json").read_text())
    assert summary["num_processes"] == 2
    assert summary["global_step"] == 2
    digests = summary["rank_weights_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]  # DDP kept both ranks identical
    assert digests[0] != summary["initial_weights_digest"]  # and the update changed the weights
    assert all(c["max"] < 1e-5 for c in summary["logprob_checks"])  # audio reached the log-prob pass on rank 0
