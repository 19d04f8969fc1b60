"""Activation checkpointing in GRPO: the layer choice survives TRL's toggling, is exact, and ``auto`` plans it."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("trl")

from tgsr.train.checkpointing import (  # noqa: E402
    CheckpointPlanner,
    checkpoint_layers,
    checkpointed,
    kept_activation_bytes,
    plan_checkpointing,
    set_checkpointed,
)
from tgsr.train.config import ConfigError, load_config  # noqa: E402

FAMILY = "qwen2.5-omni"


def _trainer(tiny_model_dir, toy_corpus, tmp_path, **extra):
    from test_train_grpo import _trainer as grpo_trainer

    return grpo_trainer(tiny_model_dir(FAMILY), toy_corpus, tmp_path, n_rows=6, **extra)


def _attention_calls(model) -> tuple[list[int], list]:
    """Entries into each checkpointable layer's attention: a checkpointed layer enters it again in the
    backward (a pre-hook: torch's recompute stops early, before a later submodule's forward ends)."""
    counts = [0] * len(checkpoint_layers(model))
    handles = []
    for i, layer in enumerate(checkpoint_layers(model)):
        attn = getattr(layer, "self_attn", None) or layer.attn

        def hook(*_, i=i):
            counts[i] += 1
        handles.append(attn.register_forward_pre_hook(hook))
    return counts, handles


def test_every_n_layers_survives_the_grpo_step_and_only_those_layers_recompute(tiny_model_dir, toy_corpus, tmp_path):
    """TRL re-enables checkpointing after generation with ``every_n_layers`` handed to torch's
    checkpoint (an error at the loss forward) and would checkpoint every layer again."""
    trainer, _ = _trainer(tiny_model_dir, toy_corpus, tmp_path, max_steps=2, activation_checkpointing=True,
                          activation_checkpointing_kwargs={"every_n_layers": 2})
    counts, handles = _attention_calls(trainer.model)
    try:
        trainer.train()
    finally:
        for h in handles:
            h.remove()
    n = len(counts)
    assert checkpointed(trainer.model) == [i % 2 == 0 for i in range(n)]
    # same-kind neighbours: the checkpointed one ran once more per loss forward (2 steps, one micro-batch each)
    kinds = [type(m) for m in checkpoint_layers(trainer.model)]
    pairs = [(i, i + 1) for i in range(0, n - 1) if kinds[i] is kinds[i + 1] and counts[i] + counts[i + 1]]
    assert len(pairs) == 2, (kinds, counts)  # the audio tower's and the decoder's (the vision tower never runs)
    assert all(abs(counts[a] - counts[b]) == 2 for a, b in pairs), counts


def _loss_grads(trainer, output, flags) -> tuple[float, dict[str, torch.Tensor]]:
    set_checkpointed(trainer.model, flags)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by the Trainer's loop, which this bypasses
    trainer.model.zero_grad(set_to_none=True)
    loss = trainer.compute_loss(trainer.model, output)
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}


def test_checkpointing_fewer_layers_gives_the_same_loss_and_gradients(tiny_model_dir, toy_corpus, tmp_path):
    trainer, rows = _trainer(tiny_model_dir, toy_corpus, tmp_path)
    trainer.model.activation_checkpointing_enable()
    batch = [dict(rows[i]) for i in range(3) for _ in range(2)]
    output = trainer._generate_and_score_completions(batch)
    # equal rewards in a group leave no advantage, hence no gradient: give the rows some
    output["advantages"] = torch.linspace(-1.0, 1.0, len(batch))
    n = len(checkpoint_layers(trainer.model))
    ref_loss, ref = _loss_grads(trainer, output, [True] * n)
    assert ref and any(g.abs().sum() > 0 for g in ref.values())
    for flags in ([i % 2 == 0 for i in range(n)], [False] * n):
        loss, grads = _loss_grads(trainer, output, flags)
        assert loss == pytest.approx(ref_loss, abs=1e-6)
        assert grads.keys() == ref.keys()
        assert max((grads[k] - ref[k]).abs().max().item() for k in ref) < 1e-6


def test_kept_activations_are_measured_and_grow_with_the_sequence(tiny_omni_dir):
    from tgsr.models import load_model

    model = load_model(str(tiny_omni_dir)).model
    captured = {}
    layer = checkpoint_layers(model)[-1]  # a decoder layer
    h = layer.register_forward_pre_hook(lambda m, a, kw: captured.update(args=a, kwargs=kw), with_kwargs=True)
    sizes = []
    for length in (16, 32):
        ids = torch.randint(10, 100, (2, length))
        with torch.no_grad():
            model(input_ids=ids)
        sizes.append(kept_activation_bytes(layer, captured["args"], captured["kwargs"], input_requires_grad=True))
    h.remove()
    assert sizes[0] > 0
    assert 1.5 < sizes[1] / sizes[0] < 4.5, sizes


def test_the_plan_leaves_layers_unchecked_while_the_memory_holds():
    kept = [100] * 4
    everything = plan_checkpointing(1000, 10_000, kept)
    assert everything.checkpointed == [False] * 4 and everything.predicted_peak == 1400
    two = plan_checkpointing(1000, 1400, kept, headroom=0.9)  # budget 1260: two layers fit
    assert two.checkpointed == [True, True, False, False] and two.n_checkpointed == 2
    scaled = plan_checkpointing(1000, 1400, kept, scale=2.0, headroom=0.9)  # 200 per layer: one fits
    assert scaled.checkpointed == [True, True, True, False]
    full = plan_checkpointing(2000, 1400, kept)
    assert full.checkpointed == [True] * 4 and "already fills" in full.reason


@pytest.mark.parametrize("usable, expect_all_checkpointed", [(10 ** 12, False), (1, True)])
def test_auto_plans_after_the_first_step_from_the_measured_peak(tiny_model_dir, toy_corpus, tmp_path, usable,
                                                                expect_all_checkpointed):
    """A simulated device (peak 1 MB, ``usable`` bytes): plenty of room un-checkpoints every layer that
    keeps activations, none leaves all checkpointed; the next step trains with the plan."""
    planner = CheckpointPlanner(memory=lambda: (10 ** 6, usable), reset=lambda: None)
    trainer, _ = _trainer(tiny_model_dir, toy_corpus, tmp_path, max_steps=2, activation_checkpointing=True)
    trainer.checkpoint_planner = planner
    trainer.train()
    plan = planner.plan
    assert plan is not None and not planner.pending
    kinds = [type(m).__name__ for m in checkpoint_layers(trainer.model)]
    # both towers train here and keep activations; the vision tower never runs
    assert [b > 0 for b in plan.kept_per_layer] == ["Vision" not in k for k in kinds]
    assert plan.scale >= 1.0
    assert checkpointed(trainer.model) == plan.checkpointed
    assert plan.checkpointed == [expect_all_checkpointed] * len(plan.checkpointed)


def test_auto_on_the_cpu_keeps_every_layer_checkpointed(tiny_model_dir, toy_corpus, tmp_path):
    trainer, _ = _trainer(tiny_model_dir, toy_corpus, tmp_path, max_steps=1, activation_checkpointing=True)
    trainer.checkpoint_planner = CheckpointPlanner()  # what tgsr.auto_checkpointing builds: the CUDA reader
    trainer.train()
    assert trainer.checkpoint_planner.plan is None and not trainer.checkpoint_planner.pending
    assert all(checkpointed(trainer.model))


def test_every_n_layers_auto_in_a_recipe(tmp_path):
    base = {"tgsr.model": "m", "tgsr.train_file": "t", "output_dir": str(tmp_path)}
    args, tg = load_config("grpo", None, extra={**base, "activation_checkpointing": True,
                                                 "activation_checkpointing_kwargs": {"every_n_layers": "auto"}})
    assert tg.auto_checkpointing
    assert "every_n_layers" not in (args.activation_checkpointing_kwargs or {})
    with pytest.raises(ConfigError, match="activation_checkpointing: true"):
        load_config("grpo", None, extra={**base, "activation_checkpointing_kwargs": {"every_n_layers": "auto"}})
    with pytest.raises(ConfigError, match="GRPO"):
        load_config("sft", None, extra={**base, "activation_checkpointing": True,
                                        "activation_checkpointing_kwargs": {"every_n_layers": "auto"}})
