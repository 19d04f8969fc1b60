"""Random-weight model folders laid out exactly like the real checkpoints on the Hugging Face hub.

tgsr's tiny models (``tgsr.models.tiny``) carry tgsr's own templates and a thinker-only layout;
a user's folder is whatever the hub ships: Qwen2.5-Omni-7B's full thinker + talker + vocoder
checkpoint in five shards with its template only in the processor's ``chat_template.json``,
Qwen2-Audio-7B-Instruct's text-only tokenizer template, Audio Flamingo 3's ``<sound>`` template
in ``chat_template.jinja``. ``build_hub_layout(repo_id, out)`` writes such a folder, so the path a
user takes (template probing, key mapping, hub ids, the shipped recipes) runs here without
the weights:

- the hub's own text files, from ``tgsr/assets/hub/<org>__<name>/`` (each file's source and
  confidence is in the PROVENANCE.md beside it): ``config.json``, ``generation_config.json``,
  ``preprocessor_config.json`` / ``processor_config.json``, ``tokenizer_config.json``, chat
  template files, ``special_tokens_map.json``, ``added_tokens.json``;
- ``config.json`` with the real ``architectures``, ``model_type``, token ids and vocabulary
  sizes, and only the layer sizes shrunk (``size="xs"``) or kept (``size="full"``, the 7B
  shape, for GPU checks);
- a tokenizer whose special tokens sit at the real ids (151643 ...): tgsr's byte-level BPE on
  its frozen corpus, padded with unused filler tokens up to the first special id, written as
  ``tokenizer.json``, ``vocab.json`` and ``merges.txt``;
- random weights of the real classes under the hub's key names (Omni: ``thinker.*``,
  ``talker.*``, ``token2wav.*``), sharded into as many ``model-0000k-of-0000n.safetensors``
  files as the hub has, with ``model.safetensors.index.json``.

``tgsr model hub-layout --repo Qwen/Qwen2.5-Omni-7B --out DIR`` is the command; ``install_in_cache``
places a folder in a Hugging Face cache as a snapshot of its repo id.
"""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TgsrError

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "hub"
HUB_TEXT_FILES = ("config.json", "generation_config.json", "preprocessor_config.json", "processor_config.json",
                  "tokenizer_config.json", "chat_template.json", "chat_template.jinja", "special_tokens_map.json",
                  "added_tokens.json")
FILLER = "<|tgsr_unused_{}|>"  # regular-vocabulary entries no merge produces: they keep special ids real


@dataclass(frozen=True)
class HubCheckpoint:
    repo_id: str
    family: str
    shards: int                      # safetensors shards on the hub
    model_class: str                 # the transformers class whose state dict the hub checkpoint is
    regular_vocab: int = 151643      # ids below the first special token


CHECKPOINTS: dict[str, HubCheckpoint] = {
    "Qwen/Qwen2.5-Omni-7B": HubCheckpoint("Qwen/Qwen2.5-Omni-7B", "qwen2.5-omni", 5,
                                          "Qwen2_5OmniForConditionalGeneration"),
    "Qwen/Qwen2-Audio-7B-Instruct": HubCheckpoint("Qwen/Qwen2-Audio-7B-Instruct", "qwen2-audio", 5,
                                                  "Qwen2AudioForConditionalGeneration"),
    # the shard count of the hf repo was not established; 4 keeps the folder sharded like the others
    "nvidia/audio-flamingo-3-hf": HubCheckpoint("nvidia/audio-flamingo-3-hf", "audio-flamingo-3", 4,
                                                "AudioFlamingo3ForConditionalGeneration"),
}

# Layer sizes for size="xs", by config path ("a.b" descends into nested configs). Everything else,
# token ids and vocabulary sizes included, stays as the hub has it.
# The text width is the smallest that keeps the real structure: with the real 152k-156k vocabularies
# the LM head dominates every CPU test, and its cost is linear in the width.
_TEXT_XS = {"hidden_size": 16, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
            "num_key_value_heads": 1, "max_window_layers": 2}
