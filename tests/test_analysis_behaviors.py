"""Behaviour metrics and judges on hand-made predictions with known answers."""

import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from tgsr.analysis.behaviors import (
    attributed_text,
    attribution,
    audiology_verify,
    grounding_precision,
    regions_explored,
    run_behaviors,
    word_similarity,
)
from tgsr.analysis.judge import OpenAIJudge, RuleJudge, argued_option, get_judge, judge_prompt, parse_score
from tgsr.errors import TgsrError
from tgsr.spans import find_spans

AUTHORS = ("From 0.18 seconds to 2.22 seconds, the first speaker says good morning everyone. "
           "From 2.50 seconds to 4.00 seconds, the second speaker answers \"thank you very much\". "
           "So the first speaker talks first.\n"
           "Final answer: (a) the first speaker")
CHOICES = ["the first speaker", "the second speaker"]


def test_word_similarity_is_one_minus_normalised_word_edit_distance():
    assert word_similarity("Good morning, everyone!", "good morning everyone") == 1.0
    assert word_similarity("good morning everyone", "good evening everyone") == pytest.approx(2 / 3)
    assert word_similarity("a b c d", "") == 0.0
    assert word_similarity("", "") == 1.0
    assert word_similarity("one two", "one two three four") == pytest.approx(0.5)


def test_attributed_text_quote_clause_and_speech_verb():
    spans = find_spans(AUTHORS)
    assert len(spans) == 2
    assert attributed_text(AUTHORS, spans, 0) == "good morning everyone"
    assert attributed_text(AUTHORS, spans, 1) == "thank you very much"
    t = 'The woman says "see you later" (1.0s - 2.0s). Then music plays.'
    assert attributed_text(t, find_spans(t), 0) == "see you later"
    t = "From 1.00s to 2.00s: the sound of rain."
    assert attributed_text(t, find_spans(t), 0) == "the sound of rain"
    # a quote in a later sentence belongs to that sentence, not to the citation
    t = 'From 1.00s to 2.00s, music plays. Later someone says "hello there".'
    assert attribution(t, find_spans(t), 0) == ("music plays", "clause")
    t = 'From 1.00s to 2.00s, she says "I left it. Sorry." and leaves.'
    assert attribution(t, find_spans(t), 0) == ("I left it. Sorry.", "quote")


def test_regions_explored_counts_overlapping_citations_once():
    text = ("From 1.00s to 3.00s the man speaks. Again from 1.05s to 3.02s he speaks. "
            "Within it, from 1.00s to 1.50s he coughs. From 5s to 4s is invalid.\nFinal answer: (a) x")
    assert regions_explored(text) == 2
    assert regions_explored("no citations here\nFinal answer: (b) y") == 0
    assert regions_explored(AUTHORS) == 2


def test_audiology_verify_crops_with_padding_and_averages():
    sr = 16000
    audio = np.arange(6 * sr, dtype=np.float32) / sr            # sample value = its time in seconds
    heard = {}

    def transcribe(crop):
        start, end = round(float(crop[0]), 2), round(float(crop[-1]) + 1 / sr, 2)
        heard[len(heard)] = (start, end)
        return {0.0: "good morning everyone", 2.0: "thank you"}[start]

    score, details = audiology_verify(audio, AUTHORS, transcribe)
    assert heard == {0: (0.0, 2.72), 1: (2.0, 4.5)}              # +-0.5 s, clipped at 0
    assert details[0]["similarity"] == 1.0
    assert details[1]["similarity"] == pytest.approx(0.5)       # "thank you" vs "thank you very much"
    assert score == pytest.approx(0.75)
    # silence heard: every crop transcribes to nothing
    score, _ = audiology_verify(None, AUTHORS, transcribe)
    assert score == 0.0


def test_grounding_precision_against_evidence():
    assert grounding_precision(AUTHORS, [(0.18, 2.22)]) == pytest.approx(0.5)   # second region misses
    assert grounding_precision(AUTHORS, [(0.18, 2.22), (2.5, 4.0)]) == pytest.approx(1.0)
    assert grounding_precision(AUTHORS, []) is None
    assert grounding_precision("nothing cited\nFinal answer: (a) x", [(0, 1)]) is None


def test_rule_judge_compares_the_argued_option_with_the_final_letter():
    j = RuleJudge()
    ok = ("The first voice speaks before anyone else, so the answer is the first speaker.\n"
          "Final answer: (a) the first speaker")
    assert j.judge("Who speaks first?", CHOICES, ok).score == 1.0
    bad = ("From 0.1s to 1.0s the second speaker talks first, so it is the second speaker.\n"
           "Final answer: (a) the first speaker")
    v = j.judge("Who speaks first?", CHOICES, bad)
    assert v.score == 0.0 and v.argued == "b"
    neg = "It is not (b); option a fits.\nFinal answer: (b) the second speaker"
    assert j.judge("q", CHOICES, neg).score == 0.0
    v = j.judge("q", CHOICES, "I listened carefully.\nFinal answer: (b) the second speaker")
    assert v.score is None and "no option" in v.reason
    assert j.judge("q", CHOICES, "the first speaker, clearly\nno letter here").score is None
    # longest choice text wins over a shorter one inside it
    assert argued_option("so: two speakers", ["two", "two speakers"])[0] == "b"
    assert get_judge(None).name == "rule"


