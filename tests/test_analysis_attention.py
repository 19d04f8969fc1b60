"""Block attention: exact against output_attentions=True, partitions, phases, bounded memory."""

import pytest
import torch

from tgsr.analysis.attention import (
    BLOCKS,
    BlockLayout,
    analyze_example,
    block_attention,
    cited_audio_keys,
    partition_blocks,
    reduce_full_attentions,
    summarize,
    token_char_spans,
    token_phases,
)


def _tiny_omni_thinker():
    from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration

    torch.manual_seed(0)
    cfg = Qwen2_5OmniThinkerConfig(
        audio_config=dict(d_model=32, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=64,
                          num_mel_bins=128, output_dim=64, n_window=100, max_source_positions=1500),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=32, num_heads=2, out_hidden_size=64,
                           fullatt_block_indexes=[0]),
        text_config=dict(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}),
        audio_token_id=290, vision_start_token_id=291, image_token_id=292, video_token_id=293,
        audio_start_token_id=294, audio_end_token_id=295,
    )
    return Qwen2_5OmniThinkerForConditionalGeneration(cfg).eval()


def _omni_inputs(n_frames=200, n_sys=7, n_q=11, n_gen=23):
    n_audio = ((n_frames - 1) // 2 + 1 - 2) // 2 + 1
    g = torch.Generator().manual_seed(1)
    sys_ids = torch.randint(0, 280, (n_sys,), generator=g)
    q_ids = torch.randint(0, 280, (n_q,), generator=g)
    gen_ids = torch.randint(0, 280, (n_gen,), generator=g)
    ids = torch.cat([sys_ids, torch.tensor([294]), torch.full((n_audio,), 290), torch.tensor([295]), q_ids, gen_ids])
    inputs = {
        "input_ids": ids[None],
        "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
        "input_features": torch.randn(1, 128, n_frames, generator=g),
        "feature_attention_mask": torch.ones(1, n_frames, dtype=torch.long),
    }
    a0 = n_sys + 1
    blocks = {"system": (0, n_sys), "audio": (a0, a0 + n_audio), "question": (a0 + n_audio + 1, a0 + n_audio + 1 + n_q),
              "output": (len(ids) - n_gen, len(ids))}
    return inputs, blocks, n_gen


def test_partition_blocks_covers_sequence_and_gives_gaps_to_the_left_block():
    lay = partition_blocks({"system": (0, 3), "audio": (5, 9), "question": (10, 14), "output": (16, 20)}, 20)
    assert lay.as_dict() == {"system": (0, 5), "audio": (5, 10), "question": (10, 16), "output": (16, 20)}
    lay = partition_blocks({"audio": (2, 6), "question": (6, 6), "output": (8, 8)}, 8)
    assert lay.as_dict() == {"system": (0, 2), "audio": (2, 8), "question": (8, 8), "output": (8, 8)}
    with pytest.raises(ValueError):
        partition_blocks({"audio": (2, 30), "output": (8, 8)}, 8)
    with pytest.raises(ValueError):
        BlockLayout(bounds=((0, 2), (3, 4), (4, 4), (4, 5)), seq_len=5)


def test_visible_counts_are_causal():
    lay = BlockLayout(bounds=((0, 2), (2, 5), (5, 6), (6, 9)), seq_len=9)
    c = lay.visible_counts(torch.tensor([5, 6, 8]))
    assert c.tolist() == [[2, 3, 1, 0], [2, 3, 1, 1], [2, 3, 1, 3]]


@pytest.mark.parametrize("chunk", [5, 128])
def test_omni_blocks_equal_output_attentions_and_sum_to_row_mass(chunk):
    model = _tiny_omni_thinker()
    inputs, blocks, n_gen = _omni_inputs()
    seq = inputs["input_ids"].shape[1]
    lay = partition_blocks(blocks, seq)
    rows = (seq - n_gen - 1, seq - 1)
    got = block_attention(model, inputs, lay, rows, chunk=chunk)
    assert model.config.text_config._attn_implementation != "tgsr_block_attention"   # restored
    model.set_attn_implementation("eager")
    with torch.no_grad():
        out = model(**inputs, output_attentions=True, use_cache=False)
    ref = reduce_full_attentions(out.attentions, lay, rows)
    assert got.mass.shape == (3, n_gen, len(BLOCKS))
    assert torch.allclose(got.mass, ref.mass, atol=1e-6, rtol=0)
    assert torch.allclose(got.per_token, ref.per_token, atol=1e-6, rtol=0)
    # the four blocks partition the keys: block masses add up to the row's total attention
    assert torch.allclose(got.mass.sum(-1), got.total, atol=1e-9)
    assert torch.allclose(got.total, torch.ones_like(got.total), atol=1e-5)
    # the first generated token is produced before any output token exists
    assert torch.all(got.mass[:, 0, 3] == 0)
    assert torch.all(got.mass[:, 1:, 3] > 0)


class _CharTokenizer:
    """Decodes ids as characters; id 0 is a special token that decodes to nothing."""

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(i) for i in ids if i != 0)


