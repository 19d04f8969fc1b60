"""Units of the real-checkpoint path: CPU-built batches, precision, sharded bookkeeping, the bf16 audio
guard, the GRPO reference from a full Omni checkpoint, placement, and the pinned GRPO objective."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tgsr.errors import TgsrError

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


# ---------------------------------------------------------------- batches on the CPU

def test_the_collator_never_touches_the_models_device(tiny_omni_dir, toy_corpus):
    """DataLoader workers are forked: a collator that moved tensors to the model's CUDA device would
    fail there. With the model on the meta device, any such move would fail here too."""
    from tgsr.models import load_model
    from tgsr.train.collate import SupervisedCollator
    from tgsr.train.datasets import sta_rows

    lm = load_model(tiny_omni_dir)
    lm.model.to("meta")
    rows = sta_rows(str(toy_corpus / "train" / "sta.jsonl"), 2).rows
    batch = SupervisedCollator(lm)(rows)
    assert {v.device.type for v in batch.values()} == {"cpu"}
    assert batch["input_features"].abs().sum() > 0 and (batch["labels"] != -100).any()


# ---------------------------------------------------------------- precision

def _args(bf16=False, deepspeed=False, lr=5e-6):
    return SimpleNamespace(bf16=bf16, fp16=False, learning_rate=lr, deepspeed_plugin=object() if deepspeed else None)


@pytest.mark.parametrize("bf16,deepspeed,lora,expected", [
    (False, False, False, torch.float32),
    (True, True, False, torch.bfloat16),    # DeepSpeed keeps float32 masters in its optimizer
    (True, False, True, torch.bfloat16),    # LoRA: the base is frozen, PEFT keeps adapters in float32
    (True, False, False, torch.float32),    # full fine-tuning, one GPU / DDP / FSDP2: float32 masters
])
def test_weights_dtype_follows_who_keeps_float32_masters(bf16, deepspeed, lora, expected, monkeypatch):
    from tgsr.train.common import compute_dtype

    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    assert compute_dtype(_args(bf16, deepspeed), SimpleNamespace(dtype="auto", lora=lora)) == expected


def test_forcing_pure_bf16_full_fine_tuning_warns(caplog, monkeypatch):
    from tgsr.train.common import compute_dtype

    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    with caplog.at_level(logging.WARNING, logger="tgsr.train.common"):
        assert compute_dtype(_args(True), SimpleNamespace(dtype="bfloat16", lora=False)) == torch.bfloat16
    assert "round away" in caplog.text
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")  # accelerate launch with a DeepSpeed config
    assert compute_dtype(_args(True), SimpleNamespace(dtype="auto", lora=False)) == torch.bfloat16


def test_a_bf16_recipe_runs_on_the_cpu_as_bf16():
    from tgsr.train.config import ConfigError, load_config

    args, _ = load_config("sta", RECIPES / "qwen2-audio" / "sta.yaml", ["tgsr.model=x"])
    if torch.cuda.is_available():
        pytest.skip("CPU-only behaviour")
    assert args.bf16 and args.use_cpu and args.dataloader_num_workers == 4
    with pytest.raises(ConfigError, match="fp16"):
        load_config("sta", RECIPES / "qwen2-audio" / "sta.yaml", ["bf16=false", "fp16=true"])


# ---------------------------------------------------------------- sharded bookkeeping

def test_zero3_partitioned_parameters_are_counted_whole():
    from tgsr.train.distributed import numel, parameter_counts

    p = torch.nn.Parameter(torch.empty(0))
    p.ds_numel, p.ds_tensor = 1000, torch.empty(500)  # what ZeRO-3 leaves on one of two ranks
    assert numel(p) == 1000
    m = torch.nn.Module()
    m.w, m.v = p, torch.nn.Parameter(torch.zeros(10))
    assert parameter_counts(m) == (510, 1010)


def test_vocab_size_comes_from_the_config(tiny_omni_dir):
    """Under ZeRO-3 the output embedding reads [0] at load time; placeholder suppression must not shrink."""
    from tgsr.models import load_model

    lm = load_model(tiny_omni_dir)
    full = lm.suppress_token_ids
    lm.model.get_output_embeddings().weight.data = torch.empty(0, lm.model.config.get_text_config().hidden_size)
    assert lm._placeholder_ids() == full and len(full) == 3


def test_sharded_lora_merge_equals_peft(tiny_omni_dir):
    from peft import LoraConfig, get_peft_model

    from tgsr.models import load_model
    from tgsr.train.distributed import merge_lora_state_dict

    lm = load_model(tiny_omni_dir)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=r".*language_model.*\.(q_proj|v_proj)", init_lora_weights=False)
    peft = get_peft_model(lm.model, cfg)
    merged = merge_lora_state_dict({k: v.clone() for k, v in peft.state_dict().items()}, cfg)
    reference = peft.merge_and_unload().state_dict()
    assert merged.keys() == reference.keys()
    for k in reference:
        torch.testing.assert_close(merged[k], reference[k], rtol=0, atol=1e-6)
    with pytest.raises(TgsrError, match="plain LoRA"):
        merge_lora_state_dict({}, LoraConfig(r=4, use_dora=True))


# ---------------------------------------------------------------- the audio guard

def _logps(n_rows=4, n_tok=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return -torch.rand(n_rows, n_tok, generator=g) * 5, torch.ones(n_rows, n_tok, dtype=torch.long)


def test_guard_full_precision_uses_the_maximum():
    from tgsr.train.audio_guard import judge

    sampling, mask = _logps()
    assert judge(sampling + 1e-6, sampling, mask, full_precision=True).passed
    bad = sampling.clone()
    bad[0, 3] += 0.01
    r = judge(bad, sampling, mask, full_precision=True)
    assert not r.passed and r.max == pytest.approx(0.01, abs=1e-6)


def test_guard_reduced_precision_tells_rounding_from_missing_or_mispaired_audio():
    from tgsr.train.audio_guard import judge

    sampling, mask = _logps()
    g = torch.Generator().manual_seed(1)
    rounding = sampling + (torch.rand(sampling.shape, generator=g) - 0.5) * 0.08  # mean 0.02, max 0.04
    audio_effect = sampling + (torch.rand(sampling.shape, generator=g) - 0.5) * 2.0  # other clips: mean ~0.5
    # the measured bf16 gap at 7B (max 0.196) would fail a max test; the mean test passes it
    spiky = rounding.clone()
    spiky[0, 0] = sampling[0, 0] + 0.196
    ok = judge(spiky, sampling, mask, full_precision=False, swapped=audio_effect)
    assert ok.passed and ok.swapped_mean > 0.3, ok.reason
    # audio missing from the training pass: the gap is an audio effect, far above rounding
    assert not judge(audio_effect, sampling, mask, full_precision=False).passed
    # mis-paired, but each gap below the mean tolerance: the contrast catches it
    mild = sampling + (torch.rand(sampling.shape, generator=g) - 0.5) * 0.3    # mean ~0.075
    milder_swap = sampling + (torch.rand(sampling.shape, generator=g) - 0.5) * 0.5
    r = judge(mild, sampling, mask, full_precision=False, swapped=milder_swap)
    assert not r.passed and "mis-paired" in r.reason
    # a model that barely uses its audio cannot be verified, and says so
    r = judge(rounding, sampling, mask, full_precision=False, swapped=rounding + 0.001)
    assert r.passed and "cannot be verified" in r.reason


def test_swap_permutation_gives_every_row_another_clip():
    from tgsr.train.audio_guard import swap_permutation

    paths = ["a", "a", "b", "b", "c", "c"]
    perm = swap_permutation(paths)
    assert all(paths[j] != p for j, p in zip(perm, paths))
    assert swap_permutation(["a", "a"]) is None


def _bf16_trainer(model_dir, corpus, out_dir, **extra):
    from datasets import Dataset

    from tgsr.rewards import build_reward_funcs
    from tgsr.train.common import load_audio_lm
    from tgsr.train.config import load_config
    from tgsr.train.datasets import grpo_rows
    from tgsr.train.grpo import AudioGRPOTrainer

    args, tg = load_config("grpo", None, [], extra={
        "tgsr.model": str(model_dir), "tgsr.train_file": "unused", "output_dir": str(out_dir), "bf16": True,
        "per_device_train_batch_size": 6, "num_generations": 2, "max_completion_length": 8, "max_steps": 1,
        "logging_steps": 1, "save_strategy": "no", "seed": 0, "beta": 0.0, "learning_rate": 1e-4,
        "temperature": 0.8, "disable_tqdm": True, **extra})
    lm = load_audio_lm(str(model_dir), tg, args)
    rows = grpo_rows(str(corpus / "train" / "qa.jsonl"), "direct").rows
    funcs, _ = build_reward_funcs({"answer": 1.0})
    args.reward_weights = [1.0]
    return AudioGRPOTrainer(lm, funcs, args, Dataset.from_list(rows), logprob_check_steps=100), rows


@pytest.mark.slow
def test_bf16_guard_passes_the_right_audio_and_stops_mispaired_audio(warm_pitch_model, toy_corpus, tmp_path):
    """bf16 (autocast on the CPU), a model that listens: the guard passes with each row's own clip and
    stops the run when the training pass gets another row's clip, as a tiling bug would do."""
    trainer, rows = _bf16_trainer(warm_pitch_model, toy_corpus, tmp_path)
    assert not trainer.logprob_check_full_precision
    highs = [r for r in rows if r["answer"] == "a"][:2]
    lows = [r for r in rows if r["answer"] == "b"][:1]
    batch = [dict(r) for r in highs + lows for _ in range(2)]  # 3 prompts x G=2, clips of both classes
    trainer._generate_and_score_completions(batch)
    check = trainer.logprob_checks[-1]
    assert check["precision"] == "reduced" and check["passed"], check
    assert check["swapped_mean"] is not None and check["swapped_mean"] > 2 * check["mean"], check

    right = trainer.audio_inputs

    def rolled(audio_rows):  # every row scored with the next prompt's clip
        return right(audio_rows[2:] + audio_rows[:2])

    trainer.audio_inputs = rolled
    with pytest.raises(TgsrError, match="log-prob check failed"):
        trainer._generate_and_score_completions(batch)


