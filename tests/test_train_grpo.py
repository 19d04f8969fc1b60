"""AudioGRPOTrainer: audio reaches every forward pass, rows stay paired, caching, learning."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("trl")

from trl import GRPOTrainer  # noqa: E402

from tgsr.train.config import load_config  # noqa: E402

FAMILIES = ["qwen2.5-omni", "qwen2-audio", "audio-flamingo-3"]


def _grpo_args(out_dir, **extra):
    base = {"tgsr.model": "unused", "tgsr.train_file": "unused", "output_dir": str(out_dir),
            "per_device_train_batch_size": 6, "num_generations": 2, "max_completion_length": 8,
            "max_steps": 1, "logging_steps": 1, "save_strategy": "no", "seed": 0, "beta": 0.0,
            "learning_rate": 1e-4, "temperature": 0.8, "disable_tqdm": True}
    base.update(extra)
    return load_config("grpo", None, [], extra=base)


def _trainer(model_dir, corpus, out_dir, n_rows=None, **extra):
    from datasets import Dataset

    from tgsr.rewards import build_reward_funcs
    from tgsr.train.common import load_audio_lm
    from tgsr.train.datasets import grpo_rows
    from tgsr.train.grpo import AudioGRPOTrainer

    opts = {k: extra.pop(k) for k in ("feature_cache", "logprob_check_steps") if k in extra}
    args, tg = _grpo_args(out_dir, **extra)
    lm = load_audio_lm(str(model_dir), tg, args)
    rows = grpo_rows(str(corpus / "train" / "qa.jsonl"), "direct").rows[:n_rows]
    funcs, _ = build_reward_funcs({"answer": 1.0})
    args.reward_weights = [1.0]
    return AudioGRPOTrainer(lm, funcs, args, Dataset.from_list(rows), ref_model=str(model_dir), **opts), rows


def _gap(a, b, mask):
    return (a.float() - b.float()).abs()[mask].max().item()


@pytest.mark.parametrize("family", FAMILIES)
def test_logprobs_match_sampling_and_need_the_right_audio(family, tiny_model_dir, toy_corpus, tmp_path):
    """Parity in fp32 within 1e-5, inside a real training step; dropping or mis-pairing audio breaks it."""
    trainer, rows = _trainer(tiny_model_dir(family), toy_corpus, tmp_path, n_rows=6, logprob_check_steps=100)
    trainer.train()
    first = trainer.logprob_checks[0]
    assert first["tokens"] > 0 and first["max"] < 1e-5

    # One more generation batch: 3 prompts x G=2, each prompt with its own clip.
    batch = [dict(rows[i]) for i in range(3) for _ in range(2)]
    assert len({r["audio"] for r in batch}) == 3
    out = trainer._generate_and_score_completions(batch)
    check = trainer.last_logprob_check
    mask = check["mask"]
    assert _gap(check["policy"], check["sampling"], mask) < 1e-5
    assert [r.path for r in out["audio_rows"]] == [r["audio"] for r in batch]

    ids = torch.cat([out["prompt_ids"], out["completion_ids"]], 1)
    att = torch.cat([out["prompt_mask"], out["completion_mask"]], 1)
    n = out["completion_ids"].size(1)
    with torch.no_grad():
        # TRL's own log-prob pass: it knows image keys only, so the audio silently goes missing.
        no_audio, _, _ = GRPOTrainer._get_per_token_logps_and_entropies(trainer, trainer.model, ids, att, n)
        # Audio rows mis-paired with prompts (what tiling with `repeat` instead of `repeat_interleave` does).
        rows_ = out["audio_rows"]
        trainer._active_rows = rows_[2:] + rows_[:2]
        mispaired, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, att, n)
        trainer._active_rows = None
    assert _gap(no_audio, check["sampling"], mask) > 1e-2
    assert _gap(mispaired, check["sampling"], mask) > 1e-3


def test_forward_without_audio_rows_is_refused(tiny_omni_dir, toy_corpus, tmp_path):
    from tgsr.errors import TgsrError

    trainer, _ = _trainer(tiny_omni_dir, toy_corpus, tmp_path, n_rows=6)
    ids = torch.ones(2, 5, dtype=torch.long)
    with pytest.raises(TgsrError, match="without its audio"):
        trainer._get_per_token_logps_and_entropies(trainer.model, ids, torch.ones_like(ids), 2)


@pytest.mark.parametrize("cache", [True, False])
def test_features_once_per_clip(cache, tiny_omni_dir, toy_corpus, tmp_path):
    """Cached: one featurisation per distinct clip for G samples and every pass. Uncached: per row and pass."""
    trainer, _ = _trainer(tiny_omni_dir, toy_corpus, tmp_path, n_rows=6, feature_cache=cache, beta=0.04,
                          gradient_accumulation_steps=2, logprob_check_steps=0)
    calls = []
    featurize = trainer.feature_cache._featurize_one
    trainer.feature_cache._featurize_one = lambda a: calls.append(1) or featurize(a)
    trainer.train()  # one optimizer step = 2 micro-batches from one generation batch of 12 rows (6 clips x G=2)
    if cache:
        assert len(calls) == 6
        assert trainer.feature_cache.stats()["hits"] == 6
    else:
        # generation's prompts (12 rows) + its shared prefill (6 clips) + reference pass (12) + loss
        # passes (2 micro-batches of 6)
        assert len(calls) == 42


def test_reward_rises_when_listening_pays(warm_pitch_model, toy_corpus, tmp_path):
    """The answer depends only on the audio; GRPO raises both the logged reward and P(correct answer)."""
    warm = warm_pitch_model
    from tgsr.models import load_model

    before = _p_correct(load_model(warm), toy_corpus)
    # 4 prompts x G=8 per step, the paper's temperature 0.8; answer reward only
    trainer, _ = _trainer(warm, toy_corpus, tmp_path / "grpo", per_device_train_batch_size=32, num_generations=8,
                          max_completion_length=10, temperature=0.8, learning_rate=5e-4, max_steps=20,
                          lr_scheduler_type="constant", logprob_check_steps=1)
    trainer.train()
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    assert len(rewards) == 20
    assert sum(rewards[10:]) / 10 > sum(rewards[:10]) / 10
    trainer.audio_lm.model.eval()
    after = _p_correct(trainer.audio_lm, toy_corpus)  # held-out clips: the policy relies on the audio more
    assert after > before + 0.03


def _p_correct(lm, corpus) -> float:
    """Mean over held-out clips of P(correct answer line) / P(either answer line): the policy's accuracy."""
    from tgsr.audio import load_audio
    from tgsr.prompts import final_answer_line
    from tgsr.train.datasets import clean_conversation, grpo_rows

    rows = grpo_rows(str(corpus / "test" / "qa.jsonl"), "direct").rows
    probs = []
    with torch.no_grad():
        for r in rows:
            feats = lm.featurize_one(load_audio(r["audio"]))
            inputs = lm.build_inputs([feats, feats], [clean_conversation(r["prompt"])] * 2)
            lines = [final_answer_line(x, r["choices"]) for x in "ab"]
            comp = [lm._encode(t) + [lm.im_end_id] for t in lines]
            width = max(map(len, comp))
            ids = torch.tensor([c + [lm.pad_token_id] * (width - len(c)) for c in comp])
            mask = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in comp])
            lp = lm.completion_logprobs(inputs, ids, mask).sum(-1)
            p = torch.softmax(lp, 0)["ab".index(r["answer"])].item()
            probs.append(p)
    return sum(probs) / len(probs)