def test_phases_partition_tokens_and_find_timestamps_and_answer():
    text = 'From 0.18 seconds to 2.22 seconds, the first speaker says "hi".\nFinal answer: (b) two'
    ids = [ord(c) for c in text] + [0]
    spans = token_char_spans(_CharTokenizer(), ids)
    phases = token_phases(text, spans)
    assert len(phases) == len(ids)
    assert set(phases) <= {"reasoning", "timestamp", "answer"}
    cite_end = text.index(",")
    assert all(p == "timestamp" for p in phases[:cite_end])
    assert phases[cite_end] == "reasoning"
    ans = text.index("Final")
    assert all(p == "answer" for p in phases[ans:])
    assert all(p != "answer" for p in phases[:ans])
    # no final line stating an answer: no answer tokens
    talk = "just talking"
    assert "answer" not in token_phases(talk, token_char_spans(_CharTokenizer(), [ord(c) for c in talk]))


def test_summary_averages_phases():
    model = _tiny_omni_thinker()
    inputs, blocks, n_gen = _omni_inputs(n_gen=6)
    seq = inputs["input_ids"].shape[1]
    lay = partition_blocks(blocks, seq)
    r = block_attention(model, inputs, lay, (seq - n_gen - 1, seq - 1))
    r.phases = ["reasoning", "timestamp", "timestamp", "reasoning", "answer", "answer"]
    s = summarize([r])
    assert s["mass"]["all"]["n_tokens"] == 6
    assert s["mass"]["timestamp"]["n_tokens"] == 2
    exp = r.mass[:, [1, 2], 1].mean().item()
    assert s["mass"]["timestamp"]["mean"]["audio"] == pytest.approx(exp)
    assert sum(s["mass"]["all"]["mean"].values()) == pytest.approx(1.0, abs=1e-5)


FAMILY_FIXTURES = ["tiny_omni_dir", "tiny_qwen2_audio_dir", "tiny_af3_dir"]


@pytest.mark.parametrize("fixture", FAMILY_FIXTURES)
def test_every_family_block_sums_and_phases(fixture, request):
    import numpy as np

    from tgsr.models import load_model
    from tgsr.prompts import reasoning_question, user_messages

    lm = load_model(request.getfixturevalue(fixture))
    audio = (0.1 * np.sin(np.linspace(0, 2000, 24000))).astype(np.float32)
    conv = user_messages(reasoning_question("Who speaks first?", ["the first speaker", "the second speaker"]))
    # a generated completion: every token is in exactly one phase
    res, text = analyze_example(lm, audio, conv, max_new_tokens=12)
    assert res.mass.shape[1] == len(res.phases) >= 1
    assert torch.allclose(res.mass.sum(-1), res.total, atol=1e-9)
    assert torch.allclose(res.total, torch.ones_like(res.total), atol=1e-4)
    assert res.mass[:, :, 1].min() > 0                       # every token sees the audio block
    # a given grounded completion: all three phases appear and partition the tokens
    comp = "From 0.18 seconds to 1.20 seconds, the first speaker says hello.\nFinal answer: (a) the first speaker"
    res, text = analyze_example(lm, audio, conv, completion=comp)
    assert text == comp
    n = res.mass.shape[1]
    counts = {p: res.phases.count(p) for p in ("reasoning", "timestamp", "answer")}
    assert sum(counts.values()) == n and all(c > 0 for c in counts.values())
    assert res.phases[0] == "timestamp" and res.phases[-1] == "answer"
    assert torch.allclose(res.mass.sum(-1), res.total, atol=1e-9)
    # and the recorder equals output_attentions=True on the same model
    lay, rows = res.layout, res.rows
    inputs = lm.build_inputs([audio], [conv], completions=[comp])
    inputs.pop("labels")
    lm.model.set_attn_implementation("eager")
    with torch.no_grad():
        out = lm.model(**inputs, output_attentions=True, use_cache=False)
    ref = reduce_full_attentions(out.attentions, lay, rows)
    assert torch.allclose(res.mass, ref.mass, atol=1e-6, rtol=0)
    # the mass inside the cited span (0.18-1.20 s of the 1.5 s clip) equals the full weights' too
    ids = inputs["input_ids"][0]
    positions = (ids == lm.audio_token_id).nonzero().flatten().tolist()
    keys = cited_audio_keys(comp, positions, 1.5, ids.shape[0])
    assert 0 < int(keys.sum()) < len(positions)
    ref_span = torch.stack([w[0, :, rows[0]:rows[1], :].double().mean(0)[:, keys].sum(-1) for w in out.attentions])
    assert torch.allclose(res.span_mass, ref_span, atol=1e-6, rtol=0)
    assert res.span_share == pytest.approx(int(keys.sum()) / len(positions))
    ratio = res.span_ratio()
    assert ratio.shape == res.total.shape and torch.isfinite(ratio).all() and ratio.min() > 0


