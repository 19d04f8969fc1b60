"""Model adapters: one ``AudioLM`` interface over every supported audio-language model.

``load_model(path_or_id)`` reads the checkpoint's ``config.json``, picks the family from
``model_type`` and returns the family's ``AudioLM``. ``trust_remote_code`` is never used.
See ``tgsr.models.base.AudioLM`` for the interface and ``tgsr.models.tiny`` for offline
tiny models.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import TgsrError
from .audio_flamingo3 import AudioFlamingo3LM
from .base import AudioLM, Generation
from .qwen2_audio import Qwen2AudioLM
from .qwen3_omni import Qwen3OmniLM
from .qwen_omni import QwenOmniLM

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


def _read_chat_template(path_or_id: str, tokenizer, family: str) -> str:
    """The checkpoint's chat template: tokenizer's, else the processor's files, else tgsr's for the family."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.chat_template
    from transformers.utils import cached_file

    for name in ("chat_template.jinja", "chat_template.json"):
        try:
            f = cached_file(path_or_id, name, _raise_exceptions_for_missing_entries=False)
        except Exception:
            f = None
        if f:
            text = Path(f).read_text()
            return json.loads(text)["chat_template"] if name.endswith(".json") else text
    from .tiny import chat_template

    return chat_template(family)


def _missing_local_folder(path_or_id: str) -> str | None:
    """Why ``path_or_id`` names a local model folder that is not there, else None.

    Hub ids look like ``org/name``; anything else (an absolute or ./ path, no slash, several
    slashes, or a first component that is a local folder, e.g. ``runs/grpo-typo``) is meant as a
    folder. Failing here avoids minutes of hub retries and a misleading network error.
    """
    p = Path(path_or_id).expanduser()
    if p.is_dir():
        return None
    if p.exists():
        return f"{path_or_id}: not a model folder (expected a folder with config.json)"
    parts = Path(path_or_id).parts
    looks_like_hub_id = (len(parts) == 2 and not path_or_id.startswith(("/", ".", "~"))
                         and not Path(parts[0]).expanduser().is_dir())
    return None if looks_like_hub_id else f"{path_or_id}: model folder not found"


def load_model(path_or_id: str | Path, *, family: str | None = None, dtype=None, device_map=None,
               attn_implementation: str | None = None) -> AudioLM:
    """Load a checkpoint folder or hub id as an ``AudioLM``.

    ``family``, when given, must match the family detected from ``config.model_type`` (a
    guard against loading the wrong checkpoint); ``dtype`` (a torch dtype, its name such as
    "bfloat16", or "auto"; default float32), ``device_map`` and ``attn_implementation``
    ("eager" is needed for attention maps; default "sdpa") go to ``from_pretrained``.
    """
    import torch
    from transformers import AutoConfig, AutoTokenizer, WhisperFeatureExtractor

    path_or_id = str(path_or_id)
    missing = _missing_local_folder(path_or_id)
    if missing:
        raise TgsrError(missing)
    try:
        config = AutoConfig.from_pretrained(path_or_id)
    except Exception as e:
        raise TgsrError(f"cannot read a model config from {path_or_id}: {e}") from e
    detected = family_of(config)
    if family is not None and family != detected:
        if family not in FAMILIES:
            raise TgsrError(f"unknown family {family!r}; expected one of {sorted(FAMILIES)}")
        raise TgsrError(f"{path_or_id} is a {detected} checkpoint (model_type {config.model_type!r}), "
                        f"not {family}")
    cls = FAMILIES[detected]
    if isinstance(dtype, str) and dtype != "auto":
        if not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise TgsrError(f"unknown dtype {dtype!r}; use e.g. float32, bfloat16, float16 or auto")
        dtype = getattr(torch, dtype)
    kwargs = {"dtype": dtype if dtype is not None else torch.float32}
    if device_map is not None:
        kwargs["device_map"] = device_map
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    loader = getattr(cls, "load_pretrained_model", None)
    model = loader(path_or_id, config, **kwargs) if loader else cls.model_class().from_pretrained(path_or_id, **kwargs)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(path_or_id)
    feature_extractor = WhisperFeatureExtractor.from_pretrained(path_or_id)
    template = _read_chat_template(path_or_id, tokenizer, detected)
    processor = cls.build_processor(feature_extractor, tokenizer, template)
    lm = cls(model, tokenizer, feature_extractor, template, processor=processor, name_or_path=path_or_id)
    # A checkpoint may carry its own default system prompt (tiny models use a short one).
    prompt = getattr(model.config, "tgsr_default_system_prompt", None)
    if prompt:
        lm.default_system_prompt = prompt
    return lm


__all__ = ["AudioLM", "Generation", "FAMILIES", "family_of", "load_model"]