def test_parse_score_and_prompt_from_repo_asset():
    assert parse_score("Supports it.\nScore: 0.75") == 0.75
    assert parse_score("score=1") == 1.0
    assert parse_score("no number") is None
    p = judge_prompt("Who speaks first?", CHOICES, AUTHORS)
    assert "(b) the second speaker" in p and "Final answer: (a) the first speaker" in p
    assert "good morning everyone" in p and "Score:" in p
    for bad in ("openai:model", "openai:m@ftp://x", "hf:", "gpt4"):
        with pytest.raises(TgsrError):
            get_judge(bad)


class _Stub(BaseHTTPRequestHandler):
    requests: list = []
    reply = "The reasoning argues for (a).\nScore: 0.9"

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Stub.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": _Stub.reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


@pytest.fixture
def stub_server():
    srv = HTTPServer(("127.0.0.1", 0), _Stub)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    _Stub.requests.clear()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()


def test_openai_judge_against_a_local_stub(stub_server, monkeypatch):
    monkeypatch.setenv("TGSR_JUDGE_API_KEY", "k123")
    j = get_judge(f"openai:Qwen3-32B@{stub_server}")
    assert isinstance(j, OpenAIJudge)
    v = j.judge("Who speaks first?", CHOICES, AUTHORS)
    assert v.score == 0.9
    req = _Stub.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["body"]["model"] == "Qwen3-32B"
    assert req["auth"] == "Bearer k123"
    assert "thank you very much" in req["body"]["messages"][0]["content"]
    _Stub.reply = "I cannot tell."
    try:
        v = j.judge("q", CHOICES, AUTHORS)
    finally:
        _Stub.reply = "The reasoning argues for (a).\nScore: 0.9"
    assert v.score is None and "no 'Score:' line" in v.reason
    with pytest.raises(TgsrError, match="judge endpoint"):
        OpenAIJudge("m", "http://127.0.0.1:9/v1", timeout=2).judge("q", CHOICES, AUTHORS)


def _write_run(tmp_path, sr=16000):
    from tgsr.audio import save_audio
    from tgsr.records import Prediction, QAExample, write_jsonl

    wav = tmp_path / "clip.wav"
    save_audio(wav, np.zeros(5 * sr, dtype=np.float32) + 0.01)
    q = dict(audio=str(wav), question="Who speaks first?", choices=CHOICES, answer="a")
    data = tmp_path / "qa.jsonl"
    write_jsonl(data, [QAExample(id="x1", evidence=[(0.18, 2.22)], **q), QAExample(id="x2", **q),
                       QAExample(id="x3", **q), QAExample(id="x4", **q)])
    run = tmp_path / "run"
    preds = [
        Prediction(id="x1", completion=AUTHORS, pred_letter="a", gold_letter="a", correct=True),
        Prediction(id="x2", completion="Hmm.\nFinal answer: (b) the second speaker", pred_letter="b",
                   gold_letter="a", correct=False),
        Prediction(id="x3", completion=None, error="audio: unreadable", gold_letter="a", correct=None),
        Prediction(id="x4", completion=AUTHORS, pred_letter="a", gold_letter="a", correct=True, condition="silence"),
    ]
    write_jsonl(run / "predictions.jsonl", preds)
    with open(run / "predictions.jsonl", "a") as fh:
        fh.write("{not json\n")
    return run, data


