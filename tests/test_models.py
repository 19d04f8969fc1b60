"""The model layer: one interface over three architectures, tested on tiny offline models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tgsr.errors import TgsrError
from tgsr.prompts import reasoning_question, user_messages

FAMILIES = ["qwen2.5-omni", "qwen2-audio", "audio-flamingo-3", "qwen3-omni"]
SR = 16000


def _clip(seconds: float, seed: int) -> np.ndarray:
    """Noise bursts at a seed-dependent rhythm, so different clips give different features."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    env = (np.sin(np.arange(n) / SR * 2 * np.pi * (1 + seed)) > 0).astype(np.float32)
    return (0.3 * rng.standard_normal(n) * env).astype(np.float32)


QUESTIONS = [
    "When does the second speaker speak?",
    reasoning_question("How many speakers are there?", ["one", "two", "three"]),
    "Who speaks first?",
]
COMPLETIONS = [
    "From 0.50s to 1.20s, the second speaker says hello.",
    "Final answer: (b) two",
    "The first speaker.",
]


@pytest.fixture(scope="module", params=FAMILIES)
def lm(request, tiny_model_dir):
    from tgsr.models import load_model

    return load_model(tiny_model_dir(request.param))


def _batch(lm, seconds=(1.5, 3.0, 2.2), seeds=(1, 2, 3), completions=None):
    audios = [_clip(s, k) for s, k in zip(seconds, seeds)]
    convs = [user_messages(q) for q in QUESTIONS[: len(audios)]]
    return audios, convs, lm.build_inputs(audios, convs, completions=completions)


def _completion_tensors(lm, texts):
    rows = [lm.tokenizer(t, add_special_tokens=False)["input_ids"] + [lm.im_end_id] for t in texts]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), lm.pad_token_id)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


# ---------------------------------------------------------------- loading and building

def test_family_detected_and_helpers(lm):
    assert lm.family in FAMILIES
    assert lm.audio_token_id in lm.suppress_token_ids
    assert lm.im_end_id in lm.eos_token_ids
    assert all(k in ("input_features", "feature_attention_mask", "input_features_mask") for k in lm.audio_keys)
    assert lm.feature_extractor.feature_size == 128
    n_params = sum(p.numel() for p in lm.model.parameters())
    assert 0.2e6 < n_params < 0.6e6


def test_omni_runs_without_torchvision(tiny_omni_dir):
    from tgsr.models import load_model

    lm = load_model(tiny_omni_dir)
    try:
        import torchvision  # noqa: F401
        has_tv = True
    except Exception:
        has_tv = False
    assert (lm.processor is None) != has_tv
    inputs = lm.build_inputs([_clip(1.0, 0)], [user_messages("Who speaks?")])
    assert inputs["input_features"].shape[1] == 128


def test_wrong_family_and_unknown_checkpoint(tiny_omni_dir, tmp_path):
    from tgsr.models import load_model

    with pytest.raises(TgsrError, match="qwen2.5-omni checkpoint"):
        load_model(tiny_omni_dir, family="qwen2-audio")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(TgsrError):
        load_model(tmp_path)


def test_build_is_deterministic_and_seeded(tmp_path):
    from safetensors.torch import load_file

    from tgsr.models.tiny import build_tiny

    a = build_tiny("qwen2-audio", "xs", tmp_path / "a", seed=3)
    b = build_tiny("qwen2-audio", "xs", tmp_path / "b", seed=3)
    c = build_tiny("qwen2-audio", "xs", tmp_path / "c", seed=4)
    wa, wb, wc = (load_file(str(d / "model.safetensors")) for d in (a, b, c))
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert any(not torch.equal(wa[k], wc[k]) for k in wa)
    assert (a / "tokenizer.json").read_text() == (c / "tokenizer.json").read_text()