class _Killed(Exception):
    pass


def test_grpo_resume_after_kill_continues_exactly(warm_pitch_model, toy_corpus, tmp_path):
    """Killed after the step-2 checkpoint and resumed: steps 3-4 (sampling included) match an uninterrupted run."""
    import json

    from transformers import TrainerCallback

    from tgsr.train.grpo import run_grpo

    def config(out):
        return load_config("grpo", None, [], extra={
            "tgsr.model": str(warm_pitch_model), "tgsr.train_file": str(toy_corpus / "train" / "qa.jsonl"),
            "tgsr.ablation": "no_grounding", "tgsr.prompt_style": "direct", "output_dir": str(out), "beta": 0.04,
            "learning_rate": 1e-3, "max_steps": 4, "per_device_train_batch_size": 8, "num_generations": 4,
            "max_completion_length": 8, "logging_steps": 1, "save_strategy": "steps", "save_steps": 2,
            "seed": 0, "disable_tqdm": True})

    class KillAfterSave(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            if state.global_step == 2:
                raise _Killed()

    run_grpo(*config(tmp_path / "full"))
    with pytest.raises(_Killed):
        run_grpo(*config(tmp_path / "killed"), callbacks=[KillAfterSave()])
    run_grpo(*config(tmp_path / "killed"), resume=True)

    def history(run):
        state = json.loads((tmp_path / run / "checkpoint-4" / "trainer_state.json").read_text())
        return {h["step"]: (h["loss"], h["reward"]) for h in state["log_history"] if "loss" in h}

    full, resumed = history("full"), history("killed")
    for step in (3, 4):
        assert resumed[step][0] == pytest.approx(full[step][0], abs=1e-7)
        assert resumed[step][1] == pytest.approx(full[step][1], abs=1e-7)


def test_grpo_with_lora_and_frozen_encoder(tiny_omni_dir, toy_corpus, tmp_path):
    """LoRA: the reference is the adapter-disabled model; the saved folder is a merged plain model."""
    from tgsr.models import load_model
    from tgsr.train.grpo import run_grpo

    out = tmp_path / "lora"
    args, tg = load_config("grpo", None, [], extra={
        "tgsr.model": str(tiny_omni_dir), "tgsr.train_file": str(toy_corpus / "train" / "qa.jsonl"),
        "tgsr.max_train_samples": 4, "tgsr.lora": True, "tgsr.lora_r": 4, "tgsr.freeze_audio_encoder": True,
        "tgsr.prompt_style": "direct", "output_dir": str(out), "per_device_train_batch_size": 4,
        "num_generations": 2, "max_completion_length": 6, "max_steps": 1, "beta": 0.04, "save_strategy": "no",
        "seed": 0, "disable_tqdm": True})
    summary = run_grpo(args, tg)
    assert summary["lora"] and summary["frozen_audio_parameters"] > 0
    assert summary["logprob_checks"][0]["max"] < 1e-5
    merged = load_model(out)
    assert not any("lora" in n for n, _ in merged.model.named_parameters())