def test_run_behaviors_table3_with_known_answers_and_resume(tmp_path):
    run, data = _write_run(tmp_path)
    calls = []

    def transcribe(audio):
        calls.append(len(audio))
        return "good morning everyone"

    s = run_behaviors(run, tmp_path / "out", data=str(data), transcribe=transcribe, progress=False)
    assert s["n_predictions"] == 4 and s["n_malformed_lines"] == 1
    assert s["accuracy"]["mean"] == pytest.approx(0.5)
    assert s["regions_explored"]["mean"] == pytest.approx((2 + 0 + 2) / 3) and s["regions_explored"]["n_na"] == 1
    # x1: 1.0 and 0.0 ("good morning everyone" heard where "thank you very much" is claimed); x4 heard silence
    assert s["audiology_verify"]["mean"] == pytest.approx((0.5 + 0.0) / 2)
    assert s["audiology_verify"]["na_reasons"] == {"no citation": 1, "prediction failed: audio: unreadable": 1}
    # only the quoted citation of x1 ("thank you very much", heard "good morning everyone") and of x4 (silence)
    assert s["audiology_verify_quoted"]["mean"] == pytest.approx(0.0) and s["audiology_verify_quoted"]["n"] == 2
    assert s["consistency"]["mean"] == pytest.approx(1.0) and s["consistency"]["n"] == 2
    assert s["grounding_precision"]["mean"] == pytest.approx(0.5) and s["grounding_precision"]["n"] == 1
    md = (tmp_path / "out" / "behaviors.md").read_text()
    assert "Regions Explored" in md and "| 4 |" in md
    n_calls = len(calls)
    assert n_calls == 2                                          # x4 (silence) never calls ASR
    # resume: nothing is scored twice
    s2 = run_behaviors(run, tmp_path / "out", data=str(data), transcribe=transcribe, progress=False)
    assert len(calls) == n_calls and s2["audiology_verify"] == s["audiology_verify"]
    assert len((tmp_path / "out" / "behaviors_items.jsonl").read_text().splitlines()) == 4
    with pytest.raises(TgsrError, match=r"other settings \(asr: 'custom' -> None, judge: 'rule' -> 'openai:"):
        run_behaviors(run, tmp_path / "out", data=str(data), judge="openai:m@http://127.0.0.1:9/v1",
                      progress=False, asr="none")


def test_bad_judge_or_asr_fails_before_writing_anything(tmp_path):
    # Regression: `--judge hf:/nowhere` ended in an OSError traceback after the settings were
    # written (so the folder then refused every other judge), and `--asr bogus` silently turned
    # every metric of every item into n/a.
    run, data = _write_run(tmp_path)
    with pytest.raises(TgsrError, match="judge model folder not found"):
        run_behaviors(run, tmp_path / "out", data=str(data), judge=f"hf:{tmp_path / 'nowhere'}", asr="none",
                      progress=False)
    with pytest.raises(TgsrError, match="unknown ASR backend 'bogus'"):
        run_behaviors(run, tmp_path / "out", data=str(data), asr="bogus", progress=False)
    assert not (tmp_path / "out" / "behaviors_settings.json").exists()
    s = run_behaviors(run, tmp_path / "out", data=str(data), asr="none", progress=False)
    assert s["n_predictions"] == 4


def test_accuracy_uses_letters_extracted_now_not_the_stored_ones(tmp_path):
    # Regression: behaviours read the stored pred_letter/correct, so a run whose completions were
    # re-scored (or extracted by an older rule) disagreed with `tgsr eval score`.
    from tgsr.records import Prediction, write_jsonl

    run, data = _write_run(tmp_path)
    preds = [
        Prediction(id="x1", completion=AUTHORS, pred_letter=None, gold_letter="a", correct=False),
        Prediction(id="x2", completion="So it is the first speaker.\nFinal answer: the first speaker",
                   pred_letter="b", gold_letter="a", correct=False),
    ]
    write_jsonl(run / "predictions.jsonl", preds)
    s = run_behaviors(run, tmp_path / "out", data=str(data), progress=False, asr="none")
    assert s["accuracy"]["mean"] == pytest.approx(1.0)      # x2's answer is choice (a)'s text
    rows = [json.loads(line) for line in (tmp_path / "out" / "behaviors_items.jsonl").read_text().splitlines()]
    assert all(r["correct"] is True for r in rows)


def test_run_behaviors_with_whisper_tiny_on_speech(tmp_path):
    """Real ASR: Whisper tiny.en hears what the cited span says better than a wrong claim."""
    pytest.importorskip("faster_whisper")
    from tgsr.data.align import get_aligner

    try:
        asr = get_aligner("faster-whisper", "tiny.en")
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"offline Whisper weights not available: {e}")
    from tgsr.data.tts import get_engine

    eng = get_engine("espeak")
    speech, _ = eng.synthesize("the weather is nice today", eng.voices()[0])
    audio = np.concatenate([np.zeros(8000, np.float32), speech, np.zeros(8000, np.float32)])
    end = len(audio) / 16000 - 0.5
    right = f'From 0.50s to {end:.2f}s, the speaker says "the weather is nice today".\nFinal answer: (a) x'
    wrong = f'From 0.50s to {end:.2f}s, the speaker says "please close the kitchen door".\nFinal answer: (a) x'
    s_right, d = audiology_verify(audio, right, asr.transcribe)
    s_wrong, _ = audiology_verify(audio, wrong, asr.transcribe)
    assert s_right > s_wrong
    assert s_right > 0 and d[0]["transcript"], d



