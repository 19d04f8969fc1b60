"""How GRPO samples its completions: one prefill per prompt, a compiled decode step, the sampling log-probs.

``sample`` wraps transformers ``generate`` for one generation batch of ``rows = prompts x G``:

- **One prefill per prompt** (``share_prefill``): rows with the same prompt and clip form a group;
  the unique rows are prefilled once, through ``generate`` itself (so positions, the audio merge
  and per-row rotary offsets are built exactly as ``generate`` builds them), the KV cache is cut
  back by the prompt's last token and copied out to every row of its group, and ``generate``
  continues all rows from there: it runs the last prompt token and then decodes. The result is
  the same as G separate prefills (tests: same greedy tokens, sampling log-probs equal to the
  training pass's); the prefill's FLOPs drop by a factor G.
- **Compiled decoding** (``compile_decoding``): a static KV cache and the decode step under
  ``torch.compile`` (``CompileConfig``, default mode ``reduce-overhead``: the step is captured as a
  CUDA graph, so one decode step costs one graph launch instead of hundreds of kernel launches).
  The cache length is rounded up to ``STATIC_CACHE_MULTIPLE`` tokens, so a run sees few distinct
  shapes and compiles few times. transformers' own auto-compile hands ``torch.compile`` the bound
  ``model.__call__``, and with torch 2.13 dynamo traces nothing from that frame (the step runs
  eagerly, silently: measured, the test counts graphs); tgsr compiles a plain function that calls
  the model instead, and makes ``generate`` use it for its decode steps. transformers compiles on
  accelerators only unless the compile config says otherwise (the CPU tests use an eager backend).
- **The sampling log-probs** (``tgsr.models.base.SamplingLogprobs``, also behind
  ``AudioLM.generate``): a logits processor that records
  ``log_softmax(raw logits / T)`` of each sampled token, before any other processor (tgsr applies
  the placeholder suppression itself, after it), so top-k / top-p / suppression do not enter,
  as in TRL's log-prob pass. It sits outside the compiled forward, so CUDA graphs leave it alone.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Hashable, Sequence

import torch
from transformers import DynamicCache, LogitsProcessorList, StaticCache
from transformers.generation import CompileConfig, SuppressTokensLogitsProcessor

from ..errors import TgsrError
from ..models.base import SamplingLogprobs

# Static KV caches are allocated in steps of this many tokens: one compiled shape per step size.
STATIC_CACHE_MULTIPLE = 256
# generate() options that change the logits before the sampler sees them: the recorded sampling
# log-probs would then not be the policy's, which the audio guard compares with the training pass.
LOGIT_CHANGING_OPTIONS = ("repetition_penalty", "encoder_repetition_penalty", "no_repeat_ngram_size",
                          "bad_words_ids", "sequence_bias", "min_length", "min_new_tokens",
                          "begin_suppress_tokens", "forced_bos_token_id", "forced_eos_token_id")
_NEUTRAL = {"repetition_penalty": 1.0, "encoder_repetition_penalty": 1.0, "min_length": 0, "no_repeat_ngram_size": 0}


def prompt_groups(keys: Sequence[Hashable]) -> tuple[list[int], torch.Tensor]:
    """Rows with equal keys share a prefill: the first row of each group, and each row's group index."""
    group_of: dict[Hashable, int] = {}
    starts: list[int] = []
    group = []
    for row, key in enumerate(keys):
        if key not in group_of:
            group_of[key] = len(starts)
            starts.append(row)
        group.append(group_of[key])
    return starts, torch.tensor(group, dtype=torch.long)


def logit_changing_options(generation_config) -> list[str]:
    """The options of ``generation_config`` that alter the logits before sampling (see above)."""
    found = []
    for name in LOGIT_CHANGING_OPTIONS:
        value = getattr(generation_config, name, None)
        if value is not None and value != _NEUTRAL.get(name) and value != []:
            found.append(name)
    return found


def copy_rows(model: torch.nn.Module, cache, index: torch.Tensor, n_unique: int) -> None:
    """Give every row its group's prefill: the KV cache and the per-row rotary offsets that mrope models
    (the Qwen2.5-Omni thinker) keep on the module between ``forward`` calls."""
    cache.batch_select_indices(index.to(_cache_device(cache)))
    for module in model.modules():
        deltas = getattr(module, "rope_deltas", None)
        if isinstance(deltas, torch.Tensor) and deltas.dim() > 0 and deltas.shape[0] == n_unique:
            module.rope_deltas = deltas.index_select(0, index.to(deltas.device))


def _cache_device(cache) -> torch.device:
    for layer in cache.layers:
        keys = getattr(layer, "keys", None)
        if isinstance(keys, torch.Tensor):
            return keys.device
    return torch.device("cpu")


def static_copy(model: torch.nn.Module, cache: DynamicCache, max_len: int) -> StaticCache:
    """A static cache of ``max_len`` positions holding what ``cache`` holds (rows and prefix length)."""
    static = StaticCache(config=model.config, max_cache_len=max_len)
    for i, layer in enumerate(cache.layers):
        static.update(layer.keys, layer.values, i)
    return static


