"""The demo's stage settings are `tgsr train` recipes (recipes/demo/full|quick/<stage>.yaml):
read by tgsr.train.config, one definition of each value, covered by the stage cache keys."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from tgsr.demo import DEMO_RECIPES, RECIPE_STAGES, DemoConfig, StageRunner
from tgsr.train.config import ConfigError, load_config, load_yaml

REPO_RECIPES = Path(__file__).resolve().parent.parent / "recipes" / "demo"
FILLS = {"model": "runs/demo/start", "train_file": "runs/demo/qa.jsonl"}


def _same(recipe_value, run_value) -> bool:
    if recipe_value == "none" and run_value == []:  # report_to: none is the Trainer's empty list
        return True
    return run_value == recipe_value


def test_the_package_reads_the_repository_recipes():
    # in a clone (pip install -e .) tgsr/assets/demo_recipes is the link to recipes/demo; a wheel copies it
    assert DEMO_RECIPES.resolve() == REPO_RECIPES.resolve()
    assert sorted(p.name for p in (REPO_RECIPES / "full").glob("*.yaml")) == sorted(f"{s}.yaml" for s in RECIPE_STAGES)
    assert sorted(p.name for p in (REPO_RECIPES / "quick").glob("*.yaml")) == sorted(f"{s}.yaml" for s in RECIPE_STAGES)
    assert DemoConfig.full().recipe("sta") == DEMO_RECIPES / "full" / "sta.yaml"
    assert DemoConfig.quick().recipe("grpo") == DEMO_RECIPES / "quick" / "grpo.yaml"


@pytest.mark.parametrize("cfg", [DemoConfig.full(seed=3), DemoConfig.quick()], ids=["full", "quick"])
@pytest.mark.parametrize("stage", RECIPE_STAGES)
def test_each_recipe_is_what_the_demo_trains_with(cfg, stage, tmp_path):
    train_stage = cfg.train_stage(stage)
    # `tgsr train` reads the recipe as it is
    ref_args, ref_tgsr = load_config(train_stage, cfg.recipe(stage), extra={"tgsr": FILLS})
    args, tgsr_args = cfg.train_config(stage, output_dir=tmp_path / "model", tgsr=FILLS)
    for key, value in load_yaml(cfg.recipe(stage)).items():
        assert _same(value, getattr(args, key)), (stage, key)
    mine, ref = args.to_dict(), ref_args.to_dict()
    assert mine.pop("output_dir") == str(tmp_path / "model") and mine.pop("seed") == cfg.seed
    ref.pop("output_dir"), ref.pop("seed")
    assert mine == ref
    assert dataclasses.asdict(tgsr_args) == dataclasses.asdict(ref_tgsr)
    assert cfg.trainer_settings(stage).max_steps == args.max_steps


def test_the_settings_the_demo_has_always_used():
    """The values the full and quick runs were measured with (docs/demo.md)."""
    full, quick = DemoConfig.full(), DemoConfig.quick()

    def t(cfg, stage, *keys):
        s = cfg.trainer_settings(stage)
        return tuple(getattr(s, k) for k in keys)

    keys = ("max_steps", "per_device_train_batch_size", "learning_rate", "warmup_steps", "logging_steps")
    assert t(full, "base", *keys) == (320, 16, 2e-3, 30, 5)
    assert t(full, "sta", *keys) == (150, 16, 1e-3, 10, 5)
    assert t(full, "sft", *keys) == (360, 16, 1e-3, 10, 5)
    assert t(quick, "base", *keys) == (30, 8, 2e-3, 5, 1)
    assert t(quick, "sta", *keys) == t(quick, "sft", *keys) == (8, 8, 1e-3, 2, 1)
    g = ("max_steps", "per_device_train_batch_size", "num_generations", "max_completion_length", "learning_rate",
         "beta", "temperature", "lr_scheduler_type")
    assert t(full, "grpo", *g) == (16, 32, 4, 72, 1e-4, 0.04, 0.8, "constant")
    assert t(quick, "grpo", *g) == (2, 8, 4, 40, 1e-4, 0.04, 0.8, "constant")


def _key(cfg: DemoConfig, stage: str) -> str:
    # a training stage's parameters as run_demo gives them to the stage cache (the base adds size and hop)
    return StageRunner.key(stage, {"seed": cfg.seed, "recipe": cfg.recipe_settings(stage)}, ())


def test_editing_a_recipe_changes_the_stage_hash(tmp_path):
    copy = tmp_path / "quick"
    shutil.copytree(DEMO_RECIPES / "quick", copy)
    cfg = dataclasses.replace(DemoConfig.quick(), recipes=copy)
    assert _key(cfg, "sta") == _key(DemoConfig.quick(), "sta")  # the same values, wherever they live
    before = {s: _key(cfg, s) for s in RECIPE_STAGES}
    assert cfg.trainer_settings("sta").learning_rate == 1e-3

    path = copy / "sta.yaml"
    path.write_text("# a comment changes no setting\n" + path.read_text())
    assert _key(cfg, "sta") == before["sta"]
    path.write_text(path.read_text().replace("learning_rate: 1.0e-3", "learning_rate: 5.0e-4"))
    after = {s: _key(cfg, s) for s in RECIPE_STAGES}
    assert after["sta"] != before["sta"]
    assert {s: after[s] for s in RECIPE_STAGES if s != "sta"} == {s: before[s] for s in RECIPE_STAGES if s != "sta"}
    assert cfg.trainer_settings("sta").learning_rate == 5e-4  # read again, not a cached copy
    args, _ = cfg.train_config("sta", output_dir=tmp_path / "m", tgsr=FILLS)
    assert args.learning_rate == 5e-4

    # an override (--base-steps) is part of the key as well
    assert _key(cfg.with_overrides("base", "max_steps=40"), "base") != before["base"]


def test_overrides_and_a_warm_up_no_longer_than_the_run(tmp_path):
    cfg = DemoConfig.full().with_overrides("base", "max_steps=5")
    args, _ = cfg.train_config("base", output_dir=tmp_path / "m", tgsr=FILLS)
    assert (args.max_steps, args.warmup_steps) == (5, 4)
    assert DemoConfig.full().trainer_settings("base").warmup_steps == 30
    with pytest.raises(ValueError, match="unknown demo stage"):
        DemoConfig.full().with_overrides("eval", "max_steps=1")
    bad = DemoConfig.full().with_overrides("sft", "learning_rat=1e-3")
    with pytest.raises(ConfigError, match="did you mean 'learning_rate'"):
        bad.check_recipes()


def test_a_recipe_may_not_set_what_the_demo_sets(tmp_path):
    copy = tmp_path / "full"
    shutil.copytree(DEMO_RECIPES / "full", copy)
    (copy / "grpo.yaml").write_text((copy / "grpo.yaml").read_text() + "seed: 7\ntgsr:\n  ablation: no_compaction\n")
    cfg = dataclasses.replace(DemoConfig.full(), recipes=copy)
    with pytest.raises(ConfigError, match=r"grpo\.yaml: seed, tgsr\.ablation set by the demo"):
        cfg.check_recipes()
    (copy / "sft.yaml").unlink()
    with pytest.raises(ConfigError, match="sft.yaml: recipe not found"):
        cfg.train_config("sft", output_dir=tmp_path / "m", tgsr=FILLS)
