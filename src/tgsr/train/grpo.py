"""Stage 2: GRPO with R = R_answer + R_tg on audio-language models, through TRL.

``AudioGRPOTrainer`` subclasses TRL's ``GRPOTrainer``. TRL hands multimodal tensors to
``generate`` but its log-prob passes only know image keys, so on an audio model the
old-policy, reference and policy log-probs would silently run *without the audio*. This
subclass carries the audio through every forward pass:

- each row of a generation batch gets an ``_AudioRow`` (its clip and that clip's features,
  from a per-clip ``FeatureCache``); the list travels in the batch dict as ``audio_rows``,
  so TRL's own shuffle and split keep every row paired with its audio;
- ``_tokenize_prompts`` builds the prompts with the model adapter (audio placeholders
  expanded to the clip's token count) and returns the audio tensors for ``generate``;
- ``_get_per_token_logps_and_entropies`` collates the audio of exactly the rows it scores;
  it raises when it is called without them instead of scoring text only;
- ``_generate_single_turn`` generates with the audio/vision placeholders suppressed and, for
  the first ``logprob_check_steps`` generation batches, records the sampling log-probs and
  checks that the trainer's log-prob pass reproduces them (``audio/logprob_gap``); a gap
  above ``logprob_check_tol`` stops the run, since it means the training passes do not see
  what generation saw.

Features are computed once per clip and shared by the G samples and every log-prob pass;
with ``feature_cache=False`` they are recomputed for every row and every pass (the baseline
of ``benchmarks/bench_grpo_step.py``). With a frozen audio encoder (``encoder_cache=True``,
the default) its outputs are also computed once per clip per generation batch and reused
by every forward of the step (``tgsr.train.encoder_cache``); a trainable encoder is never
cached.

With LoRA, generation samples from the adapter folded into a copy of the base weights
(``tgsr.train.lora_merge``; ``merge_lora_for_generation``: "auto" merges when the GPU has room for
the copy, true/false force it): one matmul per projection at decode time instead of the base
matmul plus the adapter's kernels, 2.2x faster generation at the 7B shape on an H100; the exact
base weights come back afterwards.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import is_peft_model
from trl import GRPOConfig, GRPOTrainer
from trl.models import unwrap_model_for_generation
from trl.trainer.utils import pad

from ..errors import TgsrError
from .audio_guard import judge, swap_permutation
from .checkpointing import CheckpointPlanner, kept_checkpointing
from .checkpoints import AtomicCheckpointMixin
from .common import SaveProcessingMixin
from .datasets import clean_conversation
from .decoding import SamplingLogprobs, prompt_groups
from .decoding import sample as sample_completions
from .distributed import ShardedCpuMixin
from .encoder_cache import install_encoder_caches
from .features import FeatureCache
from .framework_check import check_hooks
from .lora_merge import merge_policy, merged_lora
from .profiling import GRPOPhaseTiming

log = logging.getLogger(__name__)
check_hooks()  # the private TRL / Trainer hooks overridden below: fail here, not deep inside train()


class _AudioRow:
    """One row of a generation batch: its clip and (when caching) that clip's features."""

    __slots__ = ("path", "features")

    def __init__(self, path: str, features: Any = None):
        self.path = path
        self.features = features

    def __repr__(self) -> str:
        return f"_AudioRow({self.path!r}, cached={self.features is not None})"