# Token ids of the tiny tokenizers must never change: old checkpoints depend on them.
EXPECTED_FINGERPRINTS = {"qwen2.5-omni": "ed9a12096283fe63", "qwen2-audio": "4c5caa897117781d",
                         "audio-flamingo-3": "6825ce7d55b709aa", "qwen3-omni": "561e091fbb92d956"}


def test_tokenizer_is_frozen_and_splits_digits():
    from tgsr.models.tiny import SPECIAL_TOKENS, build_tokenizer, tokenizer_fingerprint

    assert set(SPECIAL_TOKENS) == set(EXPECTED_FINGERPRINTS)
    for family, specials in SPECIAL_TOKENS.items():
        t = build_tokenizer(family)
        assert tokenizer_fingerprint(t) == EXPECTED_FINGERPRINTS[family], family
        assert t.convert_tokens_to_ids(specials) == list(range(len(specials)))  # specials first, Qwen order
    tok = build_tokenizer("qwen2.5-omni")
    pieces = tok.convert_ids_to_tokens(tok("From 12.34s to 56.70s", add_special_tokens=False)["input_ids"])
    assert [p for p in pieces if p.strip("Ġ").isdigit()] == list("12345670")
    assert tok.decode(tok("From 12.34s to 56.70s, \"hello\"")["input_ids"]) == "From 12.34s to 56.70s, \"hello\""


@pytest.mark.parametrize("family", FAMILIES)
def test_offline_roundtrip_with_plain_from_pretrained(family, tiny_model_dir, tmp_path, monkeypatch):
    from transformers import AutoConfig, AutoTokenizer, WhisperFeatureExtractor

    from tgsr.models import FAMILIES as ADAPTERS
    from tgsr.models import load_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    d = tiny_model_dir(family)
    cls = ADAPTERS[family].model_class()
    model = cls.from_pretrained(d).eval()
    tok = AutoTokenizer.from_pretrained(d)
    fe = WhisperFeatureExtractor.from_pretrained(d)
    assert AutoConfig.from_pretrained(d).model_type in ADAPTERS[family].model_types
    assert fe.feature_size == 128 and tok.convert_tokens_to_ids("<|im_end|>") is not None
    if family in ("qwen2-audio", "audio-flamingo-3"):  # the Omni processors need torchvision
        from transformers import AutoProcessor

        proc = AutoProcessor.from_pretrained(d)
        assert proc.feature_extractor.feature_size == 128

    lm = load_model(d)
    inputs = lm.build_inputs([_clip(1.2, 5)], [user_messages("Who speaks first?")])
    with torch.no_grad():
        ref = model(**inputs).logits
    lm.model.save_pretrained(tmp_path)
    lm.tokenizer.save_pretrained(tmp_path)
    lm.feature_extractor.save_pretrained(tmp_path)
    again = load_model(tmp_path)
    inputs2 = again.build_inputs([_clip(1.2, 5)], [user_messages("Who speaks first?")])
    assert torch.equal(inputs["input_ids"], inputs2["input_ids"])
    with torch.no_grad():
        out = again.model(**inputs2).logits
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


def test_cli_builds_a_loadable_model(tmp_path, capsys):
    from tgsr.cli import main
    from tgsr.models import load_model

    rc = main(["model", "tiny", "--family", "audio-flamingo-3", "--size", "xs", "--out", str(tmp_path / "m"),
               "--seed", "1"])
    assert rc == 0
    assert "audio-flamingo-3" in capsys.readouterr().out
    lm = load_model(tmp_path / "m")
    assert lm.family == "audio-flamingo-3"


# ---------------------------------------------------------------- forward and generation

def test_forward_pass(lm):
    _, _, inputs = _batch(lm)
    assert inputs["input_ids"].shape[0] == 3
    assert (inputs["attention_mask"][:, -1] == 1).all()  # left padding
    with torch.no_grad():
        logits = lm.model(**inputs).logits
    assert logits.shape[:2] == inputs["input_ids"].shape and torch.isfinite(logits).all()