@pytest.mark.slow
def test_grpo_reference_from_a_full_omni_checkpoint_is_the_thinker(hub_layout_dir, toy_corpus, tmp_path):
    """beta > 0 straight from the hub Omni folder (thinker + talker + vocoder): TRL alone would build the
    talker model (whose forward raises); tgsr's loader gives the thinker."""
    from datasets import Dataset

    from tgsr.rewards import build_reward_funcs
    from tgsr.train.common import load_audio_lm
    from tgsr.train.config import load_config
    from tgsr.train.datasets import grpo_rows
    from tgsr.train.grpo import AudioGRPOTrainer

    omni = hub_layout_dir("Qwen/Qwen2.5-Omni-7B")
    args, tg = load_config("grpo", None, [], extra={
        "tgsr.model": str(omni), "tgsr.train_file": "unused", "output_dir": str(tmp_path), "beta": 0.04,
        "per_device_train_batch_size": 2, "num_generations": 2, "max_completion_length": 4, "max_steps": 1,
        "logging_steps": 1, "save_strategy": "no", "disable_tqdm": True})
    lm = load_audio_lm(str(omni), tg, args)
    rows = grpo_rows(str(toy_corpus / "train" / "qa.jsonl"), "direct").rows[:2]
    funcs, _ = build_reward_funcs({"answer": 1.0})
    args.reward_weights = [1.0]
    trainer = AudioGRPOTrainer(lm, funcs, args, Dataset.from_list(rows), logprob_check_steps=1)
    assert type(trainer.ref_model).__name__ == "Qwen2_5OmniThinkerForConditionalGeneration"
    assert trainer.reference_path == str(omni)
    trainer.train()
    assert trainer.state.global_step == 1 and trainer.logprob_checks[0]["passed"]