def test_hf_judge_runs_a_local_causal_lm(tmp_path):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from tgsr.analysis.judge import HFJudge
    from tgsr.models.tiny import build_tokenizer

    tok = build_tokenizer("qwen2-audio")
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1))
    tok.save_pretrained(tmp_path / "judge")
    model.save_pretrained(tmp_path / "judge")
    j = get_judge(f"hf:{tmp_path / 'judge'}")
    assert isinstance(j, HFJudge)
    j.max_new_tokens = 6
    prompt = judge_prompt("Who speaks first?", CHOICES, AUTHORS)
    reply = j.complete(prompt)
    assert isinstance(reply, str) and reply
    v = j.judge("Who speaks first?", CHOICES, AUTHORS)
    # a random model cannot know the format: either a parsed score in 0-1 or no verdict with its reply kept
    assert (v.score is None and repr(reply)[1:20] in v.reason) or 0.0 <= v.score <= 1.0


def _pointer_item(**kw):
    from tgsr.records import QAExample

    return QAExample(
        id="p1", audio="a.wav", question="What is the pitch of the first beep after the noise burst?",
        choices=["low", "mid-low", "mid-high", "high"], answer="d",
        rationale="From 2.10s to 2.45s, the noise burst sounds.\nFrom 2.60s to 3.10s, the next beep is high.\n"
                  "Final answer: (d) high",
        meta={"pointer": 1, "counterfactuals": [{"span": [0.50, 0.90], "answer": "a"},
                                                {"span": [4.00, 4.40], "answer": "b"}]}, **kw)


def test_citation_consistency_is_exact_against_the_span_the_model_cited():
    from tgsr.analysis.behaviors import citation_consistency, pointer_candidates

    cands = pointer_candidates(_pointer_item())
    assert cands == [((2.60, 3.10), "d"), ((0.50, 0.90), "a"), ((4.00, 4.40), "b")]
    burst = "From 2.10s to 2.45s, the noise burst sounds.\n"
    # cites the gold beep and answers its pitch: consistent (and right)
    v, d = citation_consistency(burst + "From 2.62s to 3.05s, the next beep is high.\nFinal answer: (d) high", "d",
                                cands)
    assert v == 1.0 and d["pointer_cited"] == "gold" and d["implied_letter"] == "d"
    # cites another beep and answers what that beep implies: consistent, though wrong
    v, d = citation_consistency(burst + "From 4.00s to 4.40s, the next beep is mid-low.\nFinal answer: (b)", "b",
                                cands)
    assert v == 1.0 and d["pointer_cited"] == "other"
    # cites the gold beep but answers something else, or nothing parseable: inconsistent
    assert citation_consistency(burst + "From 2.60s to 3.10s, the next beep.\nFinal answer: (a)", "a", cands)[0] == 0.0
    assert citation_consistency(burst + "From 2.60s to 3.10s, the next beep.", None, cands)[0] == 0.0
    # only the burst (not a candidate) or a citation far from every beep: no value, with the reason
    v, d = citation_consistency(burst + "Final answer: (d)", "d", cands)
    assert v is None and "no citation matches" in d["reason"]
    assert pointer_candidates(_pointer_item().__class__(id="x", audio="a", question="q", choices=["a", "b"],
                                                        answer="a")) is None


def test_behaviors_report_exact_consistency_and_accuracy_by_cited_span(tmp_path):
    from tgsr.records import Prediction, write_jsonl

    item = _pointer_item()
    items = [item] + [item.__class__(**{**item.__dict__, "id": f"p{i}"}) for i in (2, 3)]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(dataclasses.asdict(x)) + "\n" for x in items))
    burst = "From 2.10s to 2.45s, the noise burst sounds.\n"
    run = tmp_path / "run"
    run.mkdir()
    write_jsonl(run / "predictions.jsonl", [
        Prediction(id="p1", completion=burst + "From 2.60s to 3.10s, the next beep is high.\nFinal answer: (d) high",
                   gold_letter="d", meta={"choices": item.choices}),
        Prediction(id="p2", completion=burst + "From 0.50s to 0.90s, the next beep is low.\nFinal answer: (a) low",
                   gold_letter="d", meta={"choices": item.choices}),
        Prediction(id="p3", completion="Final answer: (c) mid-high", gold_letter="d", meta={"choices": item.choices}),
    ])
    s = run_behaviors(run, tmp_path / "out", data=str(tmp_path / "data.jsonl"), progress=False, asr="none")
    cc = s["citation_consistency"]
    assert cc["mean"] == 1.0 and cc["n"] == 2 and cc["n_na"] == 1
    assert s["accuracy_by_pointer_citation"] == {"gold": {"n": 1, "accuracy": 1.0}, "other": {"n": 1, "accuracy": 0.0}}
    assert "Citation-answer (exact)" in (tmp_path / "out" / "behaviors.md").read_text()
