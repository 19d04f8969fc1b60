"""Generation on merged LoRA weights: same function, exact restore, parity inside GRPO."""

from __future__ import annotations

import pytest
import torch

peft = pytest.importorskip("peft")

from tgsr.train.lora_merge import merged_lora  # noqa: E402

TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def _randomise_lora_b(model, seed: int = 0) -> None:
    """LoRA starts with B = 0 (a no-op); a trained adapter does not."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def _peft_model(model_dir, **lora):
    from peft import LoraConfig, get_peft_model

    from tgsr.models import load_model

    lm = load_model(model_dir, dtype=torch.float32)
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=TARGETS, **lora)
    model = get_peft_model(lm.model, cfg)
    _randomise_lora_b(model)
    model.eval()
    return model


def _base_weights(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "base_layer.weight" in n}


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_merged_weights_compute_the_adapted_model_and_come_back_exactly(tiny_omni_dir):
    model = _peft_model(tiny_omni_dir)
    ids = torch.randint(10, 200, (3, 12), generator=torch.Generator().manual_seed(1))
    before = _base_weights(model)
    adapted = _logits(model, ids)
    with torch.no_grad():
        plain = model.disable_adapter()
        with plain:
            base_only = model(input_ids=ids).logits
    assert (adapted - base_only).abs().max() > 1e-2  # the adapter changes the function

    with merged_lora(model) as merged:
        assert merged
        inside = _logits(model, ids)
        changed = [n for n, p in model.named_parameters() if n in before and not torch.equal(p, before[n])]
        assert len(changed) == len(before)  # every adapted weight was swapped for its merged copy
    assert (inside - adapted).abs().max() < 1e-4

    after = _base_weights(model)
    assert all(torch.equal(after[n], before[n]) for n in before)  # bit for bit, no merge/unmerge drift
    assert torch.equal(_logits(model, ids), adapted)  # adapters are back on


def test_greedy_generation_is_unchanged(tiny_omni_dir):
    model = _peft_model(tiny_omni_dir)
    ids = torch.randint(10, 200, (2, 8), generator=torch.Generator().manual_seed(2))
    kw = dict(max_new_tokens=10, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        ref = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kw)
        with merged_lora(model):
            got = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kw)
    assert torch.equal(ref, got)


def test_layers_that_cannot_merge_exactly_are_left_alone(tiny_omni_dir):
    model = _peft_model(tiny_omni_dir, use_dora=True)
    ids = torch.randint(10, 200, (2, 6), generator=torch.Generator().manual_seed(3))
    adapted = _logits(model, ids)
    with merged_lora(model) as merged:
        assert merged is False
        assert torch.equal(_logits(model, ids), adapted)


def test_policy_never_and_bad_values(tiny_omni_dir):
    from tgsr.train.lora_merge import merge_policy

    model = _peft_model(tiny_omni_dir)
    with merged_lora(model, merge_policy(False)) as merged:
        assert merged is False
    with merged_lora(model, merge_policy("auto")) as merged:
        assert merged is True  # on the CPU the copy always fits
    with pytest.raises(ValueError, match="true, false or auto"):
        merge_policy("sometimes")


def test_recipe_value_is_checked_when_the_config_loads():
    from tgsr.train.config import ConfigError, load_config

    args, tg = load_config("grpo", None, ["tgsr.merge_lora_for_generation=false"],
                           extra={"tgsr.model": "m", "tgsr.train_file": "t"})
    assert tg.merge_lora_for_generation is False
    with pytest.raises(ConfigError, match="merge_lora_for_generation must be true, false or auto"):
        load_config("grpo", None, ["tgsr.merge_lora_for_generation=sometimes"],
                    extra={"tgsr.model": "m", "tgsr.train_file": "t"})


def test_plain_model_has_nothing_to_merge(tiny_omni_dir):
    from tgsr.models import load_model

    lm = load_model(tiny_omni_dir, dtype=torch.float32)
    with merged_lora(lm.model) as merged:
        assert merged is False


def test_grpo_samples_from_merged_lora_with_logprob_parity(tiny_omni_dir, toy_corpus, tmp_path):
    """Inside a real GRPO step (fp32): sampling on merged weights, training passes on the adapter."""
    from datasets import Dataset

    from tgsr.rewards import build_reward_funcs
    from tgsr.train.common import load_audio_lm, prepare_trainable
    from tgsr.train.config import load_config
    from tgsr.train.datasets import grpo_rows
    from tgsr.train.grpo import AudioGRPOTrainer

    args, tg = load_config("grpo", None, [], extra={
        "tgsr.model": str(tiny_omni_dir), "tgsr.train_file": "unused", "tgsr.lora": True, "tgsr.lora_r": 4,
        "tgsr.lora_dropout": 0.0, "tgsr.merge_lora_for_generation": True, "output_dir": str(tmp_path),
        "per_device_train_batch_size": 4, "num_generations": 2, "max_completion_length": 8, "max_steps": 1,
        "beta": 0.04, "save_strategy": "no", "seed": 0, "disable_tqdm": True, "learning_rate": 1e-3})
    lm = load_audio_lm(str(tiny_omni_dir), tg, args)
    _, peft_config, _ = prepare_trainable(lm.model, tg, args, wrap_lora=False)
    rows = grpo_rows(str(toy_corpus / "train" / "qa.jsonl"), "direct").rows[:4]
    funcs, _ = build_reward_funcs({"answer": 1.0})
    args.reward_weights = [1.0]
    trainer = AudioGRPOTrainer(lm, funcs, args, Dataset.from_list(rows), peft_config=peft_config,
                               logprob_check_steps=100,
                               merge_lora_for_generation=tg.merge_lora_for_generation)
    _randomise_lora_b(trainer.model)
    before = _base_weights(trainer.model)
    trainer.train()
    assert trainer.generation_merged_lora is True
    check = trainer.logprob_checks[0]
    assert check["tokens"] > 0 and check["max"] < 1e-4
    after = _base_weights(trainer.model)
    assert before.keys() == after.keys() and all(torch.equal(after[n], before[n]) for n in before)
