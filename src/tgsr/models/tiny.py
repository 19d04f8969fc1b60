"""Tiny, randomly initialised models of the real architectures, built fully offline.

``build_tiny(family, size, out_dir, seed)`` writes a folder that ``tgsr.models.load_model``
and plain ``transformers`` ``from_pretrained`` open with ``HF_HUB_OFFLINE=1``:

- ``tokenizer.json`` & co: a byte-level BPE trained with ``tokenizers`` on a frozen corpus
  (``assets/tokenizer_corpus.jsonl``, ``TOKENIZER_CORPUS``), with Qwen2's pre-tokenizer (every digit is its own
  token, which suits timestamps) and the family's special tokens first, in Qwen order,
  wrapped as ``Qwen2Tokenizer``;
- ``preprocessor_config.json``: a 128-mel ``WhisperFeatureExtractor`` (hop 320 by default,
  i.e. 12.5 audio tokens per second, which trains ~1.6x faster than hop 160 at equal
  quality on tiny models); Qwen2-Audio and AF3 also save their processor;
- ``config.json`` + ``model.safetensors``: the family's real model class with small sizes.

The corpus is frozen text, not generated from ``tgsr.prompts`` at build time: token ids must
never change between builds, or old checkpoints would decode garbage. Byte-level BPE still
encodes any text, so prompt changes only cost a few more tokens.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import TgsrError
from .templates import family_template

SIZES = ("xs", "s", "m")
VOCAB_SIZE = 1024
CHUNK_SECONDS = 30
SYSTEM_PROMPT = "You are a helpful assistant."

# Special tokens per family, first in the vocabulary and in Qwen order.
_QWEN_BASE = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
SPECIAL_TOKENS: dict[str, list[str]] = {
    "qwen2.5-omni": _QWEN_BASE + ["<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>", "<|IMAGE|>", "<|VIDEO|>",
                                  "<|vision_bos|>", "<|vision_eos|>"],
    "qwen2-audio": _QWEN_BASE + ["<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"],
    "audio-flamingo-3": _QWEN_BASE + ["<sound>"],
    "qwen3-omni": _QWEN_BASE + ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>",
                                "<|audio_start|>", "<|audio_end|>", "<|audio_pad|>"],
}
# Named special tokens, so processors find ``tokenizer.audio_token`` and friends.
_NAMED_TOKENS: dict[str, dict[str, str]] = {
    "qwen2.5-omni": {"audio_token": "<|AUDIO|>", "audio_bos_token": "<|audio_bos|>",
                     "audio_eos_token": "<|audio_eos|>", "image_token": "<|IMAGE|>", "video_token": "<|VIDEO|>",
                     "vision_bos_token": "<|vision_bos|>", "vision_eos_token": "<|vision_eos|>"},
    "qwen2-audio": {"audio_token": "<|AUDIO|>", "audio_bos_token": "<|audio_bos|>",
                    "audio_eos_token": "<|audio_eos|>"},
    "audio-flamingo-3": {"audio_token": "<sound>"},
    "qwen3-omni": {"audio_token": "<|audio_pad|>", "audio_bos_token": "<|audio_start|>",
                   "audio_eos_token": "<|audio_end|>", "image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                   "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>"},
}


# ------------------------------------------------------------------ frozen corpus
# tgsr's prompt wording and synthetic-corpus-like text, one JSON string per line (4909 lines).
# Never edit it: the tokenizer, and so every tiny checkpoint, depends on it. Its hash is checked
# on load and its tokenizers' fingerprints by the tests.
CORPUS_FILE = Path(__file__).resolve().parent.parent / "assets" / "tokenizer_corpus.jsonl"
CORPUS_SHA256 = "7e86debace5659d979f79be9e31f886d37bd8e07212f5526c44865cb89b8b615"


def _read_corpus() -> tuple[str, ...]:
    raw = CORPUS_FILE.read_bytes()
    if hashlib.sha256(raw).hexdigest() != CORPUS_SHA256:
        raise TgsrError(f"{CORPUS_FILE} changed (sha256 differs): tiny tokenizers would no longer match their "
                        "checkpoints; restore the file")
    return tuple(json.loads(line) for line in raw.decode("utf-8").splitlines())


TOKENIZER_CORPUS: tuple[str, ...] = _read_corpus()


# ------------------------------------------------------------------ tokenizer

def train_bpe(special_tokens: list[str], vocab_size: int = VOCAB_SIZE) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level BPE (Qwen2's pre-tokenizer: every digit its own token) trained on the frozen
    corpus; ``special_tokens`` take the first ids. Returns (vocab, merges)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=special_tokens,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(TOKENIZER_CORPUS, trainer=trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return model["vocab"], merges


def build_tokenizer(family: str):
    """Train the byte-level BPE on the frozen corpus and wrap it as ``Qwen2Tokenizer``."""
    from transformers import Qwen2Tokenizer

    specials = SPECIAL_TOKENS[family]
    vocab, merges = train_bpe(specials)
    tok = Qwen2Tokenizer(
        vocab=vocab, merges=merges, unk_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        extra_special_tokens=_NAMED_TOKENS[family], model_max_length=32768,
    )
    tok.add_special_tokens({"additional_special_tokens": specials[1:]}, replace_extra_special_tokens=False)
    tok.chat_template = family_template(family)
    return tok


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of the vocabulary (ids and strings): changes iff token ids change."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(vocab).encode()).hexdigest()[:16]


# ------------------------------------------------------------------ configs

@dataclass(frozen=True)
class TinySize:
    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    text_ffn: int
    audio_hidden: int
    audio_layers: int
    audio_heads: int
    audio_ffn: int


TINY_SIZES: dict[str, TinySize] = {
    "xs": TinySize(64, 2, 2, 1, 128, 64, 2, 2, 128),        # ~0.3 M parameters: tests
    "s": TinySize(128, 4, 4, 2, 384, 128, 2, 4, 256),       # ~1.4 M: the demo size that learned to listen
    "m": TinySize(256, 4, 4, 2, 768, 192, 3, 4, 512),       # a few M
}


def _feature_extractor(hop_length: int):
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, hop_length=hop_length,
                                   chunk_length=CHUNK_SECONDS, n_fft=400, padding_value=0.0,
                                   return_attention_mask=True)


def _text_kwargs(sz: TinySize, tok) -> dict:
    return dict(
        vocab_size=len(tok), hidden_size=sz.text_hidden, intermediate_size=sz.text_ffn,
        num_hidden_layers=sz.text_layers, num_attention_heads=sz.text_heads, num_key_value_heads=sz.text_kv_heads,
        max_position_embeddings=4096, tie_word_embeddings=False,
        bos_token_id=None, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"), pad_token_id=tok.pad_token_id,
    )


# Qwen2.5-Omni thinker config keys that hold a special token's id, and the token
OMNI_SPECIAL_TOKENS = {
    "audio_token_index": "<|AUDIO|>", "image_token_index": "<|IMAGE|>", "video_token_index": "<|VIDEO|>",
    "audio_start_token_id": "<|audio_bos|>", "audio_end_token_id": "<|audio_eos|>",
    "vision_start_token_id": "<|vision_bos|>", "vision_end_token_id": "<|vision_eos|>",
    "user_token_id": "<|im_start|>",
}


def omni_thinker_config(data: dict, tok):
    """A ``Qwen2_5OmniThinkerConfig`` from a config dict (any size, e.g. the 7B's shapes), with its
    special-token ids, padding and end of turn set to ``tok``'s; also the ids it had before."""
    from transformers.models.qwen2_5_omni.configuration_qwen2_5_omni import Qwen2_5OmniThinkerConfig

    data = {**data, "text_config": dict(data.get("text_config") or {})}
    original = {k: data.get(k) for k in OMNI_SPECIAL_TOKENS}
    for key, token in OMNI_SPECIAL_TOKENS.items():
        data[key] = tok.convert_tokens_to_ids(token)
    data["pad_token_id"] = tok.pad_token_id
    text = data["text_config"]
    text.update(pad_token_id=tok.pad_token_id, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
                bos_token_id=None)
    if text.get("vocab_size", len(tok)) < len(tok):
        raise ValueError(f"vocab_size {text['vocab_size']} < tokenizer size {len(tok)}")
    return Qwen2_5OmniThinkerConfig(**data), original


def _omni_config(sz: TinySize, tok, hop: int):
    from transformers.models.qwen2_5_omni.configuration_qwen2_5_omni import (
        Qwen2_5OmniAudioEncoderConfig,
        Qwen2_5OmniTextConfig,
        Qwen2_5OmniVisionEncoderConfig,
    )

    frames_per_chunk = CHUNK_SECONDS * 16000 // hop
    head_dim = sz.text_hidden // sz.text_heads
    half = head_dim // 2  # mrope_section must sum to head_dim / 2
    mrope = [half - 2 * (half * 3 // 8), half * 3 // 8, half * 3 // 8]
    text = Qwen2_5OmniTextConfig(**_text_kwargs(sz, tok),
                                 rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0,
                                                  "mrope_section": mrope})
    audio = Qwen2_5OmniAudioEncoderConfig(
        num_mel_bins=128, encoder_layers=sz.audio_layers, encoder_attention_heads=sz.audio_heads,
        encoder_ffn_dim=sz.audio_ffn, d_model=sz.audio_hidden, output_dim=sz.text_hidden,
        # one attention window over the whole 30 s chunk (the default restarts every 2 s)
        n_window=frames_per_chunk // 2, max_source_positions=max(1500, frames_per_chunk // 2),
    )
    vision = Qwen2_5OmniVisionEncoderConfig(depth=1, hidden_size=16, intermediate_size=32, num_heads=2,
                                            out_hidden_size=sz.text_hidden, fullatt_block_indexes=[0])
    return omni_thinker_config({"audio_config": audio.to_dict(), "vision_config": vision.to_dict(),
                                "text_config": text.to_dict()}, tok)[0]


def _qwen2_audio_config(sz: TinySize, tok, hop: int):
    from transformers import Qwen2AudioConfig, Qwen2AudioEncoderConfig, Qwen2Config

    frames = CHUNK_SECONDS * 16000 // hop
    audio = Qwen2AudioEncoderConfig(num_mel_bins=128, encoder_layers=sz.audio_layers,
                                    encoder_attention_heads=sz.audio_heads, encoder_ffn_dim=sz.audio_ffn,
                                    d_model=sz.audio_hidden, max_source_positions=frames // 2)
    text = Qwen2Config(**_text_kwargs(sz, tok))
    return Qwen2AudioConfig(audio_config=audio, text_config=text,
                            audio_token_index=tok.convert_tokens_to_ids("<|AUDIO|>"), pad_token_id=tok.pad_token_id)


def _af3_config(sz: TinySize, tok, hop: int):
    from transformers import AudioFlamingo3Config, AudioFlamingo3EncoderConfig, Qwen2Config

    frames = CHUNK_SECONDS * 16000 // hop
    audio = AudioFlamingo3EncoderConfig(num_mel_bins=128, num_hidden_layers=sz.audio_layers,
                                        num_attention_heads=sz.audio_heads, intermediate_size=sz.audio_ffn,
                                        hidden_size=sz.audio_hidden, max_source_positions=frames // 2)
    text = Qwen2Config(**_text_kwargs(sz, tok))
    return AudioFlamingo3Config(audio_config=audio, text_config=text,
                                audio_token_id=tok.convert_tokens_to_ids("<sound>"), pad_token_id=tok.pad_token_id)


def _qwen3_omni_config(sz: TinySize, tok, hop: int):
    from transformers.models.qwen3_omni_moe.configuration_qwen3_omni_moe import (
        Qwen3OmniMoeAudioEncoderConfig,
        Qwen3OmniMoeTextConfig,
        Qwen3OmniMoeThinkerConfig,
        Qwen3OmniMoeVisionEncoderConfig,
    )

    ids = tok.convert_tokens_to_ids
    head_dim = sz.text_hidden // sz.text_heads
    half = head_dim // 2
    mrope = [half - 2 * (half // 4), half // 4, half // 4]
    kw = _text_kwargs(sz, tok)
    kw.pop("intermediate_size")
    text = Qwen3OmniMoeTextConfig(**kw, head_dim=head_dim, intermediate_size=sz.text_ffn,
                                  moe_intermediate_size=sz.text_ffn // 2, num_experts=4, num_experts_per_tok=2,
                                  rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0,
                                                   "mrope_section": mrope, "mrope_interleaved": True,
                                                   "interleaved": True})
    # n_window stays 50: the model's token-count formula assumes 100-frame chunks
    audio = Qwen3OmniMoeAudioEncoderConfig(
        num_mel_bins=128, encoder_layers=sz.audio_layers, encoder_attention_heads=sz.audio_heads,
        encoder_ffn_dim=sz.audio_ffn, d_model=sz.audio_hidden, output_dim=sz.text_hidden,
        downsample_hidden_size=16, n_window=50, n_window_infer=800, max_source_positions=1500,
    )
    vision = Qwen3OmniMoeVisionEncoderConfig(depth=1, hidden_size=16, intermediate_size=32, num_heads=2,
                                             out_hidden_size=sz.text_hidden, deepstack_visual_indexes=[0],
                                             num_position_embeddings=64)
    return Qwen3OmniMoeThinkerConfig(
        audio_config=audio, vision_config=vision, text_config=text,
        audio_token_id=ids("<|audio_pad|>"), image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        audio_start_token_id=ids("<|audio_start|>"), vision_start_token_id=ids("<|vision_start|>"),
        user_token_id=ids("<|im_start|>"), pad_token_id=tok.pad_token_id,
    )


_CONFIGS = {"qwen2.5-omni": _omni_config, "qwen2-audio": _qwen2_audio_config, "audio-flamingo-3": _af3_config,
            "qwen3-omni": _qwen3_omni_config}
# Hop 320 halves the audio tokens of the 4x-downsampling encoders (12.5 tokens/s); Qwen3-Omni's
# encoder downsamples 8x and already gives 12.5 tokens/s at the standard hop 160.
DEFAULT_HOPS = {"qwen2.5-omni": 320, "qwen2-audio": 320, "audio-flamingo-3": 320, "qwen3-omni": 160}


def _model_class(family: str):
    from . import FAMILIES

    return FAMILIES[family].model_class()


def build_tiny(family: str, size: str = "xs", out_dir: str | Path = "tiny-model", seed: int = 0, *,
               hop_length: int | None = None) -> Path:
    """Write a tiny random model of ``family`` to ``out_dir`` and return the folder.

    Deterministic given ``seed``: same tokenizer, config and weights. ``hop_length`` 160
    gives the real models' 25 audio tokens/s; the default (``DEFAULT_HOPS``: 320, i.e.
    12.5/s, except Qwen3-Omni) is faster to train.
    """
    import torch
    from transformers import GenerationConfig

    if family not in _CONFIGS:
        raise TgsrError(f"unknown model family {family!r}; expected one of {sorted(_CONFIGS)}")
    if size not in TINY_SIZES:
        raise TgsrError(f"unknown tiny size {size!r}; expected one of {list(SIZES)}")
    hop_length = hop_length or DEFAULT_HOPS[family]
    if hop_length not in (160, 320):
        raise TgsrError(f"hop_length must be 160 or 320, got {hop_length}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TgsrError(f"{out}: exists and is not a folder; give a folder for the model")
    out.mkdir(parents=True, exist_ok=True)

    tok = build_tokenizer(family)
    fe = _feature_extractor(hop_length)
    config = _CONFIGS[family](TINY_SIZES[size], tok, hop_length)
    # Saved in config.json, so checkpoints trained from this model keep the short prompt.
    config.tgsr_default_system_prompt = SYSTEM_PROMPT
    torch.manual_seed(seed)
    model = _model_class(family)(config).eval()
    eos = [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")]
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=tok.pad_token_id, do_sample=False)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    fe.save_pretrained(out)
    if family == "qwen2-audio":
        from transformers import Qwen2AudioProcessor

        Qwen2AudioProcessor(feature_extractor=fe, tokenizer=tok, chat_template=tok.chat_template).save_pretrained(out)
    elif family == "audio-flamingo-3":
        from transformers import AudioFlamingo3Processor

        proc = AudioFlamingo3Processor(feature_extractor=fe, tokenizer=tok, chat_template=tok.chat_template)
        proc.save_pretrained(out)
    meta = {"family": family, "size": size, "seed": seed, "hop_length": hop_length,
            "parameters": sum(p.numel() for p in model.parameters()),
            "tokenizer_fingerprint": tokenizer_fingerprint(tok)}
    (out / "tgsr_tiny.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


__all__ = ["SIZES", "TINY_SIZES", "TOKENIZER_CORPUS", "SPECIAL_TOKENS", "build_tokenizer", "build_tiny", "train_bpe",
           "tokenizer_fingerprint"]