# ---------------------------------------------------------------- placement and the objective

def test_placement_on_a_machine_without_a_gpu():
    from tgsr.models.placement import choose_placement

    if torch.cuda.is_available():
        pytest.skip("CPU-only behaviour")
    p = choose_placement("auto", None, n_params=10**9)
    assert (p.device, p.dtype, p.device_map) == ("cpu", "float32", None)
    assert choose_placement("cpu", "bfloat16").dtype == "bfloat16"
    with pytest.raises(TgsrError, match="no CUDA GPU"):
        choose_placement("cuda")
    with pytest.raises(TgsrError, match="unknown device"):
        choose_placement("tpu")
    with pytest.raises(TgsrError, match="unknown dtype"):
        choose_placement("cpu", "int8")


def test_checkpoint_parameters_reads_only_the_thinker_of_a_full_omni_folder(hub_layout_dir):
    from tgsr.models import load_model
    from tgsr.models.placement import checkpoint_parameters

    omni = hub_layout_dir("Qwen/Qwen2.5-Omni-7B")
    thinker = checkpoint_parameters(omni, prefix="thinker.")
    assert thinker < checkpoint_parameters(omni)
    assert thinker == sum(p.numel() for p in load_model(omni).model.parameters())


@pytest.mark.parametrize("recipe", ["qwen2.5-omni-7b", "qwen2-audio", "audio-flamingo-3", "tiny-cpu", "demo/full",
                                    "demo/quick"])