def test_generate_uses_kv_cache_and_suppresses_placeholders(lm):
    _, _, inputs = _batch(lm)
    # Make the audio placeholder the most likely next token: its lm_head row becomes the
    # direction of the last hidden state of every prompt.
    with torch.no_grad():
        out = lm.model(**inputs, output_hidden_states=True)
        h = out.hidden_states[-1][:, -1]
        head = lm.model.get_output_embeddings().weight
        saved = head[lm.audio_token_id].clone()
        head[lm.audio_token_id] = 50 * h.mean(0) / h.mean(0).norm()
        assert (lm.model(**inputs).logits[:, -1].argmax(-1) == lm.audio_token_id).all()
    calls = []
    hook = lm.model.register_forward_pre_hook(lambda m, a, kw: calls.append(kw.get("cache")), with_kwargs=True)
    try:
        gen = lm.generate(inputs, max_new_tokens=5)
    finally:
        hook.remove()
        with torch.no_grad():
            head[lm.audio_token_id] = saved
    assert len(calls) >= 2 and all(c is not None for c in calls[1:])  # decoding steps reuse the KV cache
    assert not torch.isin(gen.completion_ids, torch.tensor(lm.suppress_token_ids)).any()
    assert gen.completion_ids.shape[0] == 3 and len(gen.texts) == 3


def test_sampling_is_seeded_and_rows_are_prompt_major(lm):
    _, _, inputs = _batch(lm)
    torch.manual_seed(0)
    a = lm.generate(inputs, max_new_tokens=6, do_sample=True, temperature=0.8, num_return_sequences=2)
    torch.manual_seed(0)
    b = lm.generate(inputs, max_new_tokens=6, do_sample=True, temperature=0.8, num_return_sequences=2)
    assert torch.equal(a.completion_ids, b.completion_ids)
    assert a.completion_ids.shape[0] == 6 and a.logprobs.dtype == torch.float32
    # mask: ones then zeros, the end token included
    m = a.completion_mask
    assert (m[:, 1:] <= m[:, :-1]).all()


# ---------------------------------------------------------------- log-probs

@pytest.mark.parametrize("temperature,do_sample", [(1.0, False), (0.8, True), (1.0, True)])
def test_logprob_parity_with_generation(lm, temperature, do_sample):
    _, _, inputs = _batch(lm)
    torch.manual_seed(1)
    gen = lm.generate(inputs, max_new_tokens=8, do_sample=do_sample, temperature=temperature,
                      num_return_sequences=2)
    again = lm.completion_logprobs(lm.repeat_rows(inputs, 2), gen.completion_ids, gen.completion_mask,
                                   temperature=temperature if do_sample else 1.0)
    assert again.shape == gen.logprobs.shape and again.dtype == torch.float32
    assert (again[gen.completion_mask == 0] == 0).all()
    torch.testing.assert_close(again, gen.logprobs, rtol=0, atol=1e-4)
    assert (gen.logprobs[gen.completion_mask == 1] < 0).all()


