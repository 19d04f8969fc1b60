"""Recipe values checked against the dataclass field types before anything is built."""

from __future__ import annotations

from pathlib import Path

import pytest

from tgsr.train.config import ConfigError, describe_type, load_config

REQ = {"tgsr.model": "m", "tgsr.train_file": "t"}


@pytest.mark.parametrize("stage, override, message", [
    # the cases: tracebacks from transformers/torch, or silently accepted
    ("grpo", "max_steps=abc", 'max_steps="abc": expected an integer'),
    ("grpo", "learning_rate=[1,2]", r"learning_rate=\[1, 2\]: expected a number"),
    ("grpo", "tgsr.feature_cache_size=abc", 'tgsr.feature_cache_size="abc": expected an integer'),
    ("sta", "tgsr.lora=maybe", 'tgsr.lora="maybe": expected true or false'),
    ("sta", "tgsr.max_train_samples=-5", "tgsr.max_train_samples=-5: must be at least 1"),
    # more of the same kinds
    ("sta", "bf16=yes", 'bf16="yes": expected true or false'),
    ("sta", "max_steps=true", "max_steps=true: expected an integer"),
    ("sta", "max_steps=2.5", "max_steps=2.5: expected an integer"),
    ("sta", "max_steps=-3", r"max_steps=-3: must be at least -1 \(-1: not set\)"),
    ("sta", "per_device_train_batch_size=0", "per_device_train_batch_size=0: must be at least 1"),
    ("sft", "tgsr.max_eval_samples=0", "tgsr.max_eval_samples=0: must be at least 1"),
    ("sft", "tgsr.lora_r=-4", "tgsr.lora_r=-4: must be at least 1"),
    ("sft", "tgsr.lora_dropout=1.5", "tgsr.lora_dropout=1.5: must be at most 1.0"),
    ("sft", "tgsr.family=3", "tgsr.family=3: expected a string or null"),
    ("grpo", "tgsr.logprob_check_steps=-1", "tgsr.logprob_check_steps=-1: must be at least 0"),
    ("grpo", "reward_weights=[1, x]", r'reward_weights=\[1, "x"\]: expected a list of numbers or null'),
    ("grpo", "num_generations=-2", "num_generations=-2: must be at least 1"),
    ("sta", "save_strategy=sometimes", "save_strategy=\"sometimes\": expected one of 'no', 'steps', 'epoch', 'best'"),
])
def test_bad_values_name_the_key_the_value_and_the_type(stage, override, message):
    with pytest.raises(ConfigError, match=message + r" \(a command-line override\)"):
        load_config(stage, None, [override], extra=REQ)


@pytest.mark.parametrize("override, key, value", [
    ("max_steps=1e3", "max_steps", 1000),            # an integral float is the integer
    ("max_steps=-1", "max_steps", -1),               # the Trainer's "not set"
    ("learning_rate=3", "learning_rate", 3.0),       # an integer is a number
    ("eval_steps=0.5", "eval_steps", 0.5),           # a ratio where the Trainer takes one
    ("tgsr.lora=true", "tgsr.lora", True),
    ("tgsr.feature_cache_size=0", "tgsr.feature_cache_size", 0),
    ("tgsr.max_train_samples=null", "tgsr.max_train_samples", None),
])
def test_good_values_pass_converted(override, key, value):
    trainer_args, tgsr_args = load_config("sta", None, [override], extra=REQ)
    got = getattr(tgsr_args, key[5:]) if key.startswith("tgsr.") else getattr(trainer_args, key)
    assert got == value and type(got) is type(value)


def test_a_recipe_value_names_the_file(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("max_steps: lots\ntgsr:\n  model: m\n  train_file: t\n  lora: yes\n")
    with pytest.raises(ConfigError, match=r'r.yaml \[tgsr\]: tgsr.lora="yes": expected true or false$'):
        load_config("sta", recipe)
    recipe.write_text("max_steps: lots\ntgsr:\n  model: m\n  train_file: t\n")
    with pytest.raises(ConfigError, match=r'r.yaml: max_steps="lots": expected an integer$'):
        load_config("sta", recipe)


def test_describe_type():
    assert describe_type(int | None) == "an integer or null"
    assert describe_type(list[float] | None) == "a list of numbers or null"
    assert describe_type(bool) == "true or false"


def test_cli_prints_the_message_without_a_traceback(tmp_path, capsys):
    from tgsr.cli import main

    recipe = Path(__file__).resolve().parent.parent / "recipes" / "tiny-cpu" / "sta.yaml"
    rc = main(["train", "sta", "--config", str(recipe), "tgsr.model=m", "tgsr.train_file=t",
               f"output_dir={tmp_path / 'o'}", "max_steps=abc"])
    err = capsys.readouterr().err
    assert rc == 1 and 'max_steps="abc": expected an integer (a command-line override)' in err
    assert "Traceback" not in err and not (tmp_path / "o").exists()
