"""The path a user takes with the real checkpoints, on folders laid out exactly like the hub's.

Each folder (``tests/fixtures_hub.py``) carries the hub's own config, templates, tokenizer config,
preprocessor and generation files, special tokens at the real ids and sharded weights under
the hub's key names; only the layer sizes are tiny and the weights random.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from fixtures_hub import HUB_REPOS
from tgsr.errors import TgsrError
from tgsr.prompts import user_messages

SR = 16_000
TEMPLATE_SOURCE = {
    # the only template is the processor's chat_template.json; the tokenizer alone has none
    "Qwen/Qwen2.5-Omni-7B": "chat_template.json",
    # the hub tokenizer's template is text-only (TypeError on list content): the processor default renders audio
    "Qwen/Qwen2-Audio-7B-Instruct": "Qwen2AudioProcessor.default_chat_template",
    "nvidia/audio-flamingo-3-hf": "chat_template.jinja",
}
# ms-swift's and the processor-era Qwen2-Audio template: keys on 'audio' in content, so a
# {"type": "audio"} item renders no placeholder at all
KEY_BASED_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% for message in messages %}{% if loop.first and message['role'] "
    "!= 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>"
    "{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}"
    "{% for content in message['content'] %}{% if 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}Audio {{ audio_count.value }}: <|audio_bos|><|AUDIO|>"
    "<|audio_eos|>\n{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _clip(seconds: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(SR * seconds)) * 0.1).astype(np.float32)


def _copy(folder, dest):
    """A copy of a hub-layout folder whose weight shards are links (cheap), text files real."""
    dest.mkdir()
    for f in folder.iterdir():
        if f.suffix == ".safetensors":
            (dest / f.name).symlink_to(f)
        else:
            shutil.copyfile(f, dest / f.name)
    return dest


@pytest.mark.parametrize("repo", HUB_REPOS)
def test_folder_is_laid_out_like_the_hub(repo, hub_layout_dir):
    from transformers import AutoConfig, AutoTokenizer

    from tgsr.models.hub_layout import HUB_TEXT_FILES, asset_dir, checkpoint

    d, spec = hub_layout_dir(repo), checkpoint(repo)
    for name in HUB_TEXT_FILES:  # every hub text file but config.json is the hub's, byte for byte
        src = asset_dir(repo) / name
        assert (d / name).exists() == src.exists(), name
        if src.exists() and name != "config.json":
            assert (d / name).read_bytes() == src.read_bytes(), name
    hub = json.loads((asset_dir(repo) / "config.json").read_text())
    ours = json.loads((d / "config.json").read_text())
    assert ours["architectures"] == hub["architectures"] and ours["model_type"] == hub["model_type"]
    index = json.loads((d / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert shards == [f"model-{i:05d}-of-{spec.shards:05d}.safetensors" for i in range(1, spec.shards + 1)]
    assert not (d / "model.safetensors").exists()
    tok = AutoTokenizer.from_pretrained(d)
    for token, tid in {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}.items():
        assert tok.convert_tokens_to_ids(token) == tid
    cfg = AutoConfig.from_pretrained(d)
    if repo == "Qwen/Qwen2.5-Omni-7B":  # the full checkpoint: thinker, talker and vocoder weights
        assert {k.split(".")[0] for k in index["weight_map"]} == {"thinker", "talker", "token2wav"}
        assert "thinker.model.layers.0.self_attn.q_proj.weight" in index["weight_map"]
        assert json.loads((d / "preprocessor_config.json").read_text())["chunk_length"] == 300
        assert cfg.thinker_config.audio_token_index == tok.convert_tokens_to_ids("<|AUDIO|>") == 151646
        assert cfg.thinker_config.text_config.vocab_size == 152064
    elif repo == "Qwen/Qwen2-Audio-7B-Instruct":
        assert cfg.audio_token_index == tok.convert_tokens_to_ids("<|AUDIO|>") == 151646
        assert cfg.text_config.vocab_size == 156032
        assert "message['content']" in json.loads((d / "tokenizer_config.json").read_text())["chat_template"]
    else:
        assert cfg.audio_token_id == tok.convert_tokens_to_ids("<sound>") == 151669
        assert cfg.text_config.vocab_size == 151672


@pytest.mark.parametrize("repo", HUB_REPOS)
def test_load_probes_the_template_and_reads_the_real_settings(repo, hub_layout_dir):
    from tgsr.models import load_model

    lm = load_model(hub_layout_dir(repo))
    assert lm.chat_template_source == TEMPLATE_SOURCE[repo]
    text = lm.render(user_messages("Who speaks first?"))
    assert text.count(lm.audio_token) == 1 and "Who speaks first?" in text
    assert text.endswith("<|im_start|>assistant\n")
    fe = lm.feature_extractor
    assert (fe.feature_size, fe.hop_length, fe.sampling_rate) == (128, 160, 16000)
    assert fe.chunk_length == (300 if repo == "Qwen/Qwen2.5-Omni-7B" else 30)
    if repo == "Qwen/Qwen2.5-Omni-7B":
        assert type(lm.model).__name__ == "Qwen2_5OmniThinkerForConditionalGeneration"  # talker never loaded
        assert lm.suppress_token_ids == [151646, 151655, 151656]   # audio, image, video placeholders
    assert lm.vocab_size == lm.model.config.get_text_config().vocab_size


def test_a_template_that_renders_no_placeholder_is_passed_over(hub_layout_dir, tmp_path, caplog):
    """Qwen2-Audio with the key-based (processor-era / ms-swift) template in chat_template.json."""
    from tgsr.models import load_model

    d = _copy(hub_layout_dir("Qwen/Qwen2-Audio-7B-Instruct"), tmp_path / "q2a")
    (d / "chat_template.json").write_text(json.dumps({"chat_template": KEY_BASED_TEMPLATE}))
    with caplog.at_level("WARNING", logger="tgsr.models.templates"):
        lm = load_model(d)
    assert lm.chat_template_source == "Qwen2AudioProcessor.default_chat_template"
    assert "chat_template.json: rendered 0 <|AUDIO|> placeholders" in caplog.text
    assert "tokenizer_config.json: TypeError" in caplog.text


def test_a_text_only_template_everywhere_falls_back_to_the_family_template(hub_layout_dir, tmp_path):
    """AF3 whose only template is the tokenizer's text-only one (the file the processor overwrites lost)."""
    from tgsr.models import load_model
    from tgsr.models.templates import family_template

    d = _copy(hub_layout_dir("nvidia/audio-flamingo-3-hf"), tmp_path / "af3")
    (d / "chat_template.jinja").unlink()
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg["chat_template"] = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
                            "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}")
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    lm = load_model(d)
    assert lm.chat_template_source == "tgsr family template"
    assert lm.chat_template == family_template("audio-flamingo-3")


