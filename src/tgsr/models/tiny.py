"""Tiny, randomly initialised models of the real architectures, built fully offline.

``build_tiny(family, size, out_dir, seed)`` writes a folder that ``tgsr.models.load_model``
and plain ``transformers`` ``from_pretrained`` open with ``HF_HUB_OFFLINE=1``:

- ``tokenizer.json`` & co: a byte-level BPE trained with ``tokenizers`` on a corpus frozen in
  this module (``TOKENIZER_CORPUS``), with Qwen2's pre-tokenizer (every digit is its own
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
import random
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
# A snapshot of tgsr's prompt wording and of synthetic-corpus-like text. Do not edit: the
# tokenizer (and so every tiny checkpoint) depends on it. See TOKENIZER_FINGERPRINT.
_PROMPT_SNAPSHOT = [
    "What is the timestamp of the following segment?",
    "The segment starts at seconds and ends at seconds.",
    "Listen to the audio and reason step by step before answering. Whenever you use information from the "
    "audio, cite the segment it comes from as \"From Xs to Ys\" (for example: From 1.20s to 3.45s, the first "
    "speaker says ...). End with a last line of the form: Final answer: (x) <choice text>",
    "Listen to the audio and think step by step before answering. End with a last line of the form: "
    "Final answer: (x) <choice text>",
    "Answer with the letter and the text of the correct choice, in the form: (x) <choice text>",
    "Choices:", "Final answer:", "You are a helpful assistant.",
]
_WORDS = (
    "the a an and or but of to in on at for with from by as is are was were be been it this that these those "
    "there here who what when where which how why does do did speaker speakers speaks speak said says say "
    "first second third fourth fifth last next before after during between turn turns voice voices pitch "
    "rate fast slow high low loud quiet longest shortest more less most least many few number count one two "
    "three four five six seven eight nine ten yes no none both each other same different man woman person "
    "people question answer choice correct segment seconds second audio clip word words phrase sentence "
    "starts ends start end begins begin talks talking silence pause music noise hello hi thanks thank you "
    "please okay sure well so then now today tomorrow yesterday morning evening night time place home work "
    "school city market park river garden kitchen window door table book letter phone car train bus apple "
    "banana orange bread water coffee tea dinner lunch breakfast red blue green yellow black white big small "
    "new old good bad happy sad angry calm tired ready late early open close go come see look listen hear "
    "think know want need like love make take give find tell ask call help try use play read write walk run"
).split()
_ORDINALS = ["first", "second", "third", "fourth", "fifth"]
# Synthetic-corpus wording (items, places, intents, scenarios, question families), as of the
# first tokenizer build.
_SYNTH_SNAPSHOT = [
"umbrella ladder blanket camera kettle bicycle hammer lantern guitar wallet basket pillow mirror candle helmet jacket bottle notebook ticket carpet radio teapot suitcase backpack compass bucket sweater painting blender toaster scarf shovel telescope violin hairbrush calendar stapler lampshade cushion vase trumpet magnet kite drum saddle anchor puzzle whistle",
"garage hallway basement attic bedroom garden office cellar closet studio porch shed pantry balcony library laundry",
"making a request",
"Could you please bring me the {item}?",
"Can you pass me the {item}, please?",
"Please hand me the {item} when you have a moment.",
"complaining",
"I am really unhappy with the {item}.",
"The {item} is broken again and it drives me crazy.",
"This {item} has been nothing but trouble all week.",
"thanking someone",
"Thank you so much for the {item}.",
"Thanks a lot, the {item} is exactly what I wanted.",
"I really appreciate you lending me the {item}.",
"apologizing",
"I am so sorry, I lost your {item}.",
"Forgive me, I forgot to bring the {item}.",
"I apologize for breaking the {item}.",
"making a suggestion",
"Maybe we should buy a new {item}.",
"Why don't we take the {item} with us?",
"How about using the {item} instead?",
"refusing",
"No, you cannot borrow my {item}.",
"I will not pay for that {item}.",
"No way, I am not carrying the {item}.",
"giving information",
"The {item} is in the {place}.",
"I left the {item} in the {place}.",
"You will find the {item} in the {place}.",
"a plumber and a customer",
"The pipe under your sink needs a new seal.",
"I can fix the leak in about an hour.",
"Your water heater is quite old, I am afraid.",
"My kitchen sink has been dripping all week.",
"How much will the repair cost?",
"The bathroom floor is wet again this morning.",
"a doctor and a patient",
"Take these tablets twice a day after meals.",
"Your blood pressure looks normal today.",
"Let me listen to your chest for a moment.",
"I have had a bad cough for three days.",
"My head hurts every time I stand up.",
"Do I need to come back for another checkup?",
"a teacher and a student",
"Please hand in your homework by Friday.",
"Open your books at the chapter on fractions.",
"Your essay was much better this time.",
"I did not understand the last exercise.",
"Will this topic be on the exam?",
"Can I sit closer to the blackboard?",
"a waiter and a diner",
"Are you ready to order your main course?",
"Today's special is grilled fish with rice.",
"Would you like to see the dessert menu?",
"I would like the soup of the day, please.",
"Could we have the bill, please?",
"Is there any sauce without garlic?",
"a mechanic and a car owner",
"Your brakes are worn and need replacing.",
"I changed the oil and checked the tires.",
"The engine makes that noise because of a loose belt.",
"My car will not start on cold mornings.",
"When can I pick up my car?",
"There is a strange rattle when I drive fast.",
"a hairdresser and a client",
"How short would you like it at the back?",
"I will wash your hair before the cut.",
"This color will suit you very well.",
"Just a little off the ends, please.",
"Can you make my fringe a bit shorter?",
"I want to try a completely new style.",
"a flight attendant and a passenger",
"Please fasten your seat belt for landing.",
"We will serve drinks after take off.",
"Your bag must go in the overhead locker.",
"Could I change to a seat by the window?",
"How long until we land?",
"My ears hurt when the plane goes down.",
"a librarian and a reader",
"This book is due back in two weeks.",
"The history section is on the second floor.",
"You can renew your loan at the front desk.",
"I am looking for a book about old ships.",
"Can I borrow more than five books?",
"The printer on this floor is out of paper.",
"Hello, it is nice to see you again.",
"Good morning, how are you today?",
"Hi there, I am glad you could come.",
"greeting someone",
"deep male voice",
"light male voice",
"low female voice",
"high female voice",
"first second third fourth fifth sixth seventh eighth ninth tenth",
"zero one two three four five six",
"How many different speakers are there in the conversation?",
"Which voice speaks first?",
"Which voice speaks last?",
"Which voice talks for the longest time in total?",
"When does the {ordinal} speaker start talking for the first time?",
"Which voice speaks the fastest?",
"Which speaker has the highest-pitched voice?",
"Where does {who} say the {item} is?",
"Which voice mentions the {item}?",
"Which thing is mentioned right after the {item}?",
"What is {who} doing in their {ordinal} turn?",
"What is the most likely relationship between the first two speakers?",
"They sound like {scenario}"
]
_CLAIMS = [
    "No other voice appears, so there are {n} different speakers", "Nobody speaks before that, so {who} speaks first",
    "Nobody speaks after that, so {who} speaks last", "In total {who} talks for about {t:.1f} seconds",
    "So {who} starts talking at {t:.1f} seconds", "The other voices speak more slowly, so {who} is the fastest",
    "The other voices are lower, so {who} has the highest-pitched voice", "So the {item} is in the {place}",
    "So the {item} is mentioned by {who}",
]


def _corpus_sentences() -> list[str]:
    """Deterministic text: prompts, questions, citations, answers, dialogue-like lines."""
    rng = random.Random(1234)
    # prompts occur in every training example: weight them so their words get merges
    out = list(_PROMPT_SNAPSHOT) * 50 + list(_SYNTH_SNAPSHOT)
    sentences = [t for t in _SYNTH_SNAPSHOT if t.endswith((".", "?"))]
    items, places = _SYNTH_SNAPSHOT[0].split(), _SYNTH_SNAPSHOT[1].split()
    for i in range(400):
        a = round(rng.uniform(0, 30), 2)
        b = round(a + rng.uniform(0.2, 8), 2)
        who = rng.choice(_ORDINALS)
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 9)))
        letter = "abcd"[i % 4]
        fill = dict(item=rng.choice(items), place=rng.choice(places), ordinal=who, who=f"the {who} speaker",
                    scenario="a doctor and a patient", n=rng.choice(["two", "three", "four"]), t=b)
        line = rng.choice(sentences).format(**fill)
        out += [
            f"From {a:.2f}s to {b:.2f}s, the {who} speaker says \"{line}\"",
            rng.choice(_CLAIMS).format(**fill) + ".",
            f"({letter}) the {rng.choice(items)}\n({'abcd'[(i + 1) % 4]}) the {rng.choice(places)}",

            f"From {a:.2f}s to {b:.2f}s, the {who} speaker says \"{words}\".",
            f"The segment {words} starts at {a:.2f} seconds and ends at {b:.2f} seconds.",
            f"What is the timestamp of the following segment? {words}",
            f"When does the {who} speaker speak?",
            f"Which speaker talks {rng.choice(['first', 'last', 'longest', 'fastest'])}?",
            f"How many speakers are there?\nChoices:\n(a) one\n(b) two\n(c) three\n(d) four",
            f"({letter}) the {who} speaker\nFinal answer: ({letter}) the {who} speaker",
            words.capitalize() + rng.choice([".", "?", "!", ","]),
        ]
    return out


TOKENIZER_CORPUS: tuple[str, ...] = tuple(_corpus_sentences())


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


def _omni_config(sz: TinySize, tok, hop: int):
    from transformers.models.qwen2_5_omni.configuration_qwen2_5_omni import (
        Qwen2_5OmniAudioEncoderConfig, Qwen2_5OmniTextConfig, Qwen2_5OmniThinkerConfig,
        Qwen2_5OmniVisionEncoderConfig,
    )

    ids = tok.convert_tokens_to_ids
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
    return Qwen2_5OmniThinkerConfig(
        audio_config=audio, vision_config=vision, text_config=text,
        audio_token_index=ids("<|AUDIO|>"), image_token_index=ids("<|IMAGE|>"), video_token_index=ids("<|VIDEO|>"),
        audio_start_token_id=ids("<|audio_bos|>"), audio_end_token_id=ids("<|audio_eos|>"),
        vision_start_token_id=ids("<|vision_bos|>"), vision_end_token_id=ids("<|vision_eos|>"),
        user_token_id=ids("<|im_start|>"), pad_token_id=tok.pad_token_id,
    )


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
        Qwen3OmniMoeAudioEncoderConfig, Qwen3OmniMoeTextConfig, Qwen3OmniMoeThinkerConfig,
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

        AudioFlamingo3Processor(feature_extractor=fe, tokenizer=tok, chat_template=tok.chat_template).save_pretrained(out)
    meta = {"family": family, "size": size, "seed": seed, "hop_length": hop_length,
            "parameters": sum(p.numel() for p in model.parameters()),
            "tokenizer_fingerprint": tokenizer_fingerprint(tok)}
    (out / "tgsr_tiny.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


__all__ = ["SIZES", "TINY_SIZES", "TOKENIZER_CORPUS", "SPECIAL_TOKENS", "build_tokenizer", "build_tiny", "train_bpe",
           "tokenizer_fingerprint"]
