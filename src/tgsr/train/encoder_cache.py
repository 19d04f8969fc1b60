"""Per-clip memo of a frozen audio encoder's outputs, for one GRPO generation batch.

With ``tgsr.freeze_audio_encoder`` the audio tower is a fixed function: a clip gives the same
encoder output for each of its G copies and in every pass of the step (generation, old
policy, reference, policy loss). ``EncoderCache`` replaces the tower's ``forward`` on the
model instance with a memo: every row of an incoming batch is looked up by its content (its
log-mel features and mask, compared exactly), only unseen clips go through the original
encoder (as one sub-batch, under ``no_grad``), and the outputs are put back together in the
caller's row order. The model's own code (placeholder scatter, projector, positions) runs
unchanged on them, so the trainable parts (e.g. Qwen2-Audio's and AF3's projector) still get
their gradients.

Keying by content rather than by trainer row means no plumbing through ``generate`` and no
way to hand a row another clip's output: a lookup is a cheap fingerprint (sums of the row's
tensors) followed by an exact ``torch.equal`` on the candidate.

The memo steps aside (calls the original encoder) whenever reusing an output could change
the result: a tower parameter requires grad (the encoder trains, e.g. not frozen or LoRA
inside it), the tower is in training mode with dropout or layer-drop, the inputs require
grad, or the caller asks for extra outputs (attentions, hidden states).

Two input layouts exist among the supported families:

- ``rows`` (Qwen2-Audio, Audio Flamingo 3): ``input_features`` [B, 128, F] plus per-row
  tensors (a mask); output ``last_hidden_state`` [B, T, D], one row per input row;
- ``packed`` (Qwen2.5-Omni): ``input_features`` [128, sum F_i] with ``feature_lens`` and
  ``aftercnn_lens`` [B]; output [sum T_i, D], rows concatenated.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

log = logging.getLogger(__name__)

_DROPOUT_FIELDS = ("dropout", "attention_dropout", "activation_dropout", "layerdrop", "encoder_layerdrop")


def _fingerprint(tensors: tuple) -> tuple:
    out = []
    for t in tensors:
        if isinstance(t, torch.Tensor):
            out.append((tuple(t.shape), str(t.dtype), float(t.double().sum()) if t.numel() else 0.0))
        else:
            out.append(t)
    return tuple(out)


def _first_of_each(keys: list, candidates: list[int]) -> list[int]:
    """Indices among ``candidates`` whose key equals no earlier kept one's."""
    kept: list[int] = []
    for i in candidates:
        if not any(_same(keys[i], keys[j]) for j in kept):
            kept.append(i)
    return kept


def _same(a: tuple, b: tuple) -> bool:
    for x, y in zip(a, b):
        if isinstance(x, torch.Tensor):
            if not isinstance(y, torch.Tensor) or x.shape != y.shape or x.dtype != y.dtype or not torch.equal(x, y):
                return False
        elif x != y:
            return False
    return len(a) == len(b)