@contextlib.contextmanager
def compiled_decode_step(model: torch.nn.Module):
    """Inside: ``generate`` on ``model`` (or the transformers model under a PEFT wrapper) decodes
    through ``torch.compile`` of a function that calls the model (see the module docstring)."""
    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    compiled = target.__dict__.setdefault("_tgsr_compiled_steps", {})  # kept across generation batches

    def get_compiled_call(compile_config: CompileConfig | None):
        config = compile_config or CompileConfig()
        key = repr(sorted(config.to_dict().items(), key=lambda kv: kv[0]))
        if key not in compiled:
            def decode_step(**inputs):
                return target(**inputs)
            compiled[key] = torch.compile(decode_step, **config.to_dict())
        return compiled[key]

    target.get_compiled_call = get_compiled_call  # this instance only; removed on exit
    try:
        yield
    finally:
        del target.get_compiled_call


def static_length(prompt_len: int, max_new_tokens: int) -> int:
    total = prompt_len + max_new_tokens
    return -(-total // STATIC_CACHE_MULTIPLE) * STATIC_CACHE_MULTIPLE


def sample(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, *,
           audio: dict[str, torch.Tensor] | None, generation_config, suppress_tokens: Sequence[int] = (),
           groups: tuple[list[int], torch.Tensor] | None = None, unique_audio: dict[str, torch.Tensor] | None = None,
           compile_decoding: bool = False, compile_config: CompileConfig | None = None,
           recorder: SamplingLogprobs | None = None):
    """``generate`` over a batch of left-padded prompts; returns its output (``sequences`` ...).

    ``groups`` (from ``prompt_groups``) with ``unique_audio`` (the audio tensors of the groups' first
    rows, in group order) turns on one prefill per group; ``audio`` is every row's audio, used
    when the batch is prefilled row by row. ``suppress_tokens`` are never sampled.
    """
    config = copy.copy(generation_config)
    config.return_dict_in_generate = True
    changing = logit_changing_options(config)
    if recorder is not None and changing:
        raise TgsrError(f"generation options {changing} change the logits before sampling, so the sampling "
                        "log-probs cannot be checked against the training pass; drop them or set "
                        "tgsr.logprob_check_steps=0")
    suppress = sorted({int(t) for t in suppress_tokens} | {int(t) for t in (config.suppress_tokens or [])})
    config.suppress_tokens = None  # applied below, after the recorder has seen the raw logits
    processors = LogitsProcessorList([p for p in (recorder,) if p is not None])
    if suppress:
        processors.append(SuppressTokensLogitsProcessor(suppress, device=input_ids.device))
    if compile_decoding:
        config.cache_implementation = None  # the static cache is built here, at a rounded length
        config.disable_compile = False  # TRL's generation config turns transformers' compilation off
        if compile_config is not None:
            config.compile_config = compile_config
    max_len = static_length(input_ids.size(1), config.max_new_tokens) if compile_decoding else None

    with compiled_decode_step(model) if compile_decoding else contextlib.nullcontext():
        return _generate(model, input_ids, attention_mask, audio, config, processors, groups, unique_audio,
                         max_len)


def _generate(model, input_ids, attention_mask, audio, config, processors, groups, unique_audio, max_len):
    compile_decoding = max_len is not None
    share = groups is not None and unique_audio is not None and len(groups[0]) < input_ids.size(0)
    if not share:
        cache = StaticCache(config=model.config, max_cache_len=max_len) if compile_decoding else None
        kwargs = {"cache": cache} if cache is not None else {}
        return model.generate(input_ids=input_ids, attention_mask=attention_mask, **(audio or {}), **kwargs,
                              generation_config=config, logits_processor=processors)

    first, index = groups
    # The groups' prefill, through generate (one greedy token, thrown away); its cache holds the
    # whole prompt, cut back by one position so that the continuation runs the last prompt token.
    prefill_config = copy.copy(config)
    prefill_config.max_new_tokens, prefill_config.min_new_tokens = 1, None
    prefill_config.do_sample, prefill_config.cache_implementation = False, None
    for name in ("temperature", "top_k", "top_p", "min_p"):
        setattr(prefill_config, name, None)
    rows = torch.tensor(first, device=input_ids.device)
    prefill = model.generate(input_ids=input_ids.index_select(0, rows),
                             attention_mask=attention_mask.index_select(0, rows), **unique_audio,
                             cache=DynamicCache(config=model.config), generation_config=prefill_config)
    cache = prefill.cache
    cache.crop(-(cache.get_seq_length() - (input_ids.size(1) - 1)))
    copy_rows(model, cache, index, len(first))
    if compile_decoding:
        cache = static_copy(model, cache, max_len)
    return model.generate(input_ids=input_ids, attention_mask=attention_mask, cache=cache,
                          generation_config=config, logits_processor=processors)
