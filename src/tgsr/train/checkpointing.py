"""Activation checkpointing: keep the layers the user chose, and choose them from the measured peak.

transformers checkpoints every n-th ``GradientCheckpointingLayer`` (``activation_checkpointing_kwargs:
{every_n_layers: n}``). Two things tgsr adds:

- **The choice survives a GRPO step.** TRL's GRPOTrainer turns checkpointing off around generation
  and its no-grad log-prob passes, and back on with ``gradient_checkpointing_kwargs`` handed to
  torch's ``checkpoint``: ``every_n_layers`` is then an unexpected keyword (an error at the next
  loss forward), and without it every layer would be checkpointed again. ``kept_checkpointing``
  restores each layer's own flag and checkpoint function after those passes.
- **``every_n_layers: auto``: the fewest checkpointed layers that fit.** Each checkpointed layer
  costs one recomputed forward in the backward pass. In the first training step every layer is
  checkpointed; the step's loss-pass peak is measured, and so is what one layer of each kind
  (audio-encoder layer, decoder layer) would keep for its backward if it were not checkpointed:
  the layer is run once more on the very inputs it had in the loss forward, under the same
  autocast, and the storages autograd saves are counted (parameters and the layer's input,
  which a checkpointed layer keeps anyway, excluded). ``plan_checkpointing`` then leaves
  layers un-checkpointed, last layer first, while the measured peak plus their kept activations,
  scaled to the longest sequence the run can produce, stays under ``headroom`` of the memory
  this process can have. The plan is made once, on every process alike (the largest figures of
  all ranks), and logged.

Without a device memory to measure (the CPU), ``auto`` keeps every layer checkpointed and says so.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

import torch
from transformers.modeling_layers import GradientCheckpointingLayer

log = logging.getLogger(__name__)

AUTO = "auto"
HEADROOM = 0.9  # fraction of the device memory a plan may fill: allocator fragmentation, longer batches


def checkpoint_layers(model: torch.nn.Module) -> list[GradientCheckpointingLayer]:
    """The layers transformers can checkpoint, in the order its ``every_n_layers`` counts them."""
    return [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]


def checkpointed(model: torch.nn.Module) -> list[bool]:
    return [bool(m.gradient_checkpointing) for m in checkpoint_layers(model)]


@contextlib.contextmanager
def kept_checkpointing(model: torch.nn.Module) -> Iterator[None]:
    """Whatever the body does to checkpointing (TRL's disable / re-enable), restore every module's own
    flag and checkpoint function after it."""
    saved = [(m, m.gradient_checkpointing, m.__dict__.get("_gradient_checkpointing_func"))
             for m in model.modules() if hasattr(m, "gradient_checkpointing")]
    try:
        yield
    finally:
        for m, flag, func in saved:
            m.gradient_checkpointing = flag
            if func is not None:
                m._gradient_checkpointing_func = func


def recompute_fractions(model: torch.nn.Module) -> dict[str, float]:
    """The fraction of the audio encoder's and of the decoder's layers that are checkpointed, i.e. run a
    second forward in the backward (``tgsr.train.cost_model.step_floors``); the vision tower is left out."""
    towers: dict[str, list[bool]] = {"audio": [], "text": []}
    for name, m in model.named_modules():
        if isinstance(m, GradientCheckpointingLayer) and "visual" not in name:
            towers["audio" if "audio_tower" in name else "text"].append(bool(m.gradient_checkpointing))
    return {k: (sum(v) / len(v) if v else 0.0) for k, v in towers.items()}


def set_checkpointed(model: torch.nn.Module, flags: list[bool]) -> None:
    layers = checkpoint_layers(model)
    if len(flags) != len(layers):
        raise ValueError(f"{len(flags)} flags for {len(layers)} checkpointable layers")
    for layer, flag in zip(layers, flags):
        if flag and getattr(layer, "_gradient_checkpointing_func", None) is None:
            raise ValueError("checkpointing was never enabled on this model (activation_checkpointing: true)")
        layer.gradient_checkpointing = bool(flag)


def kept_activation_bytes(layer: torch.nn.Module, args: tuple, kwargs: dict, *, input_requires_grad: bool,
                          autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext) -> int:
    """Bytes autograd keeps for the backward of ``layer`` run without checkpointing on these inputs:
    the distinct storages it saves, not counting parameters or the input itself."""
    args, kwargs = list(args), dict(kwargs)
    key = 0 if args else "hidden_states"
    hidden = (args[0] if args else kwargs["hidden_states"]).detach().requires_grad_(input_requires_grad)
    if args:
        args[0] = hidden
    else:
        kwargs[key] = hidden
    skip = {p.untyped_storage().data_ptr() for p in layer.parameters()} | {hidden.untyped_storage().data_ptr()}
    kept: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in skip:
            kept[ptr] = t.untyped_storage().nbytes()
        return t

    was = layer.gradient_checkpointing
    layer.gradient_checkpointing = False
    try:
        with torch.enable_grad(), autocast(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = layer(*args, **kwargs)
        del out
    finally:
        layer.gradient_checkpointing = was
    return sum(kept.values())


@dataclass
class CheckpointPlan:
    """Which layers stay checkpointed, and the figures the choice was made from (bytes)."""

    checkpointed: list[bool]
    measured_peak: int
    usable: int
    kept_per_layer: list[int]
    predicted_peak: int
    scale: float
    reason: str

    @property
    def n_checkpointed(self) -> int:
        return sum(self.checkpointed)

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("kept_per_layer")
        d["checkpointed"] = f"{self.n_checkpointed} of {len(self.checkpointed)} layers"
        return d


def plan_checkpointing(measured_peak: int, usable: int, kept_per_layer: list[int], *, scale: float = 1.0,
                       headroom: float = HEADROOM) -> CheckpointPlan:
    """Leave layers un-checkpointed, last first, while ``measured_peak`` (every layer checkpointed)
    plus ``scale x`` their kept activations stays within ``headroom x usable``."""
    budget = headroom * usable
    flags = [True] * len(kept_per_layer)
    peak = float(measured_peak)
    if peak > budget:
        return CheckpointPlan(flags, measured_peak, usable, kept_per_layer, int(peak), scale,
                              "the fully checkpointed step already fills the memory: every layer stays checkpointed")
    for i in reversed(range(len(kept_per_layer))):
        extra = scale * kept_per_layer[i]
        if peak + extra > budget:
            break
        flags[i] = False
        peak += extra
    n = sum(flags)
    reason = ("no layer needs checkpointing" if n == 0 else
              f"{len(flags) - n} layers un-checkpointed before the next would pass {headroom:.0%} of the memory")
    return CheckpointPlan(flags, measured_peak, usable, kept_per_layer, int(peak), scale, reason)


def cuda_memory() -> tuple[int, int] | None:
    """(peak bytes allocated since the last reset, bytes this process can have), or None on the CPU."""
    if not torch.cuda.is_available():
        return None
    free, _ = torch.cuda.mem_get_info()
    return int(torch.cuda.max_memory_allocated()), int(free + torch.cuda.memory_reserved())


def reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


class CheckpointPlanner:
    """``every_n_layers: auto`` inside a trainer: measure the first loss pass, then plan (module docstring).

    The trainer calls ``loss_pass`` around its loss forward of the measured step and ``finish`` after
    that step's backward. ``memory`` returns (peak, usable) bytes or None (the CPU); ``max_tokens``
    is the longest sequence the run can produce, to scale the measured activations to.
    """

    def __init__(self, *, memory: Callable[[], tuple[int, int] | None] = cuda_memory,
                 reset: Callable[[], None] = reset_peak, headroom: float = HEADROOM, max_tokens: int | None = None):
        self.memory, self.reset, self.headroom, self.max_tokens = memory, reset, headroom, max_tokens
        self.pending = True
        self.plan: CheckpointPlan | None = None
        self._inputs: dict[type, tuple] = {}
        self._tokens = 0

    @contextlib.contextmanager
    def loss_pass(self, model: torch.nn.Module, tokens: int, max_tokens: int | None = None) -> Iterator[None]:
        """Record the inputs of the first layer of each kind during the loss forward, from a fresh peak.
        ``tokens``: this batch's sequence length; ``max_tokens``: the longest the run can produce."""
        if not self.pending:
            yield
            return
        self.reset()
        self._tokens = max(self._tokens, int(tokens))
        if max_tokens is not None:
            self.max_tokens = max(self.max_tokens or 0, int(max_tokens))
        handles, firsts = [], {}
        for layer in checkpoint_layers(model):
            firsts.setdefault(type(layer), layer)

        def capture(layer):
            def hook(module, args, kwargs):
                if torch.is_grad_enabled() and type(module) not in self._inputs:
                    hidden = args[0] if args else kwargs.get("hidden_states")
                    self._inputs[type(module)] = (module, args, kwargs, bool(hidden.requires_grad))
            return hook

        for layer in firsts.values():
            handles.append(layer.register_forward_pre_hook(capture(layer), with_kwargs=True))
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def finish(self, model: torch.nn.Module, *, autocast=contextlib.nullcontext,
               reduce_max: Callable[[list[int]], list[int]] = lambda v: v) -> CheckpointPlan | None:
        """After the measured step: plan and apply (every process must call it, ``reduce_max`` agrees)."""
        if not self.pending:
            return self.plan
        self.pending = False
        layers = checkpoint_layers(model)
        mem = self.memory()
        if mem is None or not any(checkpointed(model)):
            self._inputs.clear()
            why = ("no device memory to measure (CPU)" if mem is None
                   else "checkpointing is not on (activation_checkpointing: true)")
            log.info("every_n_layers auto: %s; checkpointing left as it is", why)
            return None
        kinds = {kind: kept_activation_bytes(layer, args, kwargs, input_requires_grad=rg, autocast=autocast)
                 for kind, (layer, args, kwargs, rg) in self._inputs.items()}
        self._inputs.clear()
        # a kind that never ran with gradients (a frozen, cached audio tower) keeps nothing
        kept = [kinds.get(type(layer), 0) for layer in layers]
        # the largest peak, activations and length, and the smallest usable memory, of all processes
        agreed = reduce_max([mem[0], -mem[1], *kept, self._tokens])
        peak, usable, kept, tokens = agreed[0], -agreed[1], agreed[2:-1], agreed[-1]
        scale = max(1.0, (self.max_tokens or tokens) / max(tokens, 1))
        self.plan = plan_checkpointing(peak, usable, kept, scale=scale, headroom=self.headroom)
        set_checkpointed(model, self.plan.checkpointed)
        log.info("every_n_layers auto: %s", self.plan.summary())
        return self.plan


__all__ = ["AUTO", "CheckpointPlan", "CheckpointPlanner", "checkpoint_layers", "checkpointed", "cuda_memory",
           "kept_activation_bytes", "kept_checkpointing", "plan_checkpointing", "recompute_fractions",
           "set_checkpointed"]
