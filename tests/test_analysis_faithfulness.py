"""Counterfactual faithfulness: masks, random placement, flip rates with a model that listens."""

from types import SimpleNamespace

import numpy as np
import pytest

from tgsr.analysis.faithfulness import merge_intervals, random_spans, run_faithfulness
from tgsr.audio import save_audio
from tgsr.records import QAExample

SR = 16000


def test_merge_intervals_and_random_spans():
    assert merge_intervals([(3, 4), (1, 2), (1.5, 2.5), (9, 12), (5, 5)], duration=10) == [(1, 2.5), (3, 4), (9, 10)]
    rng = np.random.default_rng(0)
    for _ in range(20):
        spans, avoided = random_spans([1.0, 0.5], 8.0, rng, avoid=[(2.0, 4.0)])
        assert avoided
        assert sorted(round(e - s, 6) for s, e in spans) == [0.5, 1.0]
        assert all(0 <= s and e <= 8.0 for s, e in spans)
        assert not (spans[0][1] > spans[1][0])                     # disjoint
        assert all(e <= 2.0 or s >= 4.0 for s, e in spans)           # away from the cited region
    spans, avoided = random_spans([3.0], 4.0, rng, avoid=[(0.5, 3.5)])
    assert not avoided and spans[0][1] - spans[0][0] == pytest.approx(3.0)


class _ListeningLM:
    """Answers from the energy of 1-2 s and cites that region: masking it must flip the answer."""

    name_or_path = "listening-fake"

    def build_inputs(self, audios, conversations):
        return {"audios": audios}

    def generate(self, inputs, max_new_tokens):
        texts = []
        for a in inputs["audios"]:
            loud = float(np.abs(a[SR:2 * SR]).mean()) > 0.05
            texts.append("From 1.00s to 2.00s, there is " + ("a loud tone" if loud else "silence")
                         + ".\nFinal answer: " + ("(a) loud" if loud else "(b) quiet"))
        return SimpleNamespace(texts=texts)


def test_flip_rates_with_a_model_that_listens_to_what_it_cites(tmp_path):
    t = np.arange(6 * SR) / SR
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    exs = []
    for i in range(5):
        save_audio(tmp_path / f"{i}.wav", tone)
        exs.append(QAExample(id=f"q{i}", audio=str(tmp_path / f"{i}.wav"), question="Is it loud?",
                             choices=["loud", "quiet"], answer="a"))
    exs.append(QAExample(id="bad", audio=str(tmp_path / "missing.wav"), question="?", choices=["loud", "quiet"],
                         answer="a"))
    s = run_faithfulness(_ListeningLM(), exs[:3], tmp_path / "f", progress=False)
    assert s["n_tested"] == 3
    s = run_faithfulness(_ListeningLM(), exs, tmp_path / "f", progress=False)
    assert s["n_items"] == 6 and s["n_tested"] == 5 and s["n_failed"] == 1
    assert s["flip_rate_cited"] == 1.0 and s["flip_rate_random"] == 0.0 and s["flip_gap"] == 1.0
    assert s["accuracy_original"] == 1.0 and s["accuracy_cited_masked"] == 0.0
    assert s["mean_masked_fraction"] == pytest.approx(1 / 6, abs=1e-3)
    assert (tmp_path / "f" / "faithfulness.md").read_text().count("|") > 10
    # noise masking at the clip's RMS keeps the region loud: no flips there, by construction of this fake
    s = run_faithfulness(_ListeningLM(), exs[:2], tmp_path / "g", mask="noise", progress=False)
    assert s["n_tested"] == 2 and s["flip_rate_random"] == 0.0
    # resuming with another mask is refused, naming what changed (it used to dump the old settings)
    from tgsr.errors import TgsrError

    with pytest.raises(TgsrError, match=r"other settings \(mask: 'noise' -> 'silence'\)"):
        run_faithfulness(_ListeningLM(), exs[:2], tmp_path / "g", mask="silence", progress=False)


def test_faithfulness_runs_on_a_tiny_model(tiny_omni_dir, tmp_path):
    from tgsr.models import load_model

    lm = load_model(tiny_omni_dir)
    save_audio(tmp_path / "a.wav", (0.1 * np.random.default_rng(0).standard_normal(2 * SR)).astype(np.float32))
    exs = [QAExample(id="a", audio=str(tmp_path / "a.wav"), question="Who speaks first?",
                     choices=["the first speaker", "the second speaker"], answer="a")]
    s = run_faithfulness(lm, exs, tmp_path / "f", max_new_tokens=8, progress=False)
    assert s["n_items"] == 1 and s["n_tested"] + s["n_no_citation"] + s["n_failed"] == 1
