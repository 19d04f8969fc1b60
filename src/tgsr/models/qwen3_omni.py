"""Qwen3-Omni (MoE), run as the thinker only, like Qwen2.5-Omni (see ``qwen_omni``).

Differences that matter here: the audio encoder downsamples the log-mel frames 8x in
``2 * n_window``-frame chunks, so the number of ``<|audio_pad|>`` tokens follows the model's
own chunked formula; the audio is wrapped in ``<|audio_start|>`` / ``<|audio_end|>``; and the
checkpoints need no fixed system prompt.
"""

from __future__ import annotations

from typing import Mapping

import torch

from .qwen_omni import QwenOmniLM


class Qwen3OmniLM(QwenOmniLM):
    family = "qwen3-omni"
    model_types = ("qwen3_omni_moe_thinker", "qwen3_omni_moe")
    full_model_type = "qwen3_omni_moe"
    audio_keys = ("input_features", "feature_attention_mask")
    fixed_window = False
    default_system_prompt = None

    @classmethod
    def model_class(cls):
        from transformers import Qwen3OmniMoeThinkerForConditionalGeneration

        return Qwen3OmniMoeThinkerForConditionalGeneration

    @classmethod
    def processor_class(cls):
        from transformers import Qwen3OmniMoeProcessor

        return Qwen3OmniMoeProcessor

    def num_audio_tokens(self, features: Mapping[str, torch.Tensor]) -> int:
        from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import _get_feat_extract_output_lengths

        lengths = features[self.audio_keys[1]].sum(-1)
        return int(_get_feat_extract_output_lengths(lengths, self.model.config.audio_config.n_window).sum())

    def _audio_wrapper_ids(self):
        end = self.tokenizer.convert_tokens_to_ids("<|audio_end|>")
        return self.model.config.audio_start_token_id, (end if end != self.tokenizer.unk_token_id else None)