def _omni_processor(lm):
    """The official Qwen2_5OmniProcessor for the audio path. Its image/video processors need torchvision,
    which cannot sit beside this CPU torch; they play no part in audio inputs, so the class check on
    them is skipped here (only here)."""
    from transformers import Qwen2_5OmniProcessor, Qwen2VLImageProcessor, WhisperFeatureExtractor
    from transformers.processing_utils import ProcessorMixin

    fe = WhisperFeatureExtractor.from_pretrained(lm.name_or_path)
    check = ProcessorMixin.check_argument_for_proper_class
    ProcessorMixin.check_argument_for_proper_class = lambda self, name, arg: None
    try:
        return Qwen2_5OmniProcessor(image_processor=Qwen2VLImageProcessor(), video_processor=object(),
                                    feature_extractor=fe, tokenizer=lm.tokenizer, chat_template=lm.chat_template)
    finally:
        ProcessorMixin.check_argument_for_proper_class = check


@pytest.mark.parametrize("repo", HUB_REPOS)
def test_inputs_equal_the_official_processors(repo, hub_layout_dir):
    from transformers import AutoProcessor

    from tgsr.models import load_model

    lm = load_model(hub_layout_dir(repo))
    audios = [_clip(4.3, 1), _clip(1.7, 2)]
    convs = [user_messages("Who speaks first?"), user_messages("When does the second speaker start?")]
    ours = lm.build_inputs(audios, convs)
    texts = [lm.render(c) for c in convs]
    if repo == "Qwen/Qwen2.5-Omni-7B":
        proc = _omni_processor(lm)
        theirs = proc(text=texts, audio=audios, return_tensors="pt", padding=True, padding_side="left")
    else:
        proc = AutoProcessor.from_pretrained(lm.name_or_path)  # what the folder itself says
        theirs = proc(text=texts, audio=audios, return_tensors="pt",
                      text_kwargs={"padding": True, "padding_side": "left"})
    assert torch.equal(ours["input_ids"], theirs["input_ids"])
    assert torch.equal(ours["attention_mask"], theirs["attention_mask"])
    mask_key = lm.audio_keys[1]
    for i in range(len(audios)):  # Omni keeps each clip's own length: compare the valid frames
        n = int(ours[mask_key][i].sum())
        assert n == int(theirs[mask_key][i].sum())
        torch.testing.assert_close(ours["input_features"][i][:, :n], theirs["input_features"][i][:, :n].float(),
                                   rtol=0, atol=1e-5)


