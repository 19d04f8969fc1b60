"""Model adapters: one ``AudioLM`` interface over every supported audio-language model.

``load_model(path_or_id)`` resolves a folder or hub id (``hub``), reads the checkpoint's
``config.json``, picks the family from ``model_type``, places the model (``placement``), picks
the chat template by probing (``templates``) and returns the family's ``AudioLM``. ``trust_remote_code`` is never used.
See ``tgsr.models.base.AudioLM`` for the interface and ``tgsr.models.tiny`` for offline
tiny models.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import TgsrError
from .audio_flamingo3 import AudioFlamingo3LM
from .base import AudioLM, Generation
from .hub import resolve_model_path
from .placement import checkpoint_parameters, choose_placement
from .qwen2_audio import Qwen2AudioLM
from .qwen3_omni import Qwen3OmniLM
from .qwen_omni import QwenOmniLM
from .templates import family_template, select_chat_template

log = logging.getLogger(__name__)

FAMILIES: dict[str, type[AudioLM]] = {
    "qwen2.5-omni": QwenOmniLM,
    "qwen2-audio": Qwen2AudioLM,
    "audio-flamingo-3": AudioFlamingo3LM,
    "qwen3-omni": Qwen3OmniLM,
}
_BY_MODEL_TYPE = {mt: cls for cls in FAMILIES.values() for mt in cls.model_types}


def family_of(config) -> str:
    """The tgsr family of a transformers config (from ``config.model_type``)."""
    cls = _BY_MODEL_TYPE.get(getattr(config, "model_type", None))
    if cls is None:
        raise TgsrError(f"unsupported model_type {getattr(config, 'model_type', None)!r}; "
                        f"supported: {sorted(_BY_MODEL_TYPE)} (families {sorted(FAMILIES)})")
    return cls.family


def load_model(path_or_id: str | Path, *, family: str | None = None, dtype=None, device_map=None,
               attn_implementation: str | None = None, device: str | None = None) -> AudioLM:
    """Load a checkpoint folder or hub id as an ``AudioLM``.

    ``path_or_id`` is a folder or a hub id (resolved through the Hugging Face cache, see
    ``tgsr.models.hub``). ``family``, when given, must match the family detected from
    ``config.model_type`` (a guard against loading the wrong checkpoint). ``dtype`` is a torch
    dtype, its name, or "auto"; ``attn_implementation`` ("eager" is needed for attention maps;
    default "sdpa") goes to ``from_pretrained``. Placement: ``device`` ("auto", "cpu", "cuda",
    "cuda:N"; see ``tgsr.models.placement``) picks the device, the default dtype for it
    (bfloat16 on a GPU) and spreads a model too large for one GPU; without ``device`` the model
    loads where ``device_map`` says (default: the CPU, float32).

    The chat template is chosen by probing the checkpoint's candidates
    (``tgsr.models.templates.select_chat_template``); ``lm.chat_template_source`` says which.
    """
    import torch
    from transformers import AutoConfig, AutoTokenizer, WhisperFeatureExtractor

    name = str(path_or_id)
    folder = resolve_model_path(name)
    try:
        config = AutoConfig.from_pretrained(folder)
    except Exception as e:
        raise TgsrError(f"cannot read a model config from {name}: {e}") from e
    detected = family_of(config)
    if family is not None and family != detected:
        if family not in FAMILIES:
            raise TgsrError(f"unknown family {family!r}; expected one of {sorted(FAMILIES)}")
        raise TgsrError(f"{name} is a {detected} checkpoint (model_type {config.model_type!r}), not {family}")
    cls = FAMILIES[detected]
    if device is not None:
        dtype_name = dtype if isinstance(dtype, str) or dtype is None else str(dtype).removeprefix("torch.")
        n_params = checkpoint_parameters(folder, prefix=cls.checkpoint_prefix(config))
        where = choose_placement(device, dtype_name, n_params)
        dtype, device_map = where.dtype, where.device_map
        log.info("%s: loading on %s", name, where.describe())
    if isinstance(dtype, str) and dtype != "auto":
        if not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise TgsrError(f"unknown dtype {dtype!r}; use e.g. float32, bfloat16, float16 or auto")
        dtype = getattr(torch, dtype)
    kwargs = {"dtype": dtype if dtype is not None else torch.float32}
    if device_map is not None:
        kwargs["device_map"] = device_map
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    model = cls.load_pretrained_model(folder, config, **kwargs)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    feature_extractor = WhisperFeatureExtractor.from_pretrained(folder)
    lm = cls(model, tokenizer, feature_extractor, family_template(detected), name_or_path=folder)
    # A checkpoint may carry its own default system prompt (tiny models use a short one).
    prompt = getattr(model.config, "tgsr_default_system_prompt", None)
    if prompt:
        lm.default_system_prompt = prompt
    choice = select_chat_template(folder, tokenizer, detected, lm.audio_token, system_prompt=lm.default_system_prompt,
                                  processor_class=cls.processor_class(), name=name)
    lm.chat_template, lm.chat_template_source = choice.template, choice.source
    lm.processor = cls.build_processor(feature_extractor, tokenizer, choice.template)
    return lm


__all__ = ["AudioLM", "Generation", "FAMILIES", "family_of", "load_model", "resolve_model_path"]
