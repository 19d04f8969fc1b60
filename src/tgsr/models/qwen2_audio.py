"""Qwen2-Audio (``Qwen2AudioForConditionalGeneration``).

Its Whisper encoder has learned positions for exactly one window, so every clip is padded to
the feature extractor's window (30 s) and longer clips are truncated, as the official
processor does. The chat template renders ``Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>``.
"""

from __future__ import annotations

from .base import AudioLM


class Qwen2AudioLM(AudioLM):
    family = "qwen2-audio"
    model_types = ("qwen2_audio",)
    audio_keys = ("input_features", "feature_attention_mask")
    fixed_window = True
    default_system_prompt = "You are a helpful assistant."

    @classmethod
    def model_class(cls):
        from transformers import Qwen2AudioForConditionalGeneration

        return Qwen2AudioForConditionalGeneration

    @classmethod
    def processor_class(cls):
        from transformers import Qwen2AudioProcessor

        return Qwen2AudioProcessor

    def _audio_wrapper_ids(self):
        ids = [self.tokenizer.convert_tokens_to_ids(t) for t in ("<|audio_bos|>", "<|audio_eos|>")]
        return tuple(i if i is not None and i != self.tokenizer.unk_token_id else None for i in ids)
