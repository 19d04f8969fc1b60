"""The GRPO step's phase profiler (timed by the trainer itself) and the cost model's floors."""

from __future__ import annotations

import itertools

import pytest
import torch

from tgsr.train.cost_model import full_finetune_bytes, optimizer_bytes, step_floors
from tgsr.train.profiling import PHASES, PhaseProfiler


def test_phases_are_exclusive_and_add_up_to_the_step():
    ticks = itertools.count()  # each clock reading advances one second
    prof = PhaseProfiler(clock=lambda: float(next(ticks)))
    prof.begin_step()                       # t=0
    with prof.phase("backward"):            # t=1
        with prof.phase("generation"):      # t=2
            with prof.phase("features"):    # t=3 .. 4
                pass
        # generation stops at t=5: 3 s elapsed, 1 of them in features
        with prof.phase("loss_forward"):    # t=6 .. 7
            pass
    # backward stops at t=8: 7 s elapsed, 3 + 1 nested
    prof.start("optimizer")                 # t=9
    prof.stop("optimizer")                  # t=10
    step = prof.end_step()                  # t=11
    assert step.phases == {"features": 1.0, "generation": 2.0, "loss_forward": 1.0, "backward": 3.0,
                           "optimizer": 1.0}
    assert step.step_s == 11.0 and step.other_s == 3.0
    secs = step.seconds()
    assert set(secs) == set(PHASES) | {"other", "step"} and sum(v for k, v in secs.items() if k != "step") == 11.0
    with pytest.raises(RuntimeError, match="'features' stopped while \\['generation'\\] are open"):
        prof.start("generation")
        prof.stop("features")


def test_floors_by_hand():
    shape = {"layers": 2, "heads": 2, "head_dim": 4, "kv_heads": 1, "text_layer_params": 1000,
             "lm_head_params": 200, "audio_params": 300}
    gens = [{"prompt_tokens": [10, 6], "completion_tokens": [4, 4]}]
    ceilings = {"copy_bandwidth_Bps": 1e3, "matmul_flops": 1e4}
    common = dict(elt_bytes=2, audio_frames_per_row=5, trainable_audio=False, lora_params=0, opt_bytes=600.0)
    f = step_floors(shape, gens, ceilings, lora=False, recompute=0.0, **common)
    # generation: 4 tokens x (1000 + 200) weights x 2 bytes / 1000 B/s
    assert f["decoded_weight_bytes"] == 2400 and f["generation_floor_s"] == pytest.approx(9.6)
    # KV: 2 layers x (K, V) x 1 head x 4 dims x 2 bytes = 32 B per position; reads 4p + 4*3/2 per row
    assert f["kv_bytes_read"] == 32 * ((4 * 10 + 6) + (4 * 6 + 6))
    # prefill: linear 2*1000*16 + attention 2*2*8*(10^2 + 6^2) + audio 2*300*(2 rows x 5 frames)
    assert f["prefill_flops"] == 32000 + 4352 + 6000
    assert f["generation_floor_with_kv_prefill_s"] == pytest.approx(9.6 + 2432 / 1e3 + 42352 / 1e4)
    # one pass over prompt + completion (14 and 10 tokens): linear 48000, head over 8 completion tokens
    # 3200, attention 2*2*8*(196 + 100) = 9472, audio 6000
    assert f["logprob_pass_flops"] == 66672 and f["logprob_pass_floor_s"] == pytest.approx(6.6672)
    # full fine-tuning backward: 2 x (linear + head) + 2 x attention; the frozen audio tower none
    assert f["loss_fwd_bwd_flops"] == 66672 + 2 * 51200 + 2 * 9472
    assert f["optimizer_floor_s"] == pytest.approx(0.6)
    ckpt = step_floors(shape, gens, ceilings, lora=False, recompute=1.0, **common)
    assert ckpt["loss_fwd_bwd_flops"] - f["loss_fwd_bwd_flops"] == 48000 + 9472  # one recomputed forward
    half = step_floors(shape, gens, ceilings, lora=False, recompute=0.5, **common)
    assert half["loss_fwd_bwd_flops"] - f["loss_fwd_bwd_flops"] == (48000 + 9472) / 2  # half the layers
    # G = 2 rows of one prompt: the prefill once (10 tokens, one clip), the KV reads and decode per row
    shared = step_floors(shape, [{"prompt_tokens": [10, 10], "completion_tokens": [4, 4]}], ceilings, lora=False,
                         recompute=0.0, generations_per_prompt=2, **common)
    assert shared["prefill_flops"] == 2 * 1000 * 10 + 2 * 2 * 8 * 100 + 2 * 300 * 5
    assert shared["kv_bytes_read"] == 32 * 2 * (4 * 10 + 6)
    with pytest.raises(ValueError, match="groups of 2"):
        step_floors(shape, [{"prompt_tokens": [10], "completion_tokens": [4]}], ceilings, lora=False,
                    recompute=0.0, generations_per_prompt=2, **common)
    lora = step_floors(shape, gens, ceilings, lora=True, recompute=0.0, **{**common, "lora_params": 50})
    assert lora["loss_fwd_bwd_flops"] == 66672 + 51200 + 2 * 9472  # frozen weights: input gradients only
    assert lora["decoded_weight_bytes"] == (1000 + 200 + 50) * 2
    trained_audio = step_floors(shape, gens, ceilings, lora=False, recompute=0.0,
                                **{**common, "trainable_audio": True})
    assert trained_audio["loss_fwd_bwd_flops"] - f["loss_fwd_bwd_flops"] == 2 * 6000