@contextlib.contextmanager
def _reference_through_tgsr(reference, family: str, args: GRPOConfig):
    """While TRL's ``__init__`` runs, build its reference policy with tgsr's loader instead of
    ``AutoModel...from_pretrained(config._name_or_path)``; ``reference`` is a folder, or a model
    already built (then TRL gets that very module, e.g. a benchmark's copy of random weights).

    TRL would instantiate ``config.architectures[0]``: for a hub Qwen2.5-Omni folder that is the
    full talker model (whose forward raises) or an architecture transformers 5 no longer has.
    tgsr's loader gives the thinker, from a thinker folder or a full checkpoint alike. TRL keeps
    the rest of its reference handling (dropout, fused LM head, DeepSpeed / FSDP preparation).
    The reference never trains, so with bf16/fp16 on it is stored in that precision even when the
    policy keeps float32 master weights.
    """
    from trl.trainer import grpo_trainer

    if reference is None:
        yield
        return
    original = grpo_trainer.create_model_from_path

    def load_reference(model_id, architecture=None, **kwargs):
        from ..models import load_model

        if isinstance(reference, torch.nn.Module):
            return reference
        dtype = torch.bfloat16 if args.bf16 else torch.float16 if args.fp16 else kwargs.get("dtype")
        lm = load_model(reference, family=family, dtype=dtype, device_map=kwargs.get("device_map"),
                        attn_implementation=kwargs.get("attn_implementation"))
        log.info("GRPO reference policy: %s (%s, %s)", reference, type(lm.model).__name__, lm.model.dtype)
        return lm.model

    grpo_trainer.create_model_from_path = load_reference
    try:
        yield
    finally:
        grpo_trainer.create_model_from_path = original


