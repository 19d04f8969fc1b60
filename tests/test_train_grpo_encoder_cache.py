"""Frozen audio encoder: outputs computed once per clip per step, identical log-probs and updates."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("trl")

from test_train_grpo import FAMILIES, _gap, _trainer  # noqa: E402
from tgsr.train.common import audio_encoder_modules, freeze, weights_digest  # noqa: E402


def _frozen_trainer(model_dir, corpus, out_dir, *, encoder_cache=True, **extra):
    """A trainer whose policy audio tower is frozen before TRL sees the model."""
    from tgsr.train import grpo

    real = grpo.AudioGRPOTrainer

    class Frozen(real):
        def __init__(self, audio_lm, *a, **kw):
            freeze(audio_encoder_modules(audio_lm.model))
            super().__init__(audio_lm, *a, encoder_cache=encoder_cache, **kw)

    grpo.AudioGRPOTrainer = Frozen
    try:
        return _trainer(model_dir, corpus, out_dir, **extra)
    finally:
        grpo.AudioGRPOTrainer = real


def _policy_cache(trainer):
    tower = audio_encoder_modules(trainer.model)[0][1]
    return next(c for c in trainer.encoder_caches if c.tower is tower)


@pytest.mark.parametrize("family", FAMILIES)
def test_encoder_cache_parity_once_per_clip(family, tiny_model_dir, toy_corpus, tmp_path):
    """fp32 parity within 1e-5 with the memo on; each clip encoded once per step; same numbers as without."""
    trainer, rows = _frozen_trainer(tiny_model_dir(family), toy_corpus, tmp_path, n_rows=6, beta=0.04,
                                    logprob_check_steps=100)
    cache = _policy_cache(trainer)
    assert len(trainer.encoder_caches) == 2  # the policy's tower and the reference model's, each its own memo
    trainer.train()  # 6 rows = 3 clips x G=2: generation, sampling check, reference pass, loss pass
    assert trainer.logprob_checks[0]["tokens"] > 0 and trainer.logprob_checks[0]["max"] < 1e-5
    # generation prefills the 3 clips once (3 misses); the sampling check and the loss pass hit (6 + 6)
    assert cache.misses == 3 and cache.hits >= 2 * 6 and cache.bypassed == 0

    batch = [dict(rows[i]) for i in range(3) for _ in range(2)]
    out = trainer._generate_and_score_completions(batch)
    check = trainer.last_logprob_check
    assert _gap(check["policy"], check["sampling"], check["mask"]) < 1e-5
    assert cache.misses == 6  # cleared at the new generation batch: its 3 clips encoded once more

    ids = torch.cat([out["prompt_ids"], out["completion_ids"]], 1)
    att = torch.cat([out["prompt_mask"], out["completion_mask"]], 1)
    n = out["completion_ids"].size(1)
    audio_rows = out["audio_rows"]
    with torch.no_grad():
        trainer._active_rows = audio_rows
        cached, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, att, n)
        # Mis-paired audio still shows: the memo looks rows up by their own features.
        trainer._active_rows = audio_rows[2:] + audio_rows[:2]
        mispaired, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, att, n)
        cache.remove()  # the plain encoder, run on every row
        trainer._active_rows = audio_rows
        plain, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, att, n)
        trainer._active_rows = None
    mask = out["completion_mask"].bool()
    assert _gap(cached, plain, mask) < 1e-5
    assert _gap(mispaired, plain, mask) > 1e-3


def test_encoder_cache_gives_the_same_update(tiny_qwen2_audio_dir, toy_corpus, tmp_path):
    """Qwen2-Audio's projector trains on top of cached encoder outputs: same loss, same weights."""
    results = {}
    for on in (True, False):
        trainer, _ = _frozen_trainer(tiny_qwen2_audio_dir, toy_corpus, tmp_path / str(on), n_rows=6,
                                     encoder_cache=on, beta=0.04, logprob_check_steps=0)
        assert bool(trainer.encoder_caches) == on
        # A reward that differs between the copies of a prompt, so the step has a gradient.
        trainer.reward_funcs = [lambda completions, **kw: [float(len(set(str(c)))) for c in completions]]
        proj = trainer.model.model.multi_modal_projector.linear.weight
        before = proj.detach().clone()
        trainer.train()
        assert not torch.equal(before, proj.detach())  # the projector did learn through the cached outputs
        loss = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        results[on] = (loss, weights_digest(trainer.model), proj.detach().clone())
    assert results[True][0] == pytest.approx(results[False][0], abs=1e-6)
    assert torch.allclose(results[True][2], results[False][2], atol=1e-6)


def test_encoder_cache_off_when_the_encoder_trains(tiny_omni_dir, toy_corpus, tmp_path):
    from tgsr.train.encoder_cache import EncoderCache

    trainer, _ = _trainer(tiny_omni_dir, toy_corpus, tmp_path, n_rows=6, beta=0.0)
    tower = audio_encoder_modules(trainer.model)[0][1]
    assert any(p.requires_grad for p in tower.parameters())
    assert trainer.encoder_caches == []  # nothing to cache: the policy encoder trains, no reference model
    assert "forward" not in tower.__dict__

    # Installed on a frozen tower that is unfrozen later: every call goes to the real encoder.
    freeze([("audio_tower", tower)])
    cache = EncoderCache(tower)
    feats = trainer.audio_lm.featurize_one(torch.randn(16000).numpy())
    lens = feats["feature_attention_mask"].sum(-1)
    x = feats["input_features"][0]
    tower(x, feature_lens=lens, aftercnn_lens=(lens - 1) // 2 + 1)
    tower(x, feature_lens=lens, aftercnn_lens=(lens - 1) // 2 + 1)
    assert (cache.misses, cache.hits, cache.bypassed) == (1, 1, 0)
    next(tower.parameters()).requires_grad_(True)
    out = tower(x, feature_lens=lens, aftercnn_lens=(lens - 1) // 2 + 1)
    assert cache.bypassed == 1 and out.last_hidden_state.requires_grad
    cache.remove()
    assert "forward" not in tower.__dict__