def test_cited_spans_map_onto_the_audio_tokens_uniformly():
    positions = list(range(20, 30))                      # 10 audio tokens for a 5 s clip: 0.5 s each
    keys = cited_audio_keys("From 1.00s to 2.00s, a beep. From 4.80s to 9.00s, the end.", positions, 5.0, 40)
    assert keys.nonzero().flatten().tolist() == [22, 23, 29]   # [1, 2) s -> tokens 2-3; the end clipped to 5 s
    assert cited_audio_keys("Final answer: (a)", positions, 5.0, 40) is None
    assert cited_audio_keys("From 6.00s to 7.00s, after the clip.", positions, 5.0, 40) is None


def test_span_ratio_is_pooled_over_the_tokens_of_citing_items():
    lay = BlockLayout(bounds=((0, 1), (1, 5), (5, 6), (6, 8)), seq_len=8)
    mass = torch.tensor([[[0.1, 0.8, 0.05, 0.05], [0.2, 0.4, 0.2, 0.2]]], dtype=torch.float64)  # 1 layer, 2 tokens
    from tgsr.analysis.attention import BlockAttention

    cited = BlockAttention(mass=mass, per_token=mass, total=mass.sum(-1), layout=lay, rows=(5, 7),
                           phases=["reasoning", "answer"], span_mass=torch.tensor([[0.4, 0.1]], dtype=torch.float64),
                           span_share=0.25)
    plain = BlockAttention(mass=mass, per_token=mass, total=mass.sum(-1), layout=lay, rows=(5, 7),
                           phases=["reasoning", "answer"])
    s = summarize([cited, plain])
    # token ratios: (0.4 / 0.8) / 0.25 = 2.0 and (0.1 / 0.4) / 0.25 = 1.0
    assert s["span_ratio"]["all"]["mean"] == pytest.approx(1.5)
    assert s["span_ratio"]["answer"]["mean"] == pytest.approx(1.0)
    assert s["span_ratio"]["n_with_span"] == 1 and s["span_ratio"]["n_without_span"] == 1
    from tgsr.analysis.attention import table4_rows

    assert "| 1.00 (1) |" in table4_rows({"m": s})


def test_run_attention_resumes_and_records_failures(tiny_omni_dir, tmp_path):
    import json

    import numpy as np

    from tgsr.analysis.attention import PROBE_QUERIES, AttentionJob, run_attention
    from tgsr.audio import save_audio
    from tgsr.models import load_model
    from tgsr.prompts import user_messages

    lm = load_model(tiny_omni_dir)
    wav = tmp_path / "a.wav"
    save_audio(wav, (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32))
    jobs = [AttentionJob(f"c#{i}", str(wav), user_messages(q), q) for i, q in enumerate(PROBE_QUERIES)]
    jobs.append(AttentionJob("missing", str(tmp_path / "nope.wav"), user_messages("What is happening?")))
    s = run_attention(lm, jobs[:2], tmp_path / "out", max_new_tokens=6, progress=False)
    assert s["n_sequences"] == 2
    s = run_attention(lm, jobs, tmp_path / "out", max_new_tokens=6, progress=False)
    lines = (tmp_path / "out" / "attention_items.jsonl").read_text().splitlines()
    assert len(lines) == 4                                     # the first two were not redone
    assert s["n_sequences"] == 3 and s["n_failed"] == 1 and "file not found" in s["failures"][0]["error"]
    assert sum(s["mass"]["all"]["mean"].values()) == pytest.approx(1.0, abs=1e-4)
    assert json.loads((tmp_path / "out" / "attention_summary.json").read_text())["n_items"] == 4
    # a failed item is retried on resume; its new record replaces the failure
    save_audio(tmp_path / "nope.wav", (0.1 * np.random.default_rng(1).standard_normal(16000)).astype(np.float32))
    s = run_attention(lm, jobs, tmp_path / "out", max_new_tokens=6, progress=False)
    assert s["n_sequences"] == 4 and s["n_failed"] == 0
    assert len((tmp_path / "out" / "attention_items.jsonl").read_text().splitlines()) == 5
    from tgsr.errors import TgsrError

    with pytest.raises(TgsrError, match="other settings"):
        run_attention(lm, jobs, tmp_path / "out", max_new_tokens=7, progress=False)
