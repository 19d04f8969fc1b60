"""The shipped 7B recipes, run as shipped, on folders laid out like the hub checkpoints.

For each family, in a working folder with the recipes' own relative paths (``data/sta/...``,
``data/qa/...``, ``runs/<recipe>/...``) and the recipes' hub ids resolved from a Hugging Face cache
(offline): Stage-1 STA from the hub id, reasoning SFT from the hub id, GRPO from the STA folder
with it as the KL reference. Only sizes are overridden (steps, batch, completion length, held-out
items); workers (``dataloader_num_workers: 4``), templates, precision (``bf16: true``, which runs
as bfloat16 autocast on the CPU), the loss and the audio guard are the recipes'. Every saved
folder must reload and be scored by ``tgsr eval run``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures_hub import HUB_REPOS, RECIPE_OF
from tgsr.cli import main

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
SIZES = {
    "sta": ["max_steps=2", "per_device_train_batch_size=1", "per_device_eval_batch_size=2",
            "gradient_accumulation_steps=1", "tgsr.max_eval_samples=2", "tgsr.max_new_tokens=8"],
    "sft": ["max_steps=2", "per_device_train_batch_size=1", "gradient_accumulation_steps=1"],
    "grpo": ["max_steps=1", "per_device_train_batch_size=2", "num_generations=2", "gradient_accumulation_steps=1",
             "max_completion_length=8"],
}
QUIET = ["disable_tqdm=true"]


@pytest.fixture
def workdir(tmp_path, toy_corpus, monkeypatch, use_hub_cache):
    # 3 s clips: the real vocabularies make every position's LM head costly on a CPU, so prompts stay short
    for link, target in (("data/sta/train", "train"), ("data/sta/test", "test"), ("data/qa/train", "train")):
        (tmp_path / link).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / link).symlink_to(toy_corpus / target)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _eval(model: str, benchmark: str, data_root: str, out: str) -> dict:
    assert main(["eval", "run", "--model", model, "--benchmark", benchmark, "--data-root", data_root,
                 "--limit", "2", "--batch-size", "2", "--max-new-tokens", "8", "--out", out, "--quiet"]) == 0
    return json.loads((Path(out) / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("repo", HUB_REPOS)
def test_shipped_recipes_train_save_and_evaluate(repo, workdir, toy_corpus):
    recipe = RECIPE_OF[repo]
    for stage in ("sta", "sft", "grpo"):
        assert main(["train", stage, "--config", str(RECIPES / recipe / f"{stage}.yaml"), *SIZES[stage], *QUIET]) == 0
        out = workdir / "runs" / recipe / stage
        summary = json.loads((out / "tgsr_summary.json").read_text())
        assert summary["global_step"] == int(SIZES[stage][0].split("=")[1])
        # bf16 on: float32 master weights under bfloat16 autocast (full fine-tuning, no DeepSpeed)
        assert summary["weights_dtype"] == "torch.float32"
        assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"  # stored as trained: bf16
        assert (out / "chat_template.jinja").is_file()
    sta = json.loads((workdir / "runs" / recipe / "sta" / "tgsr_summary.json").read_text())
    assert sta["heldout_n"] == 2 and sta["weights_dtype"] == "torch.float32"
    grpo = json.loads((workdir / "runs" / recipe / "grpo" / "tgsr_summary.json").read_text())
    assert grpo["loss_type"] == "grpo"                       # ms-swift's objective, pinned in the recipe
    assert grpo["reference_model"] == str(Path("runs") / recipe / "sta")
    check = grpo["logprob_checks"][0]                        # the audio guard ran, in reduced precision
    assert check["precision"] == "reduced" and check["passed"], check
    for stage, bench, root in (("sta", "sta", "data/sta"), ("sft", "synthetic", str(toy_corpus)),
                               ("grpo", "synthetic", str(toy_corpus))):
        metrics = _eval(f"runs/{recipe}/{stage}", bench, root, f"eval/{stage}")
        scores = metrics["sta"] if bench == "sta" else metrics["tgsr"]
        assert scores["predicted"] == 2 and scores["errors"] == 0, metrics