def test_logprobs_are_differentiable(lm):
    _, _, inputs = _batch(lm, seconds=(1.0,), seeds=(1,))
    ids, mask = _completion_tensors(lm, COMPLETIONS[:1])
    lp = lm.completion_logprobs(inputs, ids, mask)
    lp.sum().backward()
    grads = [p.grad for p in lm.model.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    lm.model.zero_grad(set_to_none=True)


def test_rows_stay_paired_with_their_audio(lm):
    seconds, seeds = (1.5, 3.0, 2.2), (1, 2, 3)
    if lm.family == "audio-flamingo-3":
        seconds = (1.5, 31.0, 2.2)  # a two-window clip: audio rows != text rows
    audios, convs, inputs = _batch(lm, seconds, seeds)
    ids, mask = _completion_tensors(lm, COMPLETIONS)
    with torch.no_grad():
        base = lm.completion_logprobs(inputs, ids, mask)

        perm = [2, 0, 1]
        permuted = lm.build_inputs([audios[i] for i in perm], [convs[i] for i in perm])
        out = lm.completion_logprobs(permuted, ids[perm], mask[perm])
        torch.testing.assert_close(out, base[perm], rtol=0, atol=1e-6)

        # cached per-clip features give the same inputs as waveforms
        cached = lm.build_inputs(lm.featurize(audios), convs)
        assert all(torch.equal(cached[k], inputs[k]) for k in inputs)

        # repeat_rows keeps audio windows with their row
        rep = lm.completion_logprobs(lm.repeat_rows(inputs, 2), ids.repeat_interleave(2, 0),
                                     mask.repeat_interleave(2, 0))
        torch.testing.assert_close(rep, base.repeat_interleave(2, 0), rtol=0, atol=1e-6)

        # the audio matters: silence of the same length, or another row's clip, changes log-probs
        # by far more than the 1e-6 tolerance above, so a mis-paired batch could not pass
        silent = lm.build_inputs([np.zeros_like(a) for a in audios], convs)
        assert torch.equal(silent["input_ids"], inputs["input_ids"])
        diff = (lm.completion_logprobs(silent, ids, mask) - base).abs().amax(-1)
        assert (diff > 2e-5).all()
        swapped = lm.build_inputs([audios[1], audios[0], audios[2]], convs)
        diff = (lm.completion_logprobs(swapped, ids, mask) - base).abs().amax(-1)
        assert (diff[:2] > 2e-5).all()


def test_completions_give_sft_labels(lm):
    audios, convs, inputs = _batch(lm)
    full = lm.build_inputs(audios, convs, completions=COMPLETIONS)
    labels = full["labels"]
    for i, text in enumerate(COMPLETIONS):
        kept = labels[i][labels[i] != -100]
        assert kept[-1] == lm.im_end_id
        assert lm.tokenizer.decode(kept[:-1]) == text
        # the prompt part is exactly the generation-time prompt
        n_prompt = int(inputs["attention_mask"][i].sum())
        row = full["input_ids"][i][full["attention_mask"][i].bool()]
        assert torch.equal(row[:n_prompt], inputs["input_ids"][i][inputs["attention_mask"][i].bool()])
    with torch.no_grad():
        loss = lm.model(**full).loss
    assert torch.isfinite(loss)


def test_build_inputs_validates(lm):
    with pytest.raises(TgsrError, match="pair 1:1"):
        lm.build_inputs([_clip(1, 0)], [user_messages("a"), user_messages("b")])
    with pytest.raises(TgsrError, match="exactly one"):
        lm.build_inputs([_clip(1, 0)], [[{"role": "user", "content": [{"type": "text", "text": "no audio"}]}]])
    with pytest.raises(TgsrError, match="mono"):
        lm.build_inputs([np.zeros((2, 100), dtype=np.float32)], [user_messages("a")])


# ---------------------------------------------------------------- token blocks

def test_token_blocks_cover_each_row_exactly_once(lm):
    _, _, inputs = _batch(lm)
    gen = lm.generate(inputs, max_new_tokens=4)
    for i in range(inputs["input_ids"].shape[0]):
        n_gen = int(gen.completion_mask[i].sum())
        row = torch.cat([inputs["input_ids"][i], gen.completion_ids[i, :n_gen]])
        blocks = lm.token_blocks(row, n_generated=n_gen)
        assert list(blocks) == ["system", "audio", "question", "output"]
        n_pad = int((inputs["attention_mask"][i] == 0).sum())
        spans = list(blocks.values())
        assert spans[0][0] == n_pad and spans[-1][1] == len(row)
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # contiguous, no overlap
        assert sum(e - s for s, e in spans) == len(row) - n_pad
        a0, a1 = blocks["audio"]
        is_audio = row == lm.audio_token_id
        assert is_audio[a0:a1].sum() == is_audio.sum() > 0
        assert is_audio[a0:a1].sum() >= (a1 - a0) - 2  # at most the begin/end wrappers besides
        assert blocks["output"] == (len(row) - n_gen, len(row))
        dec = lm.tokenizer.decode
        assert lm.default_system_prompt in dec(row[slice(*blocks["system"])])
        assert QUESTIONS[i].splitlines()[0] in dec(row[slice(*blocks["question"])])


def test_token_blocks_text_only_row(lm):
    inputs = lm.build_inputs([None], [user_messages("Who speaks first?")])
    assert not any(k in inputs for k in lm.audio_keys)
    row = inputs["input_ids"][0]
    blocks = lm.token_blocks(row)
    assert blocks["audio"][0] == blocks["audio"][1]
    assert "Who speaks first?" in lm.tokenizer.decode(row[slice(*blocks["question"])])
    assert lm.default_system_prompt in lm.tokenizer.decode(row[slice(*blocks["system"])])
    with torch.no_grad():
        assert torch.isfinite(lm.model(**inputs).logits).all()


# ---------------------------------------------------------------- agreement with the family processors

@pytest.mark.parametrize("family", ["qwen2-audio", "audio-flamingo-3"])
def test_inputs_match_the_official_processor(family, tiny_model_dir):
    from transformers import AutoProcessor

    from tgsr.models import load_model

    d = tiny_model_dir(family)
    lm = load_model(d)
    proc = AutoProcessor.from_pretrained(d)
    audios = [_clip(1.5, 1), _clip(2.6, 2)]
    convs = [user_messages(q) for q in QUESTIONS[:2]]
    ours = lm.build_inputs(audios, convs)
    texts = [lm.render(c) for c in convs]
    # text-only padding (left); the audio is padded to the window by the feature extractor
    theirs = proc(text=texts, audio=audios, return_tensors="pt", text_kwargs={"padding": True, "padding_side": "left"})
    assert torch.equal(ours["input_ids"], theirs["input_ids"])
    assert torch.equal(ours["attention_mask"], theirs["attention_mask"])
    mask_key = lm.audio_keys[1]
    assert torch.equal(ours[mask_key], theirs[mask_key].long())
    torch.testing.assert_close(ours["input_features"], theirs["input_features"].float(), rtol=0, atol=1e-5)


def _hub_layout_omni(tiny_dir, out, full_config_class):
    """A folder laid out like the hub's Qwen-Omni checkpoints: full ``*_omni*`` config, ``thinker.*``
    weights next to talker weights, a processor-style preprocessor config with image keys, and
    the chat template in the processor's ``chat_template.json``."""
    import shutil

    from safetensors.torch import load_file, save_file
    from transformers import AutoConfig

    out.mkdir()
    thinker = AutoConfig.from_pretrained(tiny_dir)
    full = full_config_class(thinker_config=thinker.to_dict(), enable_audio_output=False)
    full.save_pretrained(out)
    weights = {f"thinker.{k}": v for k, v in load_file(str(tiny_dir / "model.safetensors")).items()}
    weights["talker.codec_head.weight"] = torch.zeros(4, 4)  # must be ignored
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_dir / name, out / name)
    template = (tiny_dir / "chat_template.jinja").read_text()
    (out / "chat_template.json").write_text(json.dumps({"chat_template": template}))
    pre = json.loads((tiny_dir / "preprocessor_config.json").read_text())
    pre.update({"processor_class": "Qwen2_5OmniProcessor", "image_processor_type": "Qwen2VLImageProcessor",
                "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2,
                "merge_size": 2, "image_mean": [0.48, 0.46, 0.41], "image_std": [0.27, 0.26, 0.28]})
    (out / "preprocessor_config.json").write_text(json.dumps(pre))
    return out