@pytest.mark.parametrize("repo", HUB_REPOS)
def test_sampling_logprobs_match_the_training_pass_with_the_hub_generation_defaults(repo, hub_layout_dir):
    """The hub generation configs ship top_k / top_p / repetition_penalty (Qwen2-Audio: 20 / 0.5 / 1.1):
    tgsr's sampling must still be exactly what the log-prob pass recomputes."""
    from tgsr.models import load_model

    lm = load_model(hub_layout_dir(repo))
    inputs = lm.build_inputs([_clip(2.0, 3)], [user_messages("What is said?")])
    torch.manual_seed(0)
    gen = lm.generate(inputs, max_new_tokens=6, do_sample=True, temperature=0.8, num_return_sequences=2)
    again = lm.completion_logprobs(lm.repeat_rows(inputs, 2), gen.completion_ids, gen.completion_mask,
                                   temperature=0.8)
    torch.testing.assert_close(again, gen.logprobs, rtol=0, atol=1e-4)


def test_a_checkpoint_missing_weights_is_refused(hub_layout_dir, tmp_path):
    from tgsr.models import load_model

    d = _copy(hub_layout_dir("Qwen/Qwen2-Audio-7B-Instruct"), tmp_path / "broken")
    index = json.loads((d / "model.safetensors.index.json").read_text())
    dropped = "model-00002-of-00005.safetensors"
    index["weight_map"] = {k: v for k, v in index["weight_map"].items() if v != dropped}
    (d / "model.safetensors.index.json").write_text(json.dumps(index))
    (d / dropped).unlink()
    with pytest.raises(TgsrError, match="lacks .* weight"):
        load_model(d)


def test_hub_ids_resolve_through_the_cache(use_hub_cache, hub_layout_dir):
    from tgsr.models import load_model, resolve_model_path

    path = resolve_model_path("Qwen/Qwen2-Audio-7B-Instruct")
    assert str(use_hub_cache) in path and path.endswith("snapshots/" + "0" * 40)
    lm = load_model("Qwen/Qwen2.5-Omni-7B")
    assert lm.family == "qwen2.5-omni" and lm.chat_template_source == "chat_template.json"
    with pytest.raises(TgsrError) as e:
        load_model("Qwen/Not-A-Checkpoint")
    assert "Qwen/Not-A-Checkpoint" in str(e.value) and str(use_hub_cache) in str(e.value)
    assert "HF_HUB_OFFLINE=1" in str(e.value)


def test_eval_run_takes_a_hub_id_and_a_device(use_hub_cache, synth_corpus, tmp_path, capsys):
    from tgsr.cli import main

    out = tmp_path / "run"
    assert main(["eval", "run", "--model", "nvidia/audio-flamingo-3-hf", "--benchmark", "synthetic",
                 "--data-root", str(synth_corpus), "--limit", "2", "--max-new-tokens", "4", "--batch-size", "2",
                 "--device", "cpu", "--out", str(out), "--quiet"]) == 0
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["completion"] is not None for r in rows)
    info = json.loads((out / "run.json").read_text())
    assert info["model"] == "nvidia/audio-flamingo-3-hf" and info["device"] == "cpu"
    with pytest.raises(SystemExit) as e:
        main(["eval", "run", "--help"])
    assert e.value.code == 0
    assert "--device" in capsys.readouterr().out


def test_af3_clip_just_past_a_window_boundary(hub_layout_dir):
    """30.01 s ends 1 mel frame into a second window, which gives 0 audio tokens: it must not count as a
    window, or repeat_rows (num_return_sequences > 1) mis-pairs windows and rows."""
    from tgsr.models import load_model

    lm = load_model(hub_layout_dir("nvidia/audio-flamingo-3-hf"))
    feats = lm.featurize_one(_clip(30.01, 4))
    assert feats["input_features"].shape[0] == 1
    assert lm.featurize_one(_clip(30.2, 4))["input_features"].shape[0] == 2
    inputs = lm.build_inputs([_clip(30.01, 4), _clip(10.0, 5)], [user_messages("Q?"), user_messages("Q?")])
    gen = lm.generate(inputs, max_new_tokens=2, do_sample=True, num_return_sequences=2)
    assert gen.completion_ids.shape[0] == 4