_SHRINK: dict[str, dict[str, dict[str, Any]]] = {
    "qwen2.5-omni": {
        "thinker_config.text_config": {**_TEXT_XS, "rope_scaling.mrope_section": [2, 1, 1]},  # sums to head_dim / 2
        "thinker_config.audio_config": {"d_model": 64, "encoder_layers": 2, "num_hidden_layers": 2,
                                        "encoder_attention_heads": 2, "encoder_ffn_dim": 128, "output_dim": 16},
        "thinker_config.vision_config": {"depth": 1, "embed_dim": 16, "hidden_size": 16, "intermediate_size": 32,
                                         "num_heads": 2, "out_hidden_size": 16, "fullatt_block_indexes": [0]},
        "talker_config": {"hidden_size": 32, "embedding_size": 16, "intermediate_size": 64, "num_hidden_layers": 1,
                          "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
                          "max_window_layers": 1, "rope_scaling.mrope_section": [2, 3, 3]},
        # transformers 5 reads hidden_size / num_hidden_layers / num_attention_heads here (the hub's
        # dim / depth / heads equal its defaults, so real checkpoints build right either way)
        "token2wav_config.dit_config": {"dim": 32, "depth": 1, "heads": 2, "hidden_size": 32, "num_hidden_layers": 1,
                                        "num_attention_heads": 2, "head_dim": 16, "ff_mult": 2,
                                        "emb_dim": 16, "enc_emb_dim": 16, "enc_dim": 32,
                                        "enc_channels": [16, 16, 16, 16, 32],
                                        "enc_kernel_sizes": [5, 3, 3, 3, 1], "enc_dilations": [1, 2, 3, 4, 1],
                                        "enc_attention_channels": 8, "enc_res2net_scale": 2, "enc_se_channels": 8,
                                        "look_ahead_layers": [0], "look_backward_layers": [0]},
        "token2wav_config.bigvgan_config": {"upsample_initial_channel": 64},
    },
    "qwen2-audio": {
        "text_config": _TEXT_XS,
        "audio_config": {"d_model": 64, "encoder_layers": 2, "encoder_attention_heads": 2, "encoder_ffn_dim": 128},
    },
    "audio-flamingo-3": {
        "text_config": {**_TEXT_XS, "layer_types": ["full_attention", "full_attention"]},
        "audio_config": {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2,
                         "num_hidden_layers": 2},
    },
}
SIZES = ("xs", "full")


def checkpoint(repo_id: str) -> HubCheckpoint:
    if repo_id not in CHECKPOINTS:
        raise TgsrError(f"no hub layout for {repo_id!r}; known: {', '.join(CHECKPOINTS)}")
    return CHECKPOINTS[repo_id]


def asset_dir(repo_id: str) -> Path:
    return ASSETS / repo_id.replace("/", "__")


def hub_text(repo_id: str, name: str) -> str | None:
    path = asset_dir(repo_id) / name
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _set_path(cfg: dict, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = cfg
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value


_TEXT_SECTION = {"qwen2.5-omni": "thinker_config.text_config", "qwen2-audio": "text_config",
                 "audio-flamingo-3": "text_config"}


def hub_config(repo_id: str, size: str = "xs", text_layers: int | None = None) -> dict:
    """The hub's ``config.json``, with the layer sizes shrunk for ``size="xs"``; ``text_layers``
    keeps the width and cuts the language model's depth (a 7B-wide model that fits a memory budget)."""
    if size not in SIZES:
        raise TgsrError(f"unknown size {size!r}; expected one of {SIZES}")
    cfg = copy.deepcopy(json.loads(hub_text(repo_id, "config.json")))
    family = checkpoint(repo_id).family
    if size == "xs":
        for section, values in _SHRINK[family].items():
            for key, value in values.items():
                _set_path(cfg, f"{section}.{key}", value)
    if text_layers is not None:
        if text_layers < 1:
            raise TgsrError(f"text_layers must be >= 1, got {text_layers}")
        section = _TEXT_SECTION[family]
        for key in ("num_hidden_layers", "max_window_layers"):
            _set_path(cfg, f"{section}.{key}", text_layers)
        if family == "audio-flamingo-3":
            _set_path(cfg, f"{section}.layer_types", ["full_attention"] * text_layers)
    return cfg


# ------------------------------------------------------------------ tokenizer

def _special_tokens(repo_id: str) -> dict[int, dict]:
    cfg = json.loads(hub_text(repo_id, "tokenizer_config.json"))
    return {int(i): tok for i, tok in cfg["added_tokens_decoder"].items()}


def write_tokenizer(repo_id: str, out: Path) -> None:
    """``tokenizer.json``, ``vocab.json`` and ``merges.txt`` with the special tokens at the hub's ids."""
    from .tiny import train_bpe

    spec = checkpoint(repo_id)
    specials = _special_tokens(repo_id)
    if min(specials) != spec.regular_vocab:
        raise TgsrError(f"{repo_id}: first special id {min(specials)}, expected {spec.regular_vocab}")
    vocab, merges = train_bpe([])
    for i in range(len(vocab), spec.regular_vocab):
        vocab[FILLER.format(i)] = i
    added = [{"id": i, "content": t["content"], "single_word": t.get("single_word", False),
              "lstrip": t.get("lstrip", False), "rstrip": t.get("rstrip", False),
              "normalized": t.get("normalized", False), "special": t.get("special", True)}
             for i, t in sorted(specials.items())]
    if [a["id"] for a in added] != list(range(spec.regular_vocab, spec.regular_vocab + len(added))):
        raise TgsrError(f"{repo_id}: special token ids are not contiguous; tokenizers cannot place them")
    # Qwen2's tokenizer.json: NFC, the digit-splitting pre-tokenizer, byte-level BPE.
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": PRETOKENIZE_REGEX}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [list(m) for m in merges]},
    }
    (out / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False), encoding="utf-8")
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n",
                                    encoding="utf-8")


