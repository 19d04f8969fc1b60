"""Citation following: probes built from lab items, the teacher-forced prefix mechanics on a real
tiny model, the rates with a model that reads at its citations and one that ignores them, the
gate, and ``tgsr analyze citation-following`` end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tgsr.analysis.citation_following import (
    citation_gate,
    citation_probes,
    prefixed_generation,
    run_citation_following,
    summarize_citation_following,
)
from tgsr.audio import load_audio
from tgsr.data.lab import PITCHES_HZ
from tgsr.records import QAExample, read_jsonl
from tgsr.spans import find_spans, format_span

SR = 16_000


def lab_items(corpus, split):
    return read_jsonl(corpus / split / "qa.jsonl", QAExample).records


def test_probes_from_lab_items(lab_corpus):
    train = lab_items(lab_corpus, "train")
    probes, skipped = citation_probes(train, seed=0)
    assert len(probes) + len(skipped) == len(train)
    assert {s["reason"] for s in skipped} == {"no pointer citation or no counterfactual in meta"}
    # only a comparison where every other beep implies the gold has none (read_at's contradict its question)
    assert {s["id"] for s in skipped} == {ex.id for ex in train
                                          if ex.task == "compare_marker" and not ex.meta["counterfactuals"]}
    assert any(p.task == "read_at" for p in probes)
    by_id = {ex.id: ex for ex in train}
    for p in probes:
        ex = by_id[p.id]
        pointer = ex.evidence[ex.meta["pointer"]]
        assert p.gold_prefix.endswith(",") and ex.rationale.startswith(p.gold_prefix)
        cited = [(s.start, s.end) for s in find_spans(p.gold_prefix)]
        assert cited[-1] == tuple(pointer) and len(cited) == ex.meta["pointer"] + 1
        cf = [(s.start, s.end) for s in find_spans(p.counterfactual_prefix)]
        assert cf[:-1] == cited[:-1] and cf[-1] == p.counterfactual_span != cited[-1]
        assert format_span(*p.counterfactual_span) in p.counterfactual_prefix
        assert p.counterfactual_answer != p.gold
        # the prefix stops before the value is read: the answer word is not in the cited sentence
        assert not p.gold_prefix.split("\n")[-1].split(",", 1)[1].strip()
    again, _ = citation_probes(train, seed=0)
    assert again == probes
    # each item draws its own counterfactual, though lab ids of one family share their head and tail
    for task in ("after_marker", "read_at"):
        drawn = [[tuple(c["span"]) for c in by_id[p.id].meta["counterfactuals"]].index(p.counterfactual_span)
                 for p in probes if p.task == task]
        assert len(drawn) >= 8 and len(set(drawn)) > 1, (task, drawn)


class _CharLM:
    """A model with a character tokenizer that answers from the audio at the last span it was
    told (``reads=True``), or answers (a) whatever it hears (``reads=False``)."""

    im_end_id = 1
    name_or_path = "char-lm"

    def __init__(self, reads: bool):
        self.reads = reads

    def build_inputs(self, audios, conversations, completions=None):
        texts = completions or [""] * len(audios)
        rows = [[ord(c) for c in t] + ([self.im_end_id] if completions is not None else [2]) for t in texts]
        width = max(len(r) for r in rows)
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r):] = torch.tensor(r)
        q = [c[-1]["content"][1]["text"] for c in conversations]
        return {"input_ids": ids, "attention_mask": (ids > 0).long(), "audios": list(audios), "questions": q}

    def generate(self, inputs, max_new_tokens):
        texts = []
        for row, audio, q in zip(inputs["input_ids"], inputs["audios"], inputs["questions"]):
            prefix = "".join(chr(int(c)) for c in row if int(c) > 2)
            spans = find_spans(prefix)
            if not self.reads or not spans:
                texts.append(" something.\nFinal answer: (a)")
                continue
            last = self.pitch(audio, spans[-1])
            if "lower or higher" in q:
                letter = "b" if last > self.pitch(audio, spans[0]) else "a"
            else:
                letter = "abcd"[PITCHES_HZ.index(last)]
            texts.append(f" read.\nFinal answer: ({letter})")
        return type("G", (), {"texts": texts})()

    @staticmethod
    def pitch(audio, span):
        seg = audio[int(span.start * SR):int(span.end * SR)]
        f = np.fft.rfftfreq(seg.size, 1 / SR)[np.argmax(np.abs(np.fft.rfft(seg)))]
        return min(PITCHES_HZ, key=lambda p: abs(math.log(f / p)))


def test_a_reader_follows_its_citations_and_an_ignorer_does_not(lab_corpus, tmp_path):
    items = lab_items(lab_corpus, "test")
    reader = run_citation_following(_CharLM(True), items, tmp_path / "reader", progress=False)
    n_none = sum(not ex.meta["counterfactuals"] for ex in items)
    assert reader["n_probed"] == len(items) - n_none and reader["n_skipped"] == n_none and reader["n_failed"] == 0
    assert reader["follow_rate"] == 1.0 and reader["accuracy_gold_citation"] == 1.0
    assert reader["gold_gain"] == pytest.approx(1.0 - reader["accuracy_own"])
    assert citation_gate(reader).passed
    ignorer = run_citation_following(_CharLM(False), items, tmp_path / "ignorer", progress=False)
    rows = [json.loads(x) for x in (tmp_path / "ignorer" / "citation_items.jsonl").read_text().splitlines()]
    assert ignorer["follow_rate"] == pytest.approx(np.mean([r["counterfactual_answer"] == "a" for r in rows]))
    assert ignorer["gold_gain"] == 0.0 and ignorer["follow_pvalue"] > 0.01
    gate = citation_gate(ignorer)
    assert not gate.passed and any("follow rate" in r for r in gate.reasons) and any("gain" in r for r in gate.reasons)
    # resume: a second call probes nothing new and reports the same
    again = run_citation_following(_CharLM(False), items, tmp_path / "ignorer", progress=False)
    assert again["follow_rate"] == ignorer["follow_rate"]


def test_summary_counts_by_hand():
    rows = [
        {"id": "1", "task": "t", "gold": "a", "n_choices": 4, "counterfactual_answer": "b", "own_letter": "a",
         "gold_letter": "a", "counterfactual_letter": "b"},
        {"id": "2", "task": "t", "gold": "c", "n_choices": 4, "counterfactual_answer": "d", "own_letter": "a",
         "gold_letter": "c", "counterfactual_letter": "c"},
        {"id": "3", "task": "u", "gold": "b", "n_choices": 2, "counterfactual_answer": "a", "own_letter": None,
         "gold_letter": "a", "counterfactual_letter": "a"},
        {"id": "4", "error": "audio: missing"},
    ]
    s = summarize_citation_following(rows, n_items=6, skipped=[{"id": "5", "reason": "r"}])
    assert (s["n_probed"], s["n_failed"], s["n_skipped"], s["n_missing"]) == (3, 1, 1, 1)
    assert s["follow_rate"] == pytest.approx(2 / 3) and s["follow_chance"] == pytest.approx((0.25 + 0.25 + 0.5) / 3)
    assert s["accuracy_own"] == pytest.approx(1 / 3) and s["accuracy_gold_citation"] == pytest.approx(2 / 3)
    assert s["stays_gold_rate"] == pytest.approx(1 / 3)
    assert s["gold_vs_own"]["mcnemar"]["only_a"] == 1 and s["gold_vs_own"]["mcnemar"]["only_b"] == 0
    empty = summarize_citation_following([], n_items=2, skipped=[{"id": "a", "reason": "r"}] * 2)
    assert empty["follow_rate"] is None and not citation_gate(empty).passed


def test_prefixed_generation_on_a_real_tiny_model(tiny_omni_dir, lab_corpus):
    from tgsr.models import load_model
    from tgsr.prompts import reasoning_question, user_messages

    lm = load_model(tiny_omni_dir)
    exs = lab_items(lab_corpus, "validation")[:2]
    audios = [load_audio(ex.audio) for ex in exs]
    convs = [user_messages(reasoning_question(ex.question, ex.choices, "grounded")) for ex in exs]
    prefixes = ["From 1.00s to 2.00s,", "From 3.50s to 4.25s, the noise burst sounds.\nFrom 5.00s to 5.30s,"]
    both = prefixed_generation(lm, audios, convs, prefixes, max_new_tokens=6)
    alone = [prefixed_generation(lm, [a], [c], [p], max_new_tokens=6)[0] for a, c, p in zip(audios, convs, prefixes)]
    assert both == alone  # left padding does not change what follows a prefix
    # the continuation is what the model predicts after prompt + prefix: its first token is the
    # argmax of a teacher-forced forward pass over the same tokens
    full = lm.build_inputs(audios[:1], convs[:1], completions=prefixes[:1])
    assert int(full["input_ids"][0, -1]) == lm.im_end_id
    inputs = {k: v for k, v in full.items() if k != "labels"}
    inputs["input_ids"], inputs["attention_mask"] = full["input_ids"][:, :-1], full["attention_mask"][:, :-1]
    with torch.no_grad():
        token = int(lm.model(**inputs).logits[0, -1].argmax())
    if token in lm.eos_token_ids:
        assert alone[0] == ""
    else:
        assert alone[0] and alone[0].startswith(lm.tokenizer.decode([token]))


def test_analyze_citation_following_cli(tiny_omni_dir, lab_corpus, synth_corpus, tmp_path, capsys):
    from tgsr.cli import main

    out = tmp_path / "cf"
    rc = main(["analyze", "citation-following", "--model", str(tiny_omni_dir), "--data",
               str(lab_corpus / "validation" / "qa.jsonl"), "--limit", "4", "--max-new-tokens", "8",
               "--batch-size", "3", "--out", str(out), "--quiet"])
    assert rc == 0
    s = json.loads((out / "citation_following.json").read_text())
    rows = [json.loads(x) for x in (out / "citation_items.jsonl").read_text().splitlines()]
    assert s["n_items"] == 4 and s["n_probed"] + s["n_skipped"] + s["n_failed"] == 4 and len(rows) == s["n_probed"]
    assert s["follow_rate"] == pytest.approx(np.mean([r["counterfactual_letter"] == r["counterfactual_answer"]
                                                      for r in rows]))
    probes = {p.id: p for p in citation_probes(lab_items(lab_corpus, "validation")[:4])[0]}
    for r in rows:  # the completions continue the teacher-forced prefixes
        assert r["gold_completion"].startswith(probes[r["id"]].gold_prefix)
        assert r["counterfactual_completion"].startswith(probes[r["id"]].counterfactual_prefix)
    gate = json.loads((out / "citation_gate.json").read_text())
    assert gate["passed"] == citation_gate(s).passed
    assert "follows counterfactual" in capsys.readouterr().out
    # items without pointer citations cannot be probed: a clear error, not an empty success
    rc = main(["analyze", "citation-following", "--model", str(tiny_omni_dir), "--data",
               str(synth_corpus / "test" / "qa.jsonl"), "--limit", "2", "--out", str(tmp_path / "none"), "--quiet"])
    assert rc == 1 and "no item could be probed" in capsys.readouterr().err