@pytest.mark.parametrize("family,full_class", [("qwen2.5-omni", "Qwen2_5OmniConfig"),
                                               ("qwen3-omni", "Qwen3OmniMoeConfig")])
def test_omni_loads_thinker_from_a_full_hub_layout_checkpoint(family, full_class, tiny_model_dir, tmp_path):
    import transformers

    from tgsr.models import load_model

    tiny_dir = tiny_model_dir(family)
    ref = load_model(tiny_dir)
    hub = load_model(_hub_layout_omni(tiny_dir, tmp_path / "omni", getattr(transformers, full_class)))
    assert hub.family == family and type(hub.model).__name__.endswith("ThinkerForConditionalGeneration")
    assert hub.chat_template == ref.chat_template
    assert hub.feature_extractor.feature_size == 128
    hub.default_system_prompt = ref.default_system_prompt
    audio, conv = [_clip(1.3, 2)], [user_messages("Who speaks first?")]
    a, b = ref.build_inputs(audio, conv), hub.build_inputs(audio, conv)
    assert torch.equal(a["input_ids"], b["input_ids"])
    with torch.no_grad():
        torch.testing.assert_close(hub.model(**b).logits, ref.model(**a).logits, rtol=0, atol=1e-6)


def test_checkpoint_sampling_defaults_do_not_leak_into_generation(lm):
    """Real checkpoints ship top_k/top_p/temperature/repetition_penalty defaults: they must not
    change tgsr's sampling, or recorded log-probs would stop matching the recomputed ones."""
    gc = lm.model.generation_config
    saved = {k: getattr(gc, k, None) for k in ("temperature", "top_k", "top_p", "repetition_penalty", "do_sample")}
    gc.temperature, gc.top_k, gc.top_p, gc.repetition_penalty, gc.do_sample = 0.05, 3, 0.3, 1.8, True
    try:
        _, _, inputs = _batch(lm)
        torch.manual_seed(2)
        gen = lm.generate(inputs, max_new_tokens=12, do_sample=True, temperature=1.0, num_return_sequences=2)
        again = lm.completion_logprobs(lm.repeat_rows(inputs, 2), gen.completion_ids, gen.completion_mask)
        torch.testing.assert_close(again, gen.logprobs, rtol=0, atol=1e-4)
        # had top_k=3 (or temperature 0.05) leaked in, every sampled token would rank in the top 3
        rep = lm.repeat_rows(inputs, 2)
        full = {**rep, "input_ids": torch.cat([rep["input_ids"], gen.completion_ids], 1),
                "attention_mask": torch.cat([rep["attention_mask"], gen.completion_mask], 1)}
        with torch.no_grad():
            logits = lm.model(**full).logits[:, rep["input_ids"].shape[1] - 1:-1]
        chosen = logits.gather(-1, gen.completion_ids.unsqueeze(-1))
        rank = (logits > chosen).sum(-1)[gen.completion_mask.bool()]
        assert (rank >= 3).any()
        greedy = lm.generate(inputs, max_new_tokens=6)
        again = lm.completion_logprobs(inputs, greedy.completion_ids, greedy.completion_mask)
        torch.testing.assert_close(again, greedy.logprobs, rtol=0, atol=1e-4)
    finally:
        for k, v in saved.items():
            setattr(gc, k, v)


