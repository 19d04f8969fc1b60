"""The one interface every stage uses to talk to an audio-language model.

Training (SFT, GRPO), evaluation and attention analysis call an ``AudioLM`` and never branch
on the model family. One subclass per family (``qwen_omni``, ``qwen2_audio``,
``audio_flamingo3``, ``qwen3_omni``) says how a clip becomes feature tensors and how many
placeholder tokens it takes; everything else lives here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np
import torch

from ..errors import TgsrError

log = logging.getLogger(__name__)

TEXT_KEYS = ("input_ids", "attention_mask", "labels")
IGNORE_INDEX = -100

# One clip: a 16 kHz mono waveform, or the features ``featurize`` made for it (cacheable),
# or None for a text-only row.
AudioItem = Any


@dataclass
class Generation:
    """The output of ``AudioLM.generate``; one row per returned sequence.

    ``completion_ids`` [N, T] (right-padded with the pad id), ``completion_mask`` [N, T]
    (1 up to and including the first end-of-turn token), ``texts`` (decoded without special
    tokens), ``logprobs`` [N, T] float32: log-softmax of the raw logits divided by the
    sampling temperature, at the generated token (0 where the mask is 0). Top-p, top-k and
    placeholder suppression are not in it, so ``completion_logprobs(..., temperature=t)``
    recomputes exactly these numbers. Rows are ordered prompt-major: with
    ``num_return_sequences=n`` rows ``i*n .. i*n+n-1`` belong to prompt ``i``.
    """

    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    texts: list[str]
    logprobs: torch.Tensor


class AudioLM:
    """A loaded audio-language model behind one family-independent interface.

    Attributes: ``model`` (the transformers model), ``processor`` (the family's processor
    object, or None where it cannot be built, see the Omni adapter), ``tokenizer``,
    ``feature_extractor``, ``chat_template``, ``family`` (``qwen2.5-omni``, ``qwen2-audio``,
    ``audio-flamingo-3``, ``qwen3-omni``), ``audio_keys`` (names of the audio tensors in model inputs, e.g.
    ``("input_features", "feature_attention_mask")``), ``default_system_prompt`` (added when
    a conversation has no system turn), ``eos_token_ids``, ``pad_token_id``,
    ``suppress_token_ids`` (audio/vision placeholders that generation must never emit).

    Methods:

    - ``featurize(audios) -> list[dict]``: one dict of audio tensors per 16 kHz clip
      (``featurize_one`` for a single clip): ``input_features`` [W, 128, F] and the mask
      [W, F] (W = 1 except AF3 clips over 30 s). Cache these per clip: ``build_inputs`` accepts
      them in place of waveforms, so log-mel extraction runs once per clip, not once per copy.
      ``collate_audio(list_of_dicts)`` batches them in row order, as ``build_inputs`` does.
    - ``build_inputs(audios_or_features, conversations, *, add_generation_prompt=True,
      completions=None) -> dict[str, Tensor]``: renders each conversation with the chat
      template (a system turn with ``default_system_prompt`` is added if missing), expands
      the audio placeholder to the clip's number of audio tokens, tokenizes and **left-pads**.
      Row ``i`` carries audio ``i``; audio tensors follow row order (AF3: one row per 30 s
      window). With ``completions`` (strings), each completion plus the end-of-turn token is
      appended after the assistant header and ``labels`` is added (-100 everywhere else).
      An item of ``audios`` may be None: the row is text-only and its audio items are dropped.
      The dict goes straight to ``model(**inputs)`` and ``model.generate(**inputs)``. Tensors
      are placed on ``device`` (default: the model's); collators pass ``device="cpu"`` so that
      DataLoader workers never touch CUDA.
    - ``generate(inputs, *, max_new_tokens, do_sample=False, temperature=1.0, top_p=1.0,
      top_k=0, num_return_sequences=1) -> Generation``: KV-cached generation with the
      placeholders suppressed; rows are repeated with ``repeat_rows`` (never ``repeat``).
    - ``completion_logprobs(inputs, completion_ids, completion_mask, *, temperature=1.0)
      -> Tensor[B, T]`` float32: log-probs of right-padded completions given prompt + audio
      in one batched forward (0 where the mask is 0). Differentiable (no ``no_grad`` inside).
    - ``token_blocks(input_ids_row, n_generated=0) -> {"system", "audio", "question",
      "output"}`` half-open ``(start, end)`` ranges that cover the row exactly once, left
      padding excluded. Template tokens before the audio (system turn, ``<|im_start|>user``
      header, Qwen2-Audio's ``Audio 1:`` prefix) belong to ``system``; the audio block runs
      from the audio-begin token (if the family has one) to the audio-end token inclusive;
      everything after the audio up to the last prompt token (user text, ``<|im_end|>``,
      assistant header) is ``question``; the last ``n_generated`` tokens are ``output``. A
      row without audio has an empty audio block at the start of the last user turn.
    - ``repeat_rows(inputs, n)``: every row ``n`` times in a row (repeat_interleave), audio
      windows moving with their row.
    """

    family: ClassVar[str] = ""
    model_types: ClassVar[tuple[str, ...]] = ()
    audio_keys: ClassVar[tuple[str, str]] = ("input_features", "feature_attention_mask")
    # True where the encoder needs every clip padded to the full window (Whisper-style
    # learned positions); False where features keep the clip's own length.
    fixed_window: ClassVar[bool] = True
    default_system_prompt: str | None = "You are a helpful assistant."

    def __init__(self, model, tokenizer, feature_extractor, chat_template: str, *, processor=None,
                 name_or_path: str | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.feature_extractor = feature_extractor
        self.chat_template = chat_template
        self.processor = processor
        self.name_or_path = name_or_path
        self.chat_template_source = "given"  # load_model records which candidate template was chosen
        if getattr(feature_extractor, "feature_size", 128) != 128:
            raise TgsrError(f"{name_or_path}: the feature extractor has {feature_extractor.feature_size} mel bins; "
                            f"{self.family} models need 128")
        self.audio_token_id = int(self._config_audio_token_id())
        self.audio_token = tokenizer.convert_ids_to_tokens(self.audio_token_id)
        self.audio_begin_id, self.audio_end_id = self._audio_wrapper_ids()
        self.im_start_id = tokenizer.convert_tokens_to_ids("<|im_start|>")
        self.im_end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
        pad = tokenizer.pad_token_id
        self.pad_token_id = int(pad if pad is not None else tokenizer.convert_tokens_to_ids("<|endoftext|>"))
        eos = [self.im_end_id, tokenizer.convert_tokens_to_ids("<|endoftext|>")]
        self.eos_token_ids = [int(e) for e in dict.fromkeys(eos) if e is not None and e >= 0]
        self.suppress_token_ids = self._placeholder_ids()

    # ------------------------------------------------------------ family hooks
    @classmethod
    def model_class(cls):
        """The transformers class of this family; every family adapter overrides it."""
        raise TypeError(f"{cls.__name__} is the shared base; load a model through tgsr.models.load_model")

    @classmethod
    def load_pretrained_model(cls, path, config, **kwargs):
        """The transformers model from a checkpoint folder (families with other layouts override it)."""
        return load_checked(cls.model_class(), path, **kwargs)

    @classmethod
    def checkpoint_prefix(cls, config) -> str | None:
        """The key prefix of the weights this family loads from ``config``'s checkpoint (None: all)."""
        return None

    @classmethod
    def processor_class(cls):
        """The family's transformers processor class, or None."""
        return None

    @classmethod
    def build_processor(cls, feature_extractor, tokenizer, chat_template):
        """The family's processor object (kept on ``.processor`` and saved with checkpoints)."""
        proc = cls.processor_class()
        return proc(feature_extractor=feature_extractor, tokenizer=tokenizer, chat_template=chat_template) if proc \
            else None

    def _config_audio_token_id(self) -> int:
        cfg = self.model.config
        for name in ("audio_token_id", "audio_token_index"):
            if getattr(cfg, name, None) is not None:
                return getattr(cfg, name)
        raise TgsrError(f"{self.name_or_path}: config has no audio token id")

    def _audio_wrapper_ids(self) -> tuple[int | None, int | None]:
        return None, None

    def _placeholder_ids(self) -> list[int]:
        ids = [self.audio_token_id]
        cfg = self.model.config
        for name in ("image_token_id", "video_token_id", "image_token_index", "video_token_index"):
            v = getattr(cfg, name, None)
            if v is not None and v not in ids and v < self.vocab_size:
                ids.append(int(v))
        return ids

    def featurize_one(self, audio) -> dict[str, torch.Tensor]:
        """Features of one clip: ``input_features`` [W, 128, F] and its mask [W, F]."""
        audio = _as_waveform(audio)
        fe = self.feature_extractor
        if self.fixed_window:
            n_max = fe.n_samples
            if len(audio) > n_max:
                log.warning("%s: clip of %.1f s truncated to the encoder's %d s window", self.family,
                            len(audio) / fe.sampling_rate, fe.chunk_length)
                audio = audio[:n_max]
            out = fe([audio], sampling_rate=fe.sampling_rate, padding="max_length", return_attention_mask=True,
                     return_tensors="pt")
            feats = out["input_features"].float()
            return {"input_features": feats, self.audio_keys[1]: out["attention_mask"][:, : feats.shape[-1]].long()}
        # Own length: the frames the official processor marks valid when it pads to the full
        # window, ceil(n / hop) of them, computed over the same zero padding (one hop plus
        # one FFT window of zeros is all the last valid frame can see).
        n_frames = -(-len(audio) // fe.hop_length)
        padded = np.pad(audio, (0, n_frames * fe.hop_length + fe.n_fft - len(audio)))
        out = fe([padded], sampling_rate=fe.sampling_rate, padding="longest", truncation=False,
                 return_attention_mask=False, return_tensors="pt")
        feats = out["input_features"][..., :n_frames].float()
        return {"input_features": feats, self.audio_keys[1]: torch.ones((1, n_frames), dtype=torch.long)}

    def num_audio_tokens(self, features: Mapping[str, torch.Tensor]) -> int:
        """How many placeholder tokens this clip's features fill."""
        lengths = features[self.audio_keys[1]].sum(-1)
        return int(_encoder_output_lengths(lengths).sum())

    # ------------------------------------------------------------ helpers
    @property
    def vocab_size(self) -> int:
        # From the config, not the weight's shape: under ZeRO-3 a partitioned weight reads [0].
        return int(self.model.config.get_text_config().vocab_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def featurize(self, audios: Sequence) -> list[dict[str, torch.Tensor]]:
        return [self.featurize_one(a) for a in audios]

    def _features(self, item) -> dict[str, torch.Tensor] | None:
        if item is None:
            return None
        if isinstance(item, Mapping):
            missing = [k for k in self.audio_keys if k not in item]
            if missing:
                raise TgsrError(f"cached features lack {missing}; make them with {type(self).__name__}.featurize")
            return {k: item[k] for k in self.audio_keys}
        return self.featurize_one(item)

    def collate_audio(self, feats: list[dict[str, torch.Tensor]], *, device=None) -> dict[str, torch.Tensor]:
        """Batch per-clip feature dicts in row order (zero-padded to the longest clip, mask 0), on
        ``device`` (default: the model's) in the model's dtype."""
        width = max(f["input_features"].shape[-1] for f in feats)
        xs, ms = [], []
        for f in feats:
            x, m = f["input_features"], f[self.audio_keys[1]]
            pad = width - x.shape[-1]
            xs.append(torch.nn.functional.pad(x, (0, pad)))
            ms.append(torch.nn.functional.pad(m, (0, pad)))
        device = self.device if device is None else device
        return {"input_features": torch.cat(xs).to(device, self.model.dtype),
                self.audio_keys[1]: torch.cat(ms).to(device)}

    def _conversation(self, conversation: Sequence[Mapping], has_audio: bool) -> list[dict]:
        conv = [dict(m) for m in conversation]
        if not conv:
            raise TgsrError("empty conversation")
        if conv[0].get("role") != "system" and self.default_system_prompt:
            conv.insert(0, {"role": "system", "content": [{"type": "text", "text": self.default_system_prompt}]})
        n_audio = sum(1 for m in conv if not isinstance(m.get("content"), str)
                      for c in m["content"] if c.get("type") == "audio")
        if has_audio and n_audio != 1:
            raise TgsrError(f"a conversation with audio needs exactly one {{'type': 'audio'}} item, found {n_audio}")
        if not has_audio and n_audio:
            conv = [m if isinstance(m.get("content"), str) else
                    {**m, "content": [c for c in m["content"] if c.get("type") != "audio"]} for m in conv]
        return conv

    def render(self, conversation: Sequence[Mapping], *, add_generation_prompt: bool = True,
               has_audio: bool = True) -> str:
        """The chat-template text of one conversation, with one unexpanded audio placeholder."""
        conv = self._conversation(conversation, has_audio)
        return self.tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=add_generation_prompt,
                                                  chat_template=self.chat_template)

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    # ------------------------------------------------------------ inputs
    def build_inputs(self, audios: Sequence[AudioItem], conversations: Sequence[Sequence[Mapping]], *,
                     add_generation_prompt: bool = True, completions: Sequence[str] | None = None,
                     device=None) -> dict[str, torch.Tensor]:
        if len(audios) != len(conversations):
            raise TgsrError(f"{len(audios)} audios for {len(conversations)} conversations; they must pair 1:1")
        if completions is not None:
            if len(completions) != len(conversations):
                raise TgsrError(f"{len(completions)} completions for {len(conversations)} conversations")
            if not add_generation_prompt:
                raise TgsrError("completions follow the assistant header: use add_generation_prompt=True")
        rows, labels, feats = [], [], []
        for i, (audio, conv) in enumerate(zip(audios, conversations)):
            f = self._features(audio)
            text = self.render(conv, add_generation_prompt=add_generation_prompt, has_audio=f is not None)
            if f is not None:
                if text.count(self.audio_token) != 1:
                    raise TgsrError(f"row {i}: the chat template rendered {text.count(self.audio_token)} "
                                    f"{self.audio_token} placeholders, expected 1")
                text = text.replace(self.audio_token, self.audio_token * self.num_audio_tokens(f))
                feats.append(f)
            ids = self._encode(text)
            lab = [IGNORE_INDEX] * len(ids)
            if completions is not None:
                comp = self._encode(completions[i])
                if not comp or comp[-1] != self.im_end_id:  # the end-of-turn token is part of the target
                    comp.append(self.im_end_id)
                ids, lab = ids + comp, lab + comp
            rows.append(ids)
            labels.append(lab)
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        label_t = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        for i, (r, lab) in enumerate(zip(rows, labels)):
            input_ids[i, width - len(r):] = torch.tensor(r)
            attention[i, width - len(r):] = 1
            label_t[i, width - len(r):] = torch.tensor(lab)
        device = self.device if device is None else device
        out = {"input_ids": input_ids.to(device), "attention_mask": attention.to(device)}
        if completions is not None:
            out["labels"] = label_t.to(device)
        if feats:
            out.update(self.collate_audio(feats, device=device))
        return out

    def _audio_rows_per_sample(self, input_ids: torch.Tensor) -> torch.Tensor:
        """How many rows of the audio tensors each text row owns (0 for a text-only row)."""
        return ((input_ids == self.audio_token_id).sum(-1) > 0).long()

    def repeat_rows(self, inputs: Mapping[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
        if n < 1:
            raise TgsrError(f"repeat_rows needs n >= 1, got {n}")
        if n == 1:
            return dict(inputs)
        out: dict[str, torch.Tensor] = {}
        per_row = self._audio_rows_per_sample(inputs["input_ids"]).cpu()
        # index of the audio rows of every repeated text row, in repeated-row order
        starts = torch.cumsum(per_row, 0) - per_row
        audio_index = torch.cat([torch.arange(s, s + k) for s, k in zip(starts.tolist(), per_row.tolist())
                                 for _ in range(n)]) if int(per_row.sum()) else None
        for k, v in inputs.items():
            if k in self.audio_keys:
                out[k] = v.index_select(0, audio_index.to(v.device))
            elif isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == per_row.shape[0]:
                out[k] = v.repeat_interleave(n, dim=0)
            else:
                out[k] = v
        return out

    # ------------------------------------------------------------ generation
    def _model_inputs(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v for k, v in inputs.items() if k != "labels"}

    def generation_processors(self, *, do_sample: bool, temperature: float, top_p: float, top_k: int):
        """The logits processors tgsr generates with, in order: placeholder suppression, then
        temperature / top-k / top-p when sampling. Exposed so trainers that generate
        themselves (TRL) can pass the same suppression through ``generation_kwargs``."""
        from transformers import (
            LogitsProcessorList,
            SuppressTokensLogitsProcessor,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        procs = [SuppressTokensLogitsProcessor(list(self.suppress_token_ids), device=self.device)]
        if do_sample:
            if temperature != 1.0:
                procs.append(TemperatureLogitsWarper(temperature))
            if top_k and top_k > 0:
                procs.append(TopKLogitsWarper(top_k))
            if top_p < 1.0:
                procs.append(TopPLogitsWarper(top_p))
        return LogitsProcessorList(procs)

    def generate(self, inputs: Mapping[str, torch.Tensor], *, max_new_tokens: int, do_sample: bool = False,
                 temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
                 num_return_sequences: int = 1) -> Generation:
        if max_new_tokens < 1:
            raise TgsrError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if do_sample and temperature <= 0:
            raise TgsrError(f"temperature must be > 0 when sampling, got {temperature}")
        if not 0 < top_p <= 1:
            raise TgsrError(f"top_p must be in (0, 1], got {top_p}")
        from transformers import GenerationConfig

        inputs = self.repeat_rows(self._model_inputs(inputs), num_return_sequences)
        t = temperature if do_sample else 1.0
        # The recorder runs first, on the raw logits; the checkpoint's own sampling defaults
        # (real Qwen configs ship top_k/top_p/repetition_penalty) are neutralised so the
        # processors are ours, in our order.
        recorder = SamplingLogprobs(t)
        procs = self.generation_processors(do_sample=do_sample, temperature=temperature, top_p=top_p, top_k=top_k)
        procs.insert(0, recorder)
        # Neutral values, not None: generate() fills None fields from the checkpoint's
        # generation_config, which would add its own warpers and penalties.
        neutral = dict(temperature=1.0, top_p=1.0, top_k=0, typical_p=1.0, epsilon_cutoff=0.0, eta_cutoff=0.0,
                       repetition_penalty=1.0, no_repeat_ngram_size=0) if do_sample else \
            dict(repetition_penalty=1.0, no_repeat_ngram_size=0)
        gc = GenerationConfig(max_new_tokens=max_new_tokens, min_new_tokens=0, do_sample=do_sample,
                              num_beams=1, num_return_sequences=1, eos_token_id=list(self.eos_token_ids),
                              pad_token_id=self.pad_token_id, return_dict_in_generate=True, use_cache=True,
                              **neutral)
        with torch.no_grad():
            out = self.model.generate(**inputs, generation_config=gc, logits_processor=procs)
        prompt_len = inputs["input_ids"].shape[1]
        ids = out.sequences[:, prompt_len:]
        mask = _completion_mask(ids, self.eos_token_ids)
        ids = ids.masked_fill(mask == 0, self.pad_token_id)
        logprobs = recorder.finish(out.sequences, ids.size(1)) * mask
        texts = self.tokenizer.batch_decode([row[m.bool()] for row, m in zip(ids, mask)], skip_special_tokens=True)
        return Generation(completion_ids=ids, completion_mask=mask, texts=texts, logprobs=logprobs)

    def completion_logprobs(self, inputs: Mapping[str, torch.Tensor], completion_ids: torch.Tensor,
                            completion_mask: torch.Tensor, *, temperature: float = 1.0) -> torch.Tensor:
        inputs = self._model_inputs(inputs)
        prompt_len = inputs["input_ids"].shape[1]
        completion_ids = completion_ids.to(inputs["input_ids"].device)
        completion_mask = completion_mask.to(inputs["attention_mask"].device).long()
        if completion_ids.shape[0] != inputs["input_ids"].shape[0]:
            raise TgsrError(f"{completion_ids.shape[0]} completions for {inputs['input_ids'].shape[0]} prompts; "
                            "repeat the prompts with repeat_rows first")
        full = dict(inputs)
        full["input_ids"] = torch.cat([inputs["input_ids"], completion_ids], dim=1)
        full["attention_mask"] = torch.cat([inputs["attention_mask"], completion_mask], dim=1)
        logits = self._logits_from(full, prompt_len - 1).float()
        logprobs = torch.log_softmax(logits / temperature, dim=-1)
        return logprobs.gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1) * completion_mask

    def _logits_from(self, inputs: Mapping[str, torch.Tensor], start: int) -> torch.Tensor:
        """Logits of positions ``start .. L-2`` only: the LM head never runs over the prompt
        (with a 150k vocabulary and hundreds of audio tokens that would dominate memory)."""
        model = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model  # PEFT
        base = getattr(model, "model", None)
        if not isinstance(model, self.model_class()) or base is None:  # wrapped (DDP, FSDP ...): plain forward
            return self.model(**inputs, use_cache=False).logits[:, start:-1]
        hidden = base(**inputs, use_cache=False).last_hidden_state
        return model.get_output_embeddings()(hidden[:, start:-1])

    # ------------------------------------------------------------ analysis
    def token_blocks(self, input_ids_row: torch.Tensor | Sequence[int], n_generated: int = 0
                     ) -> dict[str, tuple[int, int]]:
        ids = torch.as_tensor(input_ids_row).flatten().tolist()
        n = len(ids)
        if not 0 <= n_generated <= n:
            raise TgsrError(f"n_generated={n_generated} outside a row of {n} tokens")
        prompt_end = n - n_generated
        start = 0
        while start < prompt_end and ids[start] == self.pad_token_id:
            start += 1
        audio_pos = [i for i in range(start, prompt_end) if ids[i] == self.audio_token_id]
        if audio_pos:
            a0, a1 = audio_pos[0], audio_pos[-1] + 1
            if self.audio_begin_id is not None and a0 > start and ids[a0 - 1] == self.audio_begin_id:
                a0 -= 1
            if self.audio_end_id is not None and a1 < prompt_end and ids[a1] == self.audio_end_id:
                a1 += 1
        else:
            user_turns = [i for i in range(start, prompt_end) if ids[i] == self.im_start_id
                          and self.tokenizer.decode(ids[i + 1:i + 3]).startswith("user")]
            a0 = a1 = user_turns[-1] if user_turns else start
        return {"system": (start, a0), "audio": (a0, a1), "question": (a1, prompt_end), "output": (prompt_end, n)}


# ------------------------------------------------------------------ utilities

def load_checked(model_class, path, **kwargs):
    """``from_pretrained`` that refuses a checkpoint missing weights the model needs.

    transformers only prints a load report and initialises missing weights at random, so a
    folder written with the wrong key layout would otherwise train and evaluate as noise.
    Unexpected keys (an Omni checkpoint's talker and vocoder) are fine."""
    model, info = model_class.from_pretrained(path, output_loading_info=True, **kwargs)
    # save_pretrained reverts the key renamings from_pretrained recorded. Its ZeRO-3 load path
    # (transformers 5.24, integrations/deepspeed.py) records all candidate renamings, not only those
    # that matched a checkpoint key as the normal path does, so a save would write Omni keys as
    # thinker.model.thinker.audio_tower...; keep the used ones, as the normal path does.
    convs = getattr(model, "_weight_conversions", None)
    if convs:
        model._weight_conversions = [c for c in convs if c.was_used()]
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise TgsrError(f"{path}: the checkpoint lacks {len(missing)} weight(s) of {model_class.__name__} "
                        f"(e.g. {', '.join(missing[:3])}); loading it would leave them random. Is it a checkpoint "
                        f"of this architecture, saved with its own key layout?")
    return model


MIN_SAMPLES = 4000  # 0.25 s: shorter clips are padded with silence so they still give >= 2 audio tokens


def _as_waveform(audio) -> np.ndarray:
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise TgsrError(f"expected a mono 16 kHz waveform (1-D array), got shape {audio.shape}")
    if audio.size == 0:
        raise TgsrError("empty waveform")
    if not np.isfinite(audio).all():
        raise TgsrError("waveform contains NaN or infinite samples")
    if audio.size < MIN_SAMPLES:
        audio = np.pad(audio, (0, MIN_SAMPLES - audio.size))
    return audio


def _encoder_output_lengths(mel_lengths: torch.Tensor) -> torch.Tensor:
    """Audio tokens from mel frames: a stride-2 conv, then stride-2 pooling."""
    after_conv = (mel_lengths - 1) // 2 + 1
    return (after_conv - 2) // 2 + 1


def _completion_mask(ids: torch.Tensor, eos_ids: Sequence[int]) -> torch.Tensor:
    """1 up to and including the first end token of each row."""
    is_eos = torch.isin(ids, torch.tensor(list(eos_ids), device=ids.device))
    after = (torch.cumsum(is_eos.long(), dim=1) - is_eos.long()) > 0
    return (~after).long()


class SamplingLogprobs:
    """A logits processor that records log-softmax(raw logits / t) of each generated token.

    At step k it sees the raw logits of step k and, in ``input_ids``, the sequence up to the token
    chosen at step k-1, so it keeps one [rows, vocabulary] row of log-probs at a time instead of
    every step's logits (~10 GB at the paper's 7B shape). It must run before any processor that
    changes the logits (``generate`` and ``tgsr.train.decoding.sample`` put it first).
    """

    def __init__(self, temperature: float):
        self.temperature = temperature
        self.prev: torch.Tensor | None = None
        self.steps: list[torch.Tensor] = []

    def _resolve(self, sequences: torch.Tensor) -> None:
        if self.prev is not None:
            token = sequences[:, -1:].to(self.prev.device)
            self.steps.append(self.prev.gather(-1, token).squeeze(-1))

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self._resolve(input_ids)
        self.prev = torch.log_softmax(scores.float() / self.temperature, dim=-1)
        return scores

    def finish(self, sequences: torch.Tensor, n_new: int) -> torch.Tensor:
        """Per-token log-probs [rows, n_new] of the generated part of ``sequences``."""
        self._resolve(sequences)
        self.prev = None
        steps = self.steps[:n_new]
        if len(steps) != n_new:
            raise TgsrError(f"internal: recorded {len(steps)} sampling steps for {n_new} generated tokens")
        return torch.stack(steps, dim=1)
