"""Where a GRPO step's time goes: phases timed by the trainer itself.

``trainer.profile(PhaseProfiler(device))`` turns it on; the trainer then opens a phase around
each of its own passes, so no caller wraps or replaces trainer methods. ``GRPOPhaseTiming`` is
the mixin that does it for any TRL ``GRPOTrainer``: tgsr's ``AudioGRPOTrainer`` and, in
``benchmarks/gpu_grpo_step.py``, stock TRL as the speed reference. Times are exclusive:
a phase nested in another (features fetched during generation, the log-prob passes inside the
training step's input preparation) is charged to the inner phase only, so the phases of a
step add up to the step. On a GPU the clock synchronises the device before each reading.

Phases (``PHASES``): ``features`` (log-mel of clips not yet cached), ``encoder`` (audio-tower
forwards that ran, not memo hits), ``generation``, ``rewards``, ``old_logprobs`` and
``ref_logprobs`` (the no-grad passes of a generation batch), ``logprob_check`` (the audio
guard), ``loss_forward``, ``backward`` (the rest of the training step), ``optimizer`` (AdamW's
step, between the Trainer's pre- and post-optimiser callbacks); ``other`` is the rest of the
step (clipping, the scheduler, logging, callbacks).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch

PHASES = ("features", "encoder", "generation", "rewards", "old_logprobs", "ref_logprobs", "logprob_check",
          "loss_forward", "backward", "optimizer")

GiB = 1024 ** 3


@dataclass
class StepProfile:
    """One optimiser step: exclusive seconds per phase, peak memory per phase, generation shapes."""

    phases: dict[str, float] = field(default_factory=dict)
    step_s: float = 0.0
    peaks_gib: dict[str, float] = field(default_factory=dict)
    # per generation batch: the prompt and completion length of each row
    generations: list[dict[str, list[int]]] = field(default_factory=list)

    @property
    def other_s(self) -> float:
        """The step's time outside every phase (never negative: clock jitter is clipped)."""
        return max(self.step_s - sum(self.phases.values()), 0.0)

    def seconds(self) -> dict[str, float]:
        """Every phase (0 when it did not run), ``other`` and ``step``."""
        return {**{p: self.phases.get(p, 0.0) for p in PHASES}, "other": self.other_s, "step": self.step_s}