class EncoderCache:
    """Replaces ``tower.forward`` with a per-clip memo (see the module docstring).

    ``misses`` counts clips that went through the encoder, ``hits`` rows served from the
    memo (including the other copies of a clip first seen in the same batch); ``bypassed``
    counts calls that went to the original encoder because caching would not be exact.
    ``clear()`` forgets every output (the trainer calls it at the start of each generation
    batch); ``remove()`` restores the original ``forward``.
    """

    def __init__(self, tower: torch.nn.Module, *, max_entries: int = 4096):
        self.tower = tower
        self.max_entries = int(max_entries)
        self.original = tower.forward
        params = inspect.signature(self.original).parameters
        self.layout = "packed" if "feature_lens" in params else "rows"
        named = [n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        # The tensors that describe one row: the features first, then the family's mask argument.
        self._names = ("input_features", "feature_lens", "aftercnn_lens") if self.layout == "packed" else \
            ("input_features",) + tuple(n for n in named if n != "input_features")
        self._entries: dict[tuple, list[tuple[tuple, torch.Tensor]]] = {}
        self._count = 0
        self.hits = 0
        self.misses = 0
        self.bypassed = 0
        tower.forward = self.forward

    # ------------------------------------------------------------------ state
    def clear(self) -> None:
        self._entries.clear()
        self._count = 0

    def remove(self) -> None:
        if self.tower.__dict__.get("forward") == self.forward:
            del self.tower.forward
        self.clear()

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "bypassed": self.bypassed, "entries": self._count}

    def exact(self) -> bool:
        """Whether a stored output is what the encoder would compute now."""
        if any(p.requires_grad for p in self.tower.parameters()):
            return False  # the encoder trains: its outputs change and need their graph
        if self.tower.training:
            cfg = getattr(self.tower, "config", None)
            if any(float(getattr(cfg, f, 0.0) or 0.0) > 0 for f in _DROPOUT_FIELDS):
                return False
            if any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in self.tower.modules()):
                return False
        return True

    # ------------------------------------------------------------------ memo
    def _context(self) -> tuple:
        # The same clip under autocast gives other numbers: keep the two apart.
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
        if torch.is_autocast_enabled(device_type):
            return ("autocast", str(torch.get_autocast_dtype(device_type)))
        return ("plain",)

    def _lookup(self, key: tuple) -> torch.Tensor | None:
        for stored, out in self._entries.get(_fingerprint(key), ()):
            if _same(stored, key):
                return out
        return None

    def _store(self, key: tuple, out: torch.Tensor) -> None:
        if self._count >= self.max_entries:
            self.clear()
        # Own copies: a key sliced from a batch would otherwise keep the whole batch alive.
        key = tuple(k.clone() if isinstance(k, torch.Tensor) else k for k in key)
        self._entries.setdefault(_fingerprint(key), []).append((key, out))
        self._count += 1

    def forward(self, *args, **kwargs):
        extra = {k: v for k, v in kwargs.items() if k != "return_dict"}
        return_dict = kwargs.get("return_dict", True)
        names = self._names
        bound = dict(zip(names, args))
        for n in names:
            if n in extra:
                bound[n] = extra.pop(n)
        features = bound.get("input_features")
        wants_more = any(extra.get(k) for k in ("output_attentions", "output_hidden_states"))
        wants_more |= any(isinstance(v, torch.Tensor) for v in extra.values())  # precomputed whole-batch tensors
        if wants_more or not isinstance(features, torch.Tensor) or features.requires_grad or not self.exact():
            self.bypassed += 1
            return self.original(*args, **kwargs)
        if self.layout == "packed":
            hidden = self._packed(features, bound["feature_lens"], bound.get("aftercnn_lens"), extra)
        else:
            hidden = self._rows(features, {n: bound.get(n) for n in names[1:]}, extra)
        if return_dict is False:
            return (hidden,)
        return BaseModelOutputWithPooling(last_hidden_state=hidden, pooler_output=hidden)

    def _rows(self, features: torch.Tensor, others: dict[str, Any], extra: dict) -> torch.Tensor:
        b = features.shape[0]
        ctx = self._context()

        def row_part(v, i):
            return v[i:i + 1].contiguous() if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == b else v

        keys = [(ctx, features[i:i + 1].contiguous(), *(row_part(others[n], i) for n in others)) for i in range(b)]
        outs = [self._lookup(k) for k in keys]
        missing = [i for i, o in enumerate(outs) if o is None]
        # Identical rows within the batch (the G copies of a clip) go through the encoder once.
        unique = _first_of_each(keys, missing)
        if missing:
            idx = torch.tensor(unique, device=features.device)
            self.misses += len(unique)
            sub = {n: (v.index_select(0, idx.to(v.device)) if isinstance(v, torch.Tensor) and v.dim()
                       and v.shape[0] == b else v) for n, v in others.items()}
            with torch.no_grad():
                res = self.original(features.index_select(0, idx), **sub, **extra, return_dict=True).last_hidden_state
            for j, i in enumerate(unique):
                self._store(keys[i], res[j:j + 1])
            outs = [self._lookup(k) for k in keys]
        self.hits += b - len(unique)
        return torch.cat(outs, dim=0)

    def _packed(self, features: torch.Tensor, feature_lens: torch.Tensor, aftercnn_lens, extra: dict) -> torch.Tensor:
        lens = [int(n) for n in feature_lens.tolist()]
        ctx = self._context()
        starts = [sum(lens[:i]) for i in range(len(lens))]
        # Contiguous copies: a fingerprint must not depend on the memory layout of the same values.
        keys = [(ctx, features[:, s:s + n].contiguous()) for s, n in zip(starts, lens)]
        outs = [self._lookup(k) for k in keys]
        missing = [i for i, o in enumerate(outs) if o is None]
        unique = _first_of_each(keys, missing)
        if missing:
            self.misses += len(unique)
            sub_lens = feature_lens[unique]
            sub_after = aftercnn_lens[unique] if isinstance(aftercnn_lens, torch.Tensor) else None
            if sub_after is None:
                sub_after, _ = self.tower._get_feat_extract_output_lengths(sub_lens)
            with torch.no_grad():
                res = self.original(torch.cat([keys[i][1] for i in unique], dim=1), feature_lens=sub_lens,
                                    aftercnn_lens=sub_after, **extra, return_dict=True).last_hidden_state
            _, out_lens = self.tower._get_feat_extract_output_lengths(sub_lens)
            for i, part in zip(unique, res.split([int(n) for n in out_lens.tolist()], dim=0)):
                self._store(keys[i], part)
            outs = [self._lookup(k) for k in keys]
        self.hits += len(lens) - len(unique)
        return torch.cat(outs, dim=0)


def install_encoder_caches(models, *, max_entries: int = 4096) -> list[EncoderCache]:
    """An ``EncoderCache`` on every frozen ``audio_tower`` of ``models`` (each tower once).

    Towers with a trainable parameter are left alone: their outputs change every step.
    """
    from .common import audio_encoder_modules

    caches, seen = [], set()
    for model in models:
        if model is None:
            continue
        for name, tower in audio_encoder_modules(model):
            if id(tower) in seen:
                continue
            seen.add(id(tower))
            existing = getattr(tower.__dict__.get("forward"), "__self__", None)
            if isinstance(existing, EncoderCache):
                caches.append(existing)  # already installed (a second trainer on the same model)
                continue
            if any(p.requires_grad for p in tower.parameters()):
                log.info("%s: the audio encoder trains; its outputs are not cached", name)
                continue
            caches.append(EncoderCache(tower, max_entries=max_entries))
    return caches


__all__ = ["EncoderCache", "install_encoder_caches"]