def test_optimizer_and_memory_bytes_by_hand():
    p = torch.nn.Parameter(torch.zeros(10))
    opt = torch.optim.AdamW([p], lr=0.1)
    assert optimizer_bytes(opt) == 0  # no gradient, no state: nothing to move
    p.grad = torch.ones(10)
    opt.step()
    # param read + write (80 B), grad read (40), exp_avg and exp_avg_sq read + write (160); the step counter is not
    assert optimizer_bytes(opt) == 80 + 40 + 160
    shape = {"total_params": 100, "vision_params": 20}
    # policy + reference in bf16 (2 x 100 x 2) + trainable 80 x (bf16 grad 2 + fp32 AdamW states 8)
    assert full_finetune_bytes(shape, 2, 8) == 400 + 80 * 10


@pytest.mark.parametrize("num_iterations,old_pass", [(1, False), (2, True)])
def test_trainer_times_its_own_passes(num_iterations, old_pass, tiny_omni_dir, toy_corpus, tmp_path):
    from test_train_grpo import _trainer

    trainer, rows = _trainer(tiny_omni_dir, toy_corpus, tmp_path, n_rows=6, beta=0.04, logprob_check_steps=1,
                             gradient_accumulation_steps=2, num_iterations=num_iterations,
                             max_steps=num_iterations)
    prof = trainer.profile(PhaseProfiler("cpu"))
    trainer.train()
    assert len(prof.steps) == num_iterations
    first = prof.steps[0]
    # exclusive phases: together with "other" they are exactly the step
    for s in prof.steps:
        assert sum(s.phases.values()) + s.other_s == pytest.approx(s.step_s)
        assert set(s.phases) <= set(PHASES)
    # which passes ran in the generating step, named by the trainer
    ran = set(first.phases)
    assert {"features", "encoder", "generation", "rewards", "ref_logprobs", "logprob_check", "loss_forward",
            "backward", "optimizer"} <= ran
    assert ("old_logprobs" in ran) is old_pass
    # one generation batch: 6 clips x G=2 rows, completions within max_completion_length
    assert len(first.generations) == 1
    gen = first.generations[0]
    assert len(gen["prompt_tokens"]) == len(gen["completion_tokens"]) == 12
    assert all(1 <= c <= 8 for c in gen["completion_tokens"])
    if num_iterations == 2:  # the second step reuses the batch: no generation, no features
        assert "generation" not in prof.steps[1].phases and not prof.steps[1].generations
    assert trainer.feature_cache.misses == 6  # featurised once per clip, timed as "features"