class PhaseProfiler:
    """Exclusive time per phase of each optimiser step (see the module docstring)."""

    def __init__(self, device: torch.device | str | None = None, *, clock: Callable[[], float] | None = None):
        self.cuda = device is not None and torch.device(device).type == "cuda"
        self._clock = clock or time.perf_counter
        self.steps: list[StepProfile] = []
        self._step: StepProfile | None = None
        self._t_step = 0.0
        self._stack: list[list] = []  # [name, start, time spent in nested phases, peak]

    def now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return self._clock()

    # ------------------------------------------------------------------ phases
    def start(self, name: str, *, peak: bool = False) -> None:
        if peak and self.cuda:
            torch.cuda.reset_peak_memory_stats()
        self._stack.append([name, self.now(), 0.0, peak])

    def stop(self, name: str) -> None:
        if not self._stack or self._stack[-1][0] != name:
            open_ = [s[0] for s in self._stack]
            raise RuntimeError(f"phase {name!r} stopped while {open_} are open")
        _, t0, nested, peak = self._stack.pop()
        elapsed = self.now() - t0
        if self._stack:
            self._stack[-1][2] += elapsed
        if self._step is None:  # outside a step (evaluation, set-up): not part of any step's time
            return
        self._step.phases[name] = self._step.phases.get(name, 0.0) + elapsed - nested
        if peak and self.cuda:
            gib = torch.cuda.max_memory_allocated() / GiB
            self._step.peaks_gib[name] = max(self._step.peaks_gib.get(name, 0.0), gib)

    @contextlib.contextmanager
    def phase(self, name: str, *, peak: bool = False) -> Iterator[None]:
        self.start(name, peak=peak)
        try:
            yield
        finally:
            self.stop(name)

    def note_generation(self, prompt_lengths: list[int], completion_lengths: list[int]) -> None:
        if self._step is not None:
            self._step.generations.append({"prompt_tokens": list(prompt_lengths),
                                           "completion_tokens": list(completion_lengths)})

    # ------------------------------------------------------------------ steps
    def begin_step(self) -> None:
        self._step = StepProfile()
        self._t_step = self.now()

    def end_step(self) -> StepProfile | None:
        step, self._step = self._step, None
        if step is None:
            return None
        step.step_s = self.now() - self._t_step
        self.steps.append(step)
        return step

    def callback(self):
        """The Trainer callback that marks step boundaries and times AdamW's step."""
        from transformers import TrainerCallback

        profiler = self

        class _Boundaries(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                profiler.begin_step()

            def on_pre_optimizer_step(self, args, state, control, **kwargs):
                profiler.start("optimizer")

            def on_optimizer_step(self, args, state, control, **kwargs):
                profiler.stop("optimizer")

            def on_step_end(self, args, state, control, **kwargs):
                profiler.end_step()

        return _Boundaries()


class GRPOPhaseTiming:
    """Mixin for a TRL ``GRPOTrainer`` subclass: its passes timed by phase once ``profile`` is called.

    Put it before ``GRPOTrainer`` in the bases. A subclass that replaces ``_generate_single_turn`` or
    ``_get_per_token_logps_and_entropies`` without calling ``super()`` opens the phases itself with
    ``self._phase(...)`` (``AudioGRPOTrainer`` does).
    """

    profiler: PhaseProfiler | None = None
    _nograd_passes = 0
    _in_logprob_check = False

    def profile(self, profiler: PhaseProfiler) -> PhaseProfiler:
        from .common import audio_encoder_modules

        self.profiler = profiler
        self.add_callback(profiler.callback())
        towers = {id(t): t for m in (self.model, self.ref_model) if m is not None
                  for _, t in audio_encoder_modules(m)}
        for tower in towers.values():  # module hooks: they see the forwards that run, not memo hits
            tower.register_forward_pre_hook(lambda *_: profiler.start("encoder"))
            tower.register_forward_hook(lambda *_: profiler.stop("encoder"))
        return profiler

    def _phase(self, name: str, *, peak: bool = False):
        return self.profiler.phase(name, peak=peak) if self.profiler is not None else contextlib.nullcontext()

    def _logprob_phase(self, model) -> str:
        """Which no-grad pass this is: the guard's, the reference's, or (first in a batch) the old policy's."""
        if self._in_logprob_check:
            return "logprob_check"
        if self.ref_model is not None and model is self.ref_model:
            return "ref_logprobs"
        # TRL's order in a generation batch: the old-policy pass when it runs (generation and optimiser
        # steps misaligned), then the reference (LoRA: the same model, adapter disabled)
        generate_every = self.args.steps_per_generation * self.num_iterations
        old_runs = self.args.gradient_accumulation_steps % generate_every != 0
        self._nograd_passes += 1
        return "old_logprobs" if old_runs and self._nograd_passes == 1 else "ref_logprobs"

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        self._nograd_passes = 0
        with self._phase("generation", peak=True):
            out = super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                has_tool_images)
        if self.profiler is not None:
            self.profiler.note_generation([len(p) for p in prompt_ids], [len(c) for c in out[0]])
        return out

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, *args, **kwargs):
        if torch.is_grad_enabled():  # the loss forward: timed as a whole by compute_loss
            return super()._get_per_token_logps_and_entropies(model, input_ids, attention_mask, logits_to_keep,
                                                              *args, **kwargs)
        with self._phase(self._logprob_phase(model), peak=True):
            return super()._get_per_token_logps_and_entropies(model, input_ids, attention_mask, logits_to_keep,
                                                              *args, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        with self._phase("loss_forward"):
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

    def training_step(self, model, inputs, num_items_in_batch):
        with self._phase("backward", peak=True):  # exclusive: what nested phases leave is the backward
            return super().training_step(model, inputs, num_items_in_batch)

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        with self._phase("rewards"):
            return super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)


__all__ = ["PHASES", "GRPOPhaseTiming", "PhaseProfiler", "StepProfile"]