def test_every_grpo_recipe_pins_the_papers_objective(recipe):
    """ms-swift's GRPO defaults (the authors' framework), not TRL's: see docs/training.md. The
    demo's recipes too (the demo sets the model and the data per stage; its G is 4 on a CPU)."""
    from tgsr.train.config import load_config

    demo = recipe.startswith("demo/")
    fill = ["tgsr.model=m", "tgsr.train_file=t.jsonl"] if demo else []
    args, tg = load_config("grpo", RECIPES / recipe / "grpo.yaml", fill)
    assert args.loss_type == "grpo" and args.scale_rewards == "group" and args.beta == 0.04
    assert args.epsilon == 0.2 and args.num_iterations == 1 and not args.use_bias_correction_kl
    assert args.temperature == 0.8 and args.num_generations == (4 if demo else 8)
    assert tg.logprob_check_steps >= 1  # the audio guard is on
    import dataclasses

    trl_default = next(f.default for f in dataclasses.fields(type(args)) if f.name == "loss_type")
    assert trl_default == "dapo"  # what TRL would have used


def test_placement_spreads_a_model_too_large_for_one_gpu(monkeypatch):
    """The decision logic with a simulated machine of two 16 GB-free GPUs (no GPU is needed)."""
    import tgsr.models.placement as pl

    cuda = torch.cuda
    monkeypatch.setattr(cuda, "is_available", lambda: True)
    monkeypatch.setattr(cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(cuda, "device_count", lambda: 2)
    monkeypatch.setattr(cuda, "current_device", lambda: 0)
    monkeypatch.setattr(cuda, "mem_get_info", lambda i=0: (16e9, 80e9))
    small = pl.choose_placement("auto", None, n_params=3e9)           # 6 GB in bf16: one GPU
    assert (small.device, small.dtype, small.device_map) == ("cuda:0", "bfloat16", "cuda:0")
    big = pl.choose_placement("auto", None, n_params=8.9e9)           # 17.8 GB > 80% of 16 GB: spread
    assert (big.device, big.device_map) == ("auto", "auto")
    pinned = pl.choose_placement("cuda:1", None, n_params=8.9e9)      # a named GPU is never spread
    assert pinned.device_map == "cuda:1"
    with pytest.raises(TgsrError, match="only 2 GPU"):
        pl.choose_placement("cuda:5")


def test_framework_hooks_match_and_a_changed_signature_fails_at_once(monkeypatch):
    from trl.trainer import grpo_trainer

    from tgsr.train.framework_check import HOOKS, check_hooks

    check_hooks()  # the installed, pinned versions pass
    assert "trl.trainer.grpo_trainer:GRPOTrainer._generate_single_turn" in HOOKS

    def renamed(self, prompt_token_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        raise AssertionError("never called")

    monkeypatch.setattr(grpo_trainer.GRPOTrainer, "_generate_single_turn", renamed)
    with pytest.raises(TgsrError) as e:
        check_hooks()
    assert "install trl==1.16.0" in str(e.value)
    assert "_generate_single_turn: parameters ('self', 'prompt_token_ids'" in str(e.value)
