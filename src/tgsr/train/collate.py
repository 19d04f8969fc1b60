"""Batches for supervised stages (STA, reasoning SFT): prompt + target, loss on the target only.

Each row has ``audio`` (a path), ``prompt`` (a conversation with one audio item) and
``target`` (the assistant's text). The model adapter renders the conversation with the chat
template, expands the audio placeholder, appends the target and the end-of-turn token, and
returns ``labels`` that are -100 everywhere except the target tokens (and the end token, so
the model learns to stop). Sequences are laid out exactly as in generation and GRPO: the
left-padded prompt, then the completion.

Features come from a ``FeatureCache``, so each clip is featurised once per run, not once per
epoch; nothing truncates the audio (TRL's SFTTrainer's ``max_length`` would cut the audio
samples of these models, not the text).
"""

from __future__ import annotations

from typing import Any

import torch

from .datasets import clean_conversation
from .features import FeatureCache


class SupervisedCollator:
    def __init__(self, audio_lm, cache: FeatureCache | None = None):
        self.audio_lm = audio_lm
        self.cache = cache if cache is not None else FeatureCache(audio_lm.featurize_one)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        feats = [self.cache.get(r["audio"]) for r in rows]
        # Built on the CPU: this runs in forked DataLoader workers, where touching CUDA fails
        # ("Cannot re-initialize CUDA in forked subprocess"); the Trainer moves the batch.
        batch = self.audio_lm.build_inputs(feats, [clean_conversation(r["prompt"]) for r in rows],
                                           add_generation_prompt=True, completions=[r["target"] for r in rows],
                                           device="cpu")
        self.cache.end_step()
        return batch


class ListDataset(torch.utils.data.Dataset):
    """Rows as a map-style dataset (the Trainer's sampler shuffles and resumes it deterministically)."""

    def __init__(self, rows: list[dict[str, Any]]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]


__all__ = ["SupervisedCollator", "ListDataset"]
