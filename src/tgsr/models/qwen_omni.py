"""Qwen2.5-Omni, run as the thinker only (text out; the talker and vocoder are never loaded).

Audio-only processing without torchvision: ``Qwen2_5OmniProcessor`` wants image and video
processors, and the video processor needs torchvision, which cannot be installed next to a
CPU-only torch build. tgsr does not need the processor's ``__call__`` at all: ``AudioLM``
renders the chat template, expands the ``<|AUDIO|>`` placeholder and runs the checkpoint's
own ``WhisperFeatureExtractor`` itself. So the adapter loads the tokenizer, the feature
extractor and the chat template from the checkpoint folder separately; ``.processor`` is the
full ``Qwen2_5OmniProcessor`` when torchvision is importable and None otherwise.

Features keep each clip's own length (no 30 s padding): the Omni encoder selects valid
frames with ``feature_attention_mask`` and attends within ``n_window``-sized chunks, so
padding would only cost log-mel time. Long clips are not truncated.
"""

from __future__ import annotations

from .base import AudioLM, load_checked

OMNI_SYSTEM_PROMPT = (
    "You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of perceiving "
    "auditory and visual inputs, as well as generating text and speech."
)


class QwenOmniLM(AudioLM):
    family = "qwen2.5-omni"
    model_types = ("qwen2_5_omni_thinker", "qwen2_5_omni")
    full_model_type = "qwen2_5_omni"  # thinker + talker + vocoder; only the thinker is loaded
    audio_keys = ("input_features", "feature_attention_mask")
    fixed_window = False
    default_system_prompt = OMNI_SYSTEM_PROMPT

    @classmethod
    def model_class(cls):
        from transformers import Qwen2_5OmniThinkerForConditionalGeneration

        return Qwen2_5OmniThinkerForConditionalGeneration

    @classmethod
    def load_pretrained_model(cls, path, config, **kwargs):
        """Load the thinker from a thinker folder or from a full Omni checkpoint (``thinker.*`` keys)."""
        if config.model_type == cls.full_model_type:
            return load_checked(cls.model_class(), path, config=config.thinker_config,
                                key_mapping={r"^thinker\.": ""}, **kwargs)
        return load_checked(cls.model_class(), path, **kwargs)

    @classmethod
    def checkpoint_prefix(cls, config) -> str | None:
        return "thinker." if config.model_type == cls.full_model_type else None

    @classmethod
    def processor_class(cls):
        from transformers import Qwen2_5OmniProcessor

        return Qwen2_5OmniProcessor

    @classmethod
    def build_processor(cls, feature_extractor, tokenizer, chat_template):
        try:
            import torchvision  # noqa: F401
        except Exception:  # torchvision absent or broken against this torch: audio-only mode
            return None
        from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

        return cls.processor_class()(image_processor=Qwen2VLImageProcessor(), video_processor=Qwen2VLVideoProcessor(),
                                     feature_extractor=feature_extractor, tokenizer=tokenizer,
                                     chat_template=chat_template)

    def _config_audio_token_id(self) -> int:
        return self.model.config.audio_token_id

    def _audio_wrapper_ids(self):
        cfg = self.model.config
        return cfg.audio_start_token_id, cfg.audio_end_token_id