class AudioGRPOTrainer(ShardedCpuMixin, SaveProcessingMixin, AtomicCheckpointMixin, GRPOPhaseTiming,
                       GRPOTrainer):
    """TRL's GRPOTrainer with the audio in generation, old-policy, reference and policy passes.

    ``audio_lm`` is a ``tgsr.models.AudioLM``; dataset rows need ``prompt`` (a conversation
    with one ``{"type": "audio"}`` item) and ``audio`` (a file path); every other column is
    passed to the reward functions. ``ref_model`` is the reference policy of the KL term: a
    folder or hub id (the paper: the Stage-1 checkpoint; default: the policy's own folder), or a
    model already built.
    """

    def __init__(self, audio_lm, reward_funcs, args: GRPOConfig, train_dataset, eval_dataset=None, *,
                 ref_model: str | torch.nn.Module | None = None, peft_config=None, callbacks=None,
                 feature_cache: bool = True, feature_cache_size: int = 4096, logprob_check_steps: int = 1,
                 logprob_check_tol: float | None = None, encoder_cache: bool = True,
                 merge_lora_for_generation: bool | str = "auto", featurize=None, share_prefill: bool = True,
                 compile_decoding: bool = False, compile_config=None, auto_checkpointing: bool = False,
                 checkpoint_planner: CheckpointPlanner | None = None):
        if args.use_vllm or args.use_transformers_continuous_batching:
            raise TgsrError("AudioGRPOTrainer generates with transformers `generate`; vLLM and continuous "
                            "batching do not take tgsr's audio features")
        self.audio_lm = audio_lm
        self.profiler = None  # set by ``profile`` (tgsr.train.profiling.GRPOPhaseTiming)
        # ``featurize``: another per-clip featuriser (a benchmark's stock-processor baseline)
        self._featurize = featurize or audio_lm.featurize_one
        self.feature_cache = FeatureCache(self._timed_featurize, enabled=feature_cache,
                                          max_clips=feature_cache_size)
        self.logprob_check_steps = int(logprob_check_steps)
        self.logprob_check_tol = logprob_check_tol
        self.logprob_checks: list[dict[str, float]] = []
        self.last_logprob_check: dict[str, torch.Tensor] | None = None
        self._active_rows: list[_AudioRow] | None = None
        self._record_sampling = False
        self._generation_batches = 0
        self.merge_lora_policy = merge_policy(merge_lora_for_generation)
        self.generation_merged_lora: bool | None = None  # set by the first generation batch
        self.share_prefill = bool(share_prefill)  # tgsr.train.decoding
        self.compile_decoding = bool(compile_decoding)
        self.compile_config = compile_config
        # every_n_layers: auto (tgsr.train.checkpointing): planned from the first step's measured peak
        self.checkpoint_planner = checkpoint_planner or (CheckpointPlanner() if auto_checkpointing else None)

        # A sampled placeholder token would have no features behind it at the next forward.
        gen_kwargs = dict(args.generation_kwargs or {})
        suppress = set(gen_kwargs.get("suppress_tokens") or []) | set(audio_lm.suppress_token_ids)
        gen_kwargs["suppress_tokens"] = sorted(int(t) for t in suppress)
        args.generation_kwargs = gen_kwargs

        model = audio_lm.model
        reference = None
        if args.beta != 0.0 and peft_config is None:
            from ..models import resolve_model_path

            reference = ref_model if isinstance(ref_model, torch.nn.Module) else \
                resolve_model_path(ref_model or model.config._name_or_path, what="reference model")
        # None: no separate reference (beta 0, or LoRA's disabled adapter)
        self.reference_path = reference if reference is None or isinstance(reference, str) else "<given model>"
        with _reference_through_tgsr(reference, audio_lm.family, args):
            super().__init__(model=model, reward_funcs=reward_funcs, args=args, train_dataset=train_dataset,
                             eval_dataset=eval_dataset, processing_class=audio_lm.tokenizer,
                             peft_config=peft_config, callbacks=callbacks)
        # The guard's statistic follows the precision the passes compute in (tgsr.train.audio_guard):
        # the recipe's bf16/fp16, the weights' dtype, or the launcher's mixed precision (an FSDP
        # config with mixed_precision: bf16 computes in bf16 whatever the recipe says).
        self.logprob_check_full_precision = (not (args.bf16 or args.fp16) and audio_lm.model.dtype == torch.float32
                                             and self.accelerator.mixed_precision == "no")
        # Frozen audio towers (policy and reference, each its own memo) encode each clip once per
        # generation batch; a tower with a trainable parameter is left alone.
        # The reference policy never trains: mark it so, which lets its tower be cached too.
        if self.ref_model is not None and encoder_cache:
            self.ref_model.requires_grad_(False)
        self.encoder_caches = install_encoder_caches([self.model, self.ref_model]) if encoder_cache else []

    # ------------------------------------------------------------------ audio per row
    def _timed_featurize(self, *args, **kwargs):
        with self._phase("features"):
            return self._featurize(*args, **kwargs)

    def _row(self, example: dict) -> _AudioRow:
        path = example.get("audio")
        if not path:
            raise TgsrError(f"row {example.get('id', '?')}: no 'audio' column; AudioGRPOTrainer needs a clip per row")
        if self.feature_cache.enabled:
            return _AudioRow(path, self.feature_cache.get(path))
        return _AudioRow(path)

    def _features(self, row: _AudioRow):
        return row.features if row.features is not None else self.feature_cache.get(row.path)

    def _require_rows(self, n: int) -> list[_AudioRow]:
        rows = self._active_rows
        if rows is None:
            raise TgsrError("internal: a forward pass was requested without its audio rows; refusing to score "
                            "text without audio")
        if len(rows) != n:
            raise TgsrError(f"internal: {n} sequences but {len(rows)} audio rows; audio and prompts would mis-pair")
        return rows

    def audio_inputs(self, rows: list[_AudioRow]) -> dict[str, torch.Tensor]:
        """The audio tensors of ``rows``, in row order, ready for ``model(**...)``."""
        return self.audio_lm.collate_audio([self._features(r) for r in rows])

    # ------------------------------------------------------------------ TRL hooks
    def _generate_and_score_completions(self, inputs):
        hits0, misses0 = self.feature_cache.hits, self.feature_cache.misses
        for cache in self.encoder_caches:
            cache.clear()  # outputs live for one generation batch: its G copies and all of its passes
        enc0 = sum(c.misses for c in self.encoder_caches)
        rows = [self._row(x) for x in inputs]
        self._record_sampling = self._generation_batches < self.logprob_check_steps
        self._generation_batches += 1
        self._active_rows = rows
        try:
            # TRL turns checkpointing off for these no-grad passes and back on without the layer choice
            with kept_checkpointing(self.model):
                output = super()._generate_and_score_completions(inputs)
            sampling = output.pop("sampling_per_token_logps", None)
            if sampling is not None:
                self._check_logprobs(output, sampling)
        finally:
            self._active_rows = None
            self._record_sampling = False
            self.feature_cache.end_step()
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["audio/feature_cache_hits"].append(float(self.feature_cache.hits - hits0))
        self._metrics[mode]["audio/feature_cache_misses"].append(float(self.feature_cache.misses - misses0))
        if self.encoder_caches:
            self._metrics[mode]["audio/encoder_runs"].append(float(sum(c.misses for c in self.encoder_caches) - enc0))
        output["audio_rows"] = rows
        return output

    def _tokenize_prompts(self, prompts: list):
        rows = self._require_rows(len(prompts))
        conversations = [clean_conversation(p) for p in prompts]
        enc = self.audio_lm.build_inputs([self._features(r) for r in rows], conversations,
                                         add_generation_prompt=True)
        ids, mask = enc["input_ids"].cpu(), enc["attention_mask"].cpu().bool()
        prompt_ids = [r[m].tolist() for r, m in zip(ids, mask)]
        audio = {k: enc[k] for k in self.audio_lm.audio_keys if k in enc}
        if not audio:
            raise TgsrError("the model adapter returned no audio tensors for an audio batch")
        return prompt_ids, None, audio

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations,
                              has_tool_images=False):
        self._nograd_passes = 0
        with self._phase("generation", peak=True):
            ids_list, logprobs = self._sample(prompt_ids, multimodal_fields)
        if self.profiler is not None:
            self.profiler.note_generation([len(p) for p in prompt_ids], [len(c) for c in ids_list])
        return ids_list, logprobs

    def _sample(self, prompt_ids, multimodal_fields):
        """Sampled completion ids per row (up to the first end token), with their sampling log-probs
        when the audio guard records them."""
        device = self.accelerator.device
        pad_id = self._tokenizer.pad_token_id
        prompts = [torch.tensor(ids) for ids in prompt_ids]
        input_ids = pad(prompts, padding_value=pad_id, padding_side="left",
                        pad_to_multiple_of=self.pad_to_multiple_of).to(device)
        attention_mask = pad([torch.ones_like(t) for t in prompts], padding_value=0, padding_side="left",
                             pad_to_multiple_of=self.pad_to_multiple_of).to(device)
        audio = {k: v.to(device) for k, v in multimodal_fields.items()}
        rows = self._require_rows(len(prompt_ids))
        groups = unique_audio = None
        if self.share_prefill:  # the G copies of a prompt: one prefill (same prompt ids, same clip)
            groups = prompt_groups([(tuple(ids), row.path) for ids, row in zip(prompt_ids, rows)])
            if len(groups[0]) < len(rows):
                unique_audio = self.audio_inputs([rows[i] for i in groups[0]])
        recorder = SamplingLogprobs(self.temperature) if self._record_sampling else None
        # Sharded weights (ZeRO-3, FSDP) are gathered per layer: no whole-weight copy to merge into.
        merge = self.merge_lora_policy != "never" and not (self.is_deepspeed_enabled or self.is_fsdp_enabled)
        with (
            unwrap_model_for_generation(
                self.model_wrapped, self.accelerator,
                gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                generation_kwargs=self.generation_kwargs,
                gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs,
            ) as unwrapped_model,
            torch.no_grad(),
            self._dist.summon_full_params(self.model_wrapped, recurse=False),
            merged_lora(unwrapped_model, self.merge_lora_policy) if merge else contextlib.nullcontext(False) as merged,
            # the same autocast as the log-prob passes: float32 master weights decode in bf16 too
            self.accelerator.autocast(),
        ):
            out = sample_completions(unwrapped_model, input_ids, attention_mask, audio=audio,
                                     generation_config=self.generation_config, groups=groups,
                                     unique_audio=unique_audio, compile_decoding=self.compile_decoding,
                                     compile_config=self.compile_config, recorder=recorder)
        if merged != self.generation_merged_lora and self.merge_lora_policy != "never" and is_peft_model(self.model):
            log.info("GRPO generation %s", "runs on merged LoRA weights" if merged else
                     "keeps the LoRA branches (sharded, quantised or DoRA weights, or no GPU memory for the copy)")
        self.generation_merged_lora = bool(merged)
        completion_ids = out.sequences[:, input_ids.size(1):]
        is_eos = torch.isin(completion_ids, torch.tensor(self.eos_token_ids, device=completion_ids.device))
        after_eos = (torch.cumsum(is_eos.long(), dim=1) - is_eos.long()) > 0
        keep = ~after_eos  # up to and including the first end token
        ids_list = [c[m].tolist() for c, m in zip(completion_ids.cpu(), keep.cpu())]
        logprobs = None
        if recorder is not None:
            lp = recorder.finish(out.sequences, completion_ids.size(1))
            logprobs = [row[m].tolist() for row, m in zip(lp.cpu(), keep.cpu())]
        return ids_list, logprobs

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep,
                                           batch_size=None, compute_entropy=False, compute_aux_loss=False,
                                           **image_kwargs):
        if any(v is not None for v in image_kwargs.values()):
            raise TgsrError("AudioGRPOTrainer does not take image inputs")
        if torch.is_grad_enabled():  # the loss forward: timed as a whole by compute_loss
            return self._logps(model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy,
                               compute_aux_loss)
        with self._phase(self._logprob_phase(model), peak=True):
            return self._logps(model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy,
                               compute_aux_loss)

    def _logps(self, model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy,
               compute_aux_loss):
        rows = self._require_rows(input_ids.size(0))
        batch_size = batch_size or input_ids.size(0)
        all_logps, all_entropies, all_aux = [], [], []
        for start in range(0, input_ids.size(0), batch_size):
            end = min(start + batch_size, input_ids.size(0))
            ids, mask = input_ids[start:end], attention_mask[start:end]
            model_inputs = {"input_ids": ids, "attention_mask": mask, **self.audio_inputs(rows[start:end])}
            if compute_aux_loss:
                model_inputs["output_router_logits"] = True
            labels = ids.masked_fill(mask == 0, -100)
            labels[:, :-logits_to_keep] = -100  # only the completion is scored
            with self.accelerator.autocast():
                outputs = model(**model_inputs, labels=labels, fused_lm_head=True)
            all_logps.append(outputs.log_probs[:, -logits_to_keep:])
            if compute_entropy:
                all_entropies.append(outputs.entropy[:, -logits_to_keep:])
            if compute_aux_loss:
                all_aux.append(outputs.aux_loss)
        logps = torch.cat(all_logps, dim=0)
        entropies = torch.cat(all_entropies, dim=0) if compute_entropy else None
        aux = torch.stack(all_aux).mean() if compute_aux_loss else None
        return logps, entropies, aux

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        rows = inputs.get("audio_rows")
        if rows is None:
            raise TgsrError("internal: a training batch arrived without its audio rows")
        self._active_rows = rows
        planner = self.checkpoint_planner
        measuring = contextlib.nullcontext()
        if planner is not None and planner.pending:
            prompt = inputs["prompt_ids"].size(1)
            measuring = planner.loss_pass(self.model, tokens=prompt + inputs["completion_ids"].size(1),
                                          max_tokens=prompt + self.max_completion_length)
        try:  # timed as loss_forward by GRPOPhaseTiming
            with measuring:
                return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                            num_items_in_batch=num_items_in_batch)
        finally:
            self._active_rows = None

    def training_step(self, model, inputs, num_items_in_batch):
        loss = super().training_step(model, inputs, num_items_in_batch)
        planner = self.checkpoint_planner
        if planner is not None and planner.pending:  # after the measured step's backward
            plan = planner.finish(self.model, autocast=self.accelerator.autocast, reduce_max=self._max_over_ranks)
            if plan is not None:
                self._metrics["train"]["checkpointing/checkpointed_layers"].append(float(plan.n_checkpointed))
        return loss

    def _max_over_ranks(self, values: list[int]) -> list[int]:
        t = torch.tensor(values, dtype=torch.float64, device=self.accelerator.device)
        return [int(v) for v in self.accelerator.gather(t[None]).max(0).values.tolist()]

    # ------------------------------------------------------------------ the audio guard
    @torch.no_grad()
    def _check_logprobs(self, output: dict, sampling: torch.Tensor) -> None:
        """The trainer's log-prob pass must reproduce the sampling log-probs (same audio, same tokens);
        in reduced precision it is also contrasted with swapped audio (``tgsr.train.audio_guard``)."""
        self._in_logprob_check = True
        try:
            with self._phase("logprob_check"):
                self._run_logprob_check(output, sampling)
        finally:
            self._in_logprob_check = False

    def _run_logprob_check(self, output: dict, sampling: torch.Tensor) -> None:
        prompt_ids, prompt_mask = output["prompt_ids"], output["prompt_mask"]
        completion_ids, completion_mask = output["completion_ids"], output["completion_mask"]
        mask = completion_mask.bool()
        if not mask.any():
            return
        ids, attn = torch.cat([prompt_ids, completion_ids], 1), torch.cat([prompt_mask, completion_mask], 1)
        n, bs = completion_ids.size(1), self.args.per_device_train_batch_size
        logps = output.get("old_per_token_logps")
        if logps is None:
            logps, _, _ = self._get_per_token_logps_and_entropies(self.model, ids, attn, n, batch_size=bs)
        swapped = None
        perm = None if self.logprob_check_full_precision else swap_permutation([r.path for r in self._active_rows])
        if perm is not None:
            rows = self._active_rows
            self._active_rows = [rows[j] for j in perm]
            try:
                swapped, _, _ = self._get_per_token_logps_and_entropies(self.model, ids, attn, n, batch_size=bs)
            finally:
                self._active_rows = rows
        result = judge(logps, sampling.to(logps.device), mask, full_precision=self.logprob_check_full_precision,
                       tol=self.logprob_check_tol, swapped=swapped)
        self.last_logprob_check = {"sampling": sampling.detach().cpu(), "policy": logps.detach().cpu(),
                                   "mask": mask.cpu(), "swapped": None if swapped is None else swapped.detach().cpu()}
        record = result.record(self.state.global_step)
        self.logprob_checks.append(record)
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["audio/logprob_gap_max"].append(result.max)
        self._metrics[mode]["audio/logprob_gap_mean"].append(result.mean)
        if result.swapped_mean is not None:
            self._metrics[mode]["audio/logprob_gap_mean_swapped"].append(result.swapped_mean)
        log.info("GRPO audio guard: %s", result.reason)
        if not result.passed:
            raise TgsrError(f"GRPO log-prob check failed: {result.reason}. Tolerance: tgsr.logprob_check_tol "
                            f"(the {'maximum' if result.precision == 'full' else 'mean'} gap in "
                            f"{'float32' if result.precision == 'full' else 'reduced precision'}).")

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        from ..rewards import REWARD_STATS

        for key, count in REWARD_STATS.reset().items():
            logs[f"reward_problems/{key}"] = float(count)
        super().log(logs, start_time)