# ------------------------------------------------------------------ weights

def _build_model(spec: HubCheckpoint, folder: Path, seed: int, dtype, device: str | None):
    import torch
    import transformers
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder)
    cls = getattr(transformers, spec.model_class)
    torch.manual_seed(seed)
    with torch.device(device or "cpu"):
        model = cls._from_config(config, dtype=dtype)
    return model.eval()


def reshard(folder: Path, n_shards: int) -> None:
    """Split ``model.safetensors`` into exactly ``n_shards`` files named and indexed as the hub's are
    (``model-0000k-of-0000n.safetensors``; tensors in key order, about equal bytes per shard)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    single = folder / "model.safetensors"
    with safe_open(str(single), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in sorted(f.keys())}
    sizes = {k: t.numel() * t.element_size() for k, t in tensors.items()}
    total = sum(sizes.values())
    n_shards = max(1, min(n_shards, len(tensors)))
    groups: list[list[str]] = [[] for _ in range(n_shards)]
    done, g = 0, 0
    for i, key in enumerate(tensors):
        left_keys, left_groups = len(tensors) - i, n_shards - g
        # move on once this shard holds its share, or when every later shard still needs a tensor
        if groups[g] and g < n_shards - 1 and (done >= total * (g + 1) / n_shards or left_keys < left_groups):
            g += 1
        groups[g].append(key)
        done += sizes[key]
    weight_map = {}
    for g, keys in enumerate(groups):
        name = f"model-{g + 1:05d}-of-{n_shards:05d}.safetensors"
        save_file({k: tensors[k].contiguous() for k in keys}, str(folder / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in keys})
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    single.unlink()


def build_hub_layout(repo_id: str, out_dir: str | Path, *, size: str = "xs", seed: int = 0, dtype: str = "bfloat16",
                     device: str | None = None, text_layers: int | None = None) -> Path:
    """Write a random-weight folder of ``repo_id`` laid out as on the hub (see module doc); ``device``
    is where the random weights are made (``cuda`` makes a 7B one in seconds)."""
    import torch

    spec = checkpoint(repo_id)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise TgsrError(f"{out}: not empty; give a new folder for the hub-layout model")
    out.mkdir(parents=True, exist_ok=True)
    config = json.dumps(hub_config(repo_id, size, text_layers), indent=2) + "\n"
    (out / "config.json").write_text(config, encoding="utf-8")
    model = _build_model(spec, out, seed, getattr(torch, dtype), device)
    model.save_pretrained(out, max_shard_size="1000GB")  # one file in the hub's key layout, split below
    del model
    reshard(out, spec.shards)
    # save_pretrained rewrote config.json and generation_config.json in transformers' own form:
    # put the hub's files back (with the shrunk sizes), and every other hub text file next to them.
    (out / "config.json").write_text(config, encoding="utf-8")
    gen = out / "generation_config.json"
    if gen.exists():
        gen.unlink()
    for name in HUB_TEXT_FILES:
        if name != "config.json" and (asset_dir(repo_id) / name).is_file():
            shutil.copyfile(asset_dir(repo_id) / name, out / name)
    write_tokenizer(repo_id, out)
    return out


def install_in_cache(folder: str | Path, repo_id: str, cache_dir: str | Path, revision: str = "0" * 40) -> Path:
    """Place ``folder`` in a Hugging Face hub cache as the ``main`` snapshot of ``repo_id`` (the layout
    ``huggingface_hub`` reads: ``models--org--name/refs/main`` and ``snapshots/<revision>/``)."""
    root = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    snap = root / "snapshots" / revision
    snap.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(folder, snap, dirs_exist_ok=True)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(revision, encoding="utf-8")
    return snap


__all__ = ["CHECKPOINTS", "HubCheckpoint", "SIZES", "asset_dir", "build_hub_layout", "checkpoint", "hub_config",
           "hub_text", "install_in_cache", "write_tokenizer"]
