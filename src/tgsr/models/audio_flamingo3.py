"""Audio Flamingo 3 (``AudioFlamingo3ForConditionalGeneration``).

AF3 cuts a clip into 30 s windows (at most 20), each padded to the full window; the audio
tensors therefore have one row per window, not per text row. ``repeat_rows`` and row
pairing recover the windows of each row from its number of ``<sound>`` tokens (every full
window yields the same count). Only the text is padded (left); the processor's top-level
``padding=True`` would also pad the audio and is never used.
"""

from __future__ import annotations

import math

import torch

from .base import AudioLM, _as_waveform, _encoder_output_lengths

MAX_WINDOWS = 20


class AudioFlamingo3LM(AudioLM):
    family = "audio-flamingo-3"
    model_types = ("audioflamingo3",)
    audio_keys = ("input_features", "input_features_mask")
    fixed_window = True
    default_system_prompt = "You are a helpful assistant."

    @classmethod
    def model_class(cls):
        from transformers import AudioFlamingo3ForConditionalGeneration

        return AudioFlamingo3ForConditionalGeneration

    @classmethod
    def processor_class(cls):
        from transformers import AudioFlamingo3Processor

        return AudioFlamingo3Processor

    def featurize_one(self, audio) -> dict[str, torch.Tensor]:
        audio = _as_waveform(audio)
        fe = self.feature_extractor
        win = fe.n_samples
        n_win = max(1, math.ceil(len(audio) / win))
        if n_win > MAX_WINDOWS:
            n_win = MAX_WINDOWS
            audio = audio[: n_win * win]
        chunks = [audio[i * win:(i + 1) * win] for i in range(n_win)]
        out = fe(chunks, sampling_rate=fe.sampling_rate, padding="max_length", return_attention_mask=True,
                 return_tensors="pt")
        feats, mask = out["input_features"].float(), out["attention_mask"].long()
        # A clip ending <= 2 mel frames past a window boundary leaves a last window that the encoder
        # turns into 0 tokens: it carries no audio, and keeping it would break the windows-per-row
        # count that repeat_rows derives from the number of <sound> tokens.
        keep = _encoder_output_lengths(mask.sum(-1)) > 0
        keep[0] = True
        return {"input_features": feats[keep], "input_features_mask": mask[keep]}

    @property
    def _tokens_per_window(self) -> int:
        return int(_encoder_output_lengths(torch.tensor(self.feature_extractor.nb_max_frames)))

    def _audio_rows_per_sample(self, input_ids: torch.Tensor) -> torch.Tensor:
        n_tokens = (input_ids == self.audio_token_id).sum(-1)
        return torch.div(n_tokens + self._tokens_per_window - 1, self._tokens_per_window, rounding_mode="floor")