@pytest.mark.parametrize("family", ["qwen2.5-omni", "qwen3-omni"])
@pytest.mark.parametrize("n_samples", [24567, 32000, 100, 16000 * 31 + 7])
def test_own_length_features_equal_the_full_window_ones(family, n_samples, tiny_model_dir):
    """Omni features keep the clip's length but must equal the valid frames the official
    processor computes after padding the clip to the full window."""
    from tgsr.models import load_model

    lm = load_model(tiny_model_dir(family))
    fe = lm.feature_extractor
    audio = _clip(n_samples / SR, 4)
    ours = lm.featurize_one(audio)
    ref_audio = np.pad(audio, (0, max(0, 4000 - len(audio))))  # the adapter's minimum length
    window = max(fe.n_samples, len(ref_audio) + fe.n_fft + fe.hop_length)
    ref = fe([ref_audio], sampling_rate=SR, padding="max_length", max_length=window, return_attention_mask=True,
             return_tensors="pt")
    valid = int(ref["attention_mask"].sum())
    assert ours["feature_attention_mask"].shape == (1, valid) and bool(ours["feature_attention_mask"].all())
    torch.testing.assert_close(ours["input_features"], ref["input_features"][..., :valid].float(), rtol=0, atol=1e-4)


@pytest.mark.parametrize("family", ["qwen2.5-omni", "qwen2-audio"])
def test_real_audio_token_rate_with_hop_160(family, tmp_path):
    """--hop-length 160 gives the real models' 25 audio tokens per second, end to end."""
    from tgsr.models import load_model
    from tgsr.models.tiny import build_tiny

    lm = load_model(build_tiny(family, "xs", tmp_path / "m", hop_length=160))
    inputs = lm.build_inputs([_clip(2.0, 1)], [user_messages("Who speaks first?")])
    assert int((inputs["input_ids"] == lm.audio_token_id).sum()) == 50
    gen = lm.generate(inputs, max_new_tokens=4, do_sample=True, temperature=0.8)
    again = lm.completion_logprobs(inputs, gen.completion_ids, gen.completion_mask, temperature=0.8)
    torch.testing.assert_close(again, gen.logprobs, rtol=0, atol=1e-4)