# ---------------------------------------------------------------------- the command


def run_grpo(trainer_args: GRPOConfig, tgsr_args, *, resume: bool = False, callbacks=None) -> dict:
    """``tgsr train grpo``: train, save a model folder in ``output_dir``, return a summary."""
    from datasets import Dataset
    from transformers import set_seed

    from .checkpoints import resume_checkpoint
    from .common import (
        load_audio_lm,
        prepare_trainable,
        rank_digests,
        rank_parameter_counts,
        save_model_folder,
        weights_digest,
        write_json,
    )
    from .config import dump_config, reward_spec
    from .datasets import grpo_rows
    from .distributed import sharding

    set_seed(trainer_args.seed)
    out_dir = Path(trainer_args.output_dir)
    checkpoint = resume_checkpoint(out_dir, resume, needs_optimizer=not trainer_args.save_only_model)
    audio_lm = load_audio_lm(tgsr_args.model, tgsr_args, trainer_args)
    _, peft_config, params = prepare_trainable(audio_lm.model, tgsr_args, trainer_args, wrap_lora=False)
    funcs, weights = reward_spec(tgsr_args.rewards)
    if trainer_args.reward_weights is None:
        trainer_args.reward_weights = weights
    train = grpo_rows(tgsr_args.train_file, tgsr_args.prompt_style, tgsr_args.max_train_samples)
    print(train.summary())
    eval_ds = None
    if tgsr_args.eval_file and trainer_args.eval_strategy != "no":
        ev = grpo_rows(tgsr_args.eval_file, tgsr_args.prompt_style, tgsr_args.max_eval_samples)
        print(ev.summary())
        eval_ds = Dataset.from_list(ev.rows)
    trainer = AudioGRPOTrainer(
        audio_lm, funcs, trainer_args, Dataset.from_list(train.rows), eval_ds,
        ref_model=tgsr_args.ref_model or tgsr_args.model, peft_config=peft_config, callbacks=callbacks,
        feature_cache=tgsr_args.feature_cache, feature_cache_size=tgsr_args.feature_cache_size,
        logprob_check_steps=tgsr_args.logprob_check_steps, logprob_check_tol=tgsr_args.logprob_check_tol,
        encoder_cache=tgsr_args.encoder_cache, merge_lora_for_generation=tgsr_args.merge_lora_for_generation,
        share_prefill=tgsr_args.share_prefill, compile_decoding=tgsr_args.compile_decoding,
        auto_checkpointing=tgsr_args.auto_checkpointing)
    if trainer.accelerator.is_main_process:
        dump_config(trainer_args, tgsr_args, out_dir / "tgsr_config.yaml")
    initial_digest = weights_digest(trainer.model)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    digests = rank_digests(trainer)  # data-parallel ranks must hold the same weights (sharded: their shards)
    counts = rank_parameter_counts(trainer)
    saved_digest = save_model_folder(trainer, audio_lm, out_dir)
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    summary = {
        "stage": "grpo", "output_dir": str(out_dir), "global_step": trainer.state.global_step,
        "train_runtime_s": result.metrics.get("train_runtime"), "rewards": [f.__name__ for f in funcs],
        "reward_weights": list(trainer_args.reward_weights), "reward_first": rewards[0] if rewards else None,
        "reward_last": rewards[-1] if rewards else None, "train_rows": len(train.rows),
        "skipped_rows": len(train.errors), "feature_cache": trainer.feature_cache.stats(),
        "encoder_cache": [c.stats() for c in trainer.encoder_caches],
        "logprob_checks": trainer.logprob_checks, "num_processes": trainer.accelerator.num_processes,
        "initial_weights_digest": initial_digest, "rank_weights_digests": digests, "sharding": sharding(trainer),
        "rank_parameters": counts, "saved_weights_digest": saved_digest,
        "weights_dtype": str(trainer.accelerator.unwrap_model(trainer.model).dtype),
        "reference_model": trainer.reference_path,
        "loss_type": trainer_args.loss_type, **params,
    }
    if trainer.accelerator.is_main_process:
        write_json(out_dir / "tgsr_summary.json", summary)
    return summary


__all__ = ["AudioGRPOTrainer", "run_grpo"]
