"""Recipe YAML -> trainer dataclasses + tgsr section; overrides; presets; located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tgsr.train.config import ABLATIONS, ConfigError, dump_config, load_config, parse_override

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
REQ = {"tgsr.model": "m", "tgsr.train_file": "t.jsonl"}
TRAINING_RECIPES = sorted(p.relative_to(RECIPES).as_posix() for p in RECIPES.glob("*/*.yaml")
                          if p.parent.name != "accelerate")


@pytest.mark.parametrize("recipe", TRAINING_RECIPES)
def test_every_recipe_parses_into_the_trainer_dataclass(recipe):
    stage = Path(recipe).stem
    # GPU recipes ask for bf16; on this CPU-only test machine parse them in fp32
    trainer_args, tg = load_config(stage, RECIPES / recipe, ["bf16=false"])
    assert type(trainer_args).__name__ == ("GRPOConfig" if stage == "grpo" else "TrainingArguments")
    assert tg.model and tg.train_file
    assert trainer_args.bf16 is False and trainer_args.fp16 is False
    if stage == "grpo":
        assert len(trainer_args.reward_weights) == len(tg.rewards)


@pytest.mark.parametrize("recipe", TRAINING_RECIPES)
def test_the_written_config_of_a_run_reads_back_to_the_same_arguments(recipe, tmp_path):
    # tgsr_config.yaml is what a user reruns a finished run from (`tgsr train STAGE --config`)
    stage = Path(recipe).stem
    trainer_args, tg = load_config(stage, RECIPES / recipe, ["bf16=false"])
    dump_config(trainer_args, tg, tmp_path / "tgsr_config.yaml")
    again, tg_again = load_config(stage, tmp_path / "tgsr_config.yaml")
    assert tg_again == tg
    first, second = trainer_args.to_dict(), again.to_dict()
    assert {k: (v, second.get(k)) for k, v in first.items() if second.get(k) != v} == {}


def test_paper_recipe_keeps_the_paper_hyperparameters():
    args, tg = load_config("grpo", RECIPES / "qwen2.5-omni-7b" / "grpo.yaml", ["bf16=false"])
    assert (args.num_generations, args.temperature, args.beta, args.learning_rate) == (8, 0.8, 0.04, 5e-6)
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (8, 4)
    assert tg.rewards == {"answer": 1.0, "compaction": 1.0} and args.reward_weights == [1.0, 1.0]
    assert tg.ref_model == tg.model  # the Stage-1 checkpoint is the reference


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_ablation_presets(name):
    args, tg = load_config("grpo", None, [f"tgsr.ablation={name}"], extra=REQ)
    assert tg.rewards == ABLATIONS[name]["rewards"]
    assert args.reward_weights == [float(w) for w in ABLATIONS[name]["rewards"].values()]
    assert tg.prompt_style == ABLATIONS[name]["prompt_style"]


def test_explicit_keys_win_over_the_preset():
    args, tg = load_config("grpo", None, ["tgsr.ablation=no_grounding", "tgsr.prompt_style=grounded",
                                          "tgsr.rewards={answer: 2, compaction: {weight: 0.5, count: paper}}"],
                           extra=REQ)
    assert tg.prompt_style == "grounded"
    assert args.reward_weights == [2.0, 0.5]


def test_overrides_are_yaml_typed_and_cpu_is_fp32():
    args, tg = load_config("sta", None, ["learning_rate=5e-6", "max_steps=7", "tgsr.lora=true"], extra=REQ)
    assert args.learning_rate == 5e-6 and isinstance(args.learning_rate, float)
    assert args.max_steps == 7 and tg.lora is True
    g, _ = load_config("grpo", None, [], extra=REQ)
    assert g.bf16 is False  # TRL defaults to bf16 even on CPU


def test_located_errors(tmp_path):
    with pytest.raises(ConfigError,
                       match="'learnin_rate' \\(a command-line override\\) \\(did you mean 'learning_rate'"):
        load_config("sta", None, ["learnin_rate=1"], extra=REQ)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("tgsr:\n  model: m\n  train_file: t\nlearnin_rate: 1\n")
    with pytest.raises(ConfigError, match=r"r.yaml: unknown key\(s\) for \w+: 'learnin_rate' \(did"):
        load_config("sta", recipe)
    with pytest.raises(ConfigError, match=r"\[tgsr\].*'lorra'"):
        load_config("sta", None, ["tgsr.lorra=true"], extra=REQ)
    with pytest.raises(ConfigError, match="tgsr.model is required"):
        load_config("sta", None, [], extra={"tgsr.train_file": "x"})
    with pytest.raises(ConfigError, match="unknown"):
        load_config("grpo", None, ["tgsr.ablation=nope"], extra=REQ)
    with pytest.raises(ConfigError, match="tgsr.rewards"):
        load_config("grpo", None, ["tgsr.rewards=[answer, bogus]"], extra=REQ)
    with pytest.raises(ConfigError, match="reward_weights has 1"):
        load_config("grpo", None, ["reward_weights=[1.0]"], extra=REQ)
    bad = tmp_path / "bad.yaml"
    bad.write_text("tgsr:\n  model: x\n learning_rate: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: invalid YAML"):
        load_config("sta", bad)
    with pytest.raises(ConfigError, match="recipe not found"):
        load_config("sta", tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("learning_rate")


@pytest.mark.parametrize("stage", ["sta", "sft", "grpo"])
def test_every_tgsr_field_has_help_and_the_cli_lists_it(stage, capsys):
    import dataclasses

    from tgsr.cli import main
    from tgsr.train.config import TGSR_CLASSES, field_help

    rows = field_help(stage)
    assert [r["name"] for r in rows] == [f.name for f in dataclasses.fields(TGSR_CLASSES[stage])]
    missing = [r["name"] for r in rows if len(r["help"]) < 10]
    assert not missing, f"tgsr fields without help text: {missing}"
    assert main(["train", "fields", stage]) == 0
    out = capsys.readouterr().out
    for r in rows:
        assert f"  {r['name']}  ({r['type']}; default {r['default']})\n      {r['help']}\n" in out
    assert ("\n  ablation  (" in out) == (stage == "grpo") and ("\n  target  (" in out) == (stage == "sft")