def test_batching_does_not_change_a_rows_logprobs(lm):
    """A row scored inside a left-padded batch (mixed with a text-only row) equals the row alone."""
    audios = [_clip(1.5, 1), None, _clip(3.0, 2)]
    convs = [user_messages(q) for q in QUESTIONS]
    ids, mask = _completion_tensors(lm, COMPLETIONS)
    with torch.no_grad():
        batch = lm.completion_logprobs(lm.build_inputs(audios, convs), ids, mask)
        for i in range(3):
            n = int(mask[i].sum())
            alone = lm.completion_logprobs(lm.build_inputs([audios[i]], [convs[i]]),
                                           ids[i:i + 1, :n], mask[i:i + 1, :n])
            torch.testing.assert_close(batch[i:i + 1, :n], alone, rtol=0, atol=1e-4)
        rep = lm.repeat_rows(lm.build_inputs(audios, convs), 2)
        rep_logprobs = lm.completion_logprobs(rep, ids.repeat_interleave(2, 0), mask.repeat_interleave(2, 0))
        torch.testing.assert_close(rep_logprobs, batch.repeat_interleave(2, 0), rtol=0, atol=1e-6)


def test_a_missing_local_model_folder_fails_at_once(tmp_path, monkeypatch):
    """Regression: a mistyped folder went to the hub (minutes of retries, then a network error)."""
    from tgsr.models import load_model
    from tgsr.models.hub import looks_like_hub_id

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "weights.bin").write_bytes(b"x")
    for bad in ("nomodel", "runs/grpo-typo", "./ckpt", str(tmp_path / "a" / "b"), "a/b/c"):
        with pytest.raises(TgsrError, match="model folder not found"):
            load_model(bad)
    with pytest.raises(TgsrError, match="not a model folder"):
        load_model("weights.bin")
    assert looks_like_hub_id("Qwen/Qwen2.5-Omni-7B")      # a hub id is looked up in the cache
    assert not looks_like_hub_id("runs/grpo-typo") and not looks_like_hub_id("./a/b")


def test_the_tokenizer_corpus_file_is_guarded(tmp_path, monkeypatch):
    """Tiny tokenizers are trained from assets/tokenizer_corpus.jsonl: an edited file must be refused."""
    from tgsr.models import tiny

    assert len(tiny.TOKENIZER_CORPUS) == 4909 and tiny.TOKENIZER_CORPUS[0].startswith("What is the timestamp")
    edited = tmp_path / "corpus.jsonl"
    edited.write_bytes(tiny.CORPUS_FILE.read_bytes() + b'"one more line"\n')
    monkeypatch.setattr(tiny, "CORPUS_FILE", edited)
    with pytest.raises(TgsrError, match="changed"):
        tiny._read_corpus()
