"""Records (validation, located errors, JSONL IO), prompts, and audio loading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tgsr.answers import extract_choice
from tgsr.audio import SAMPLE_RATE, crop, duration_of, load_audio, mask_spans, mix_noise, save_audio
from tgsr.errors import AudioError, RecordError
from tgsr.prompts import (
    COT_INSTRUCTION,
    DIRECT_INSTRUCTION,
    GROUNDED_INSTRUCTION,
    final_answer_line,
    format_choices,
    reasoning_question,
    sta_answer,
    sta_question,
    user_messages,
)
from tgsr.records import (
    ClipWords,
    Prediction,
    QAExample,
    StaExample,
    append_jsonl,
    completed_ids,
    read_jsonl,
    repair_torn_tail,
    write_jsonl,
)
from tgsr.spans import find_spans


def qa(**over):
    d = {"id": "q1", "audio": "audio/q1.wav", "question": "How many speakers?",
         "choices": ["one", "two", "three"], "answer": "b", "duration": 10.0,
         "evidence": [[1.0, 2.5]], "task": "speaker_count", "category": "acoustic"}
    d.update(over)
    return d


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------ records


def test_qa_round_trip_and_relative_audio(tmp_path):
    src = write_lines(tmp_path / "qa.jsonl", [json.dumps(qa()), json.dumps(qa(id="q2", audio="/abs/x.wav"))])
    res = read_jsonl(src, QAExample)
    assert res.skipped == 0 and len(res) == 2
    first, second = res.records
    assert first.audio == str((tmp_path / "audio" / "q1.wav").resolve())   # relative to the JSONL folder
    assert second.audio == "/abs/x.wav"                                     # absolute stays
    assert first.answer_text == "two" and first.answer_index == 1
    assert first.evidence == [(1.0, 2.5)]
    # written back into the same folder, the path is relative again
    out = tmp_path / "copy.jsonl"
    assert write_jsonl(out, res.records) == 2
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert rows[0]["audio"] == "audio/q1.wav"
    assert rows[0]["evidence"] == [[1.0, 2.5]]
    assert read_jsonl(out, QAExample).records == res.records


@pytest.mark.parametrize("line,field,reason", [
    ("{not json", None, "invalid JSON"),
    ("[1, 2]", None, "expected a JSON object"),
    ("[" * 50_000, None, "invalid JSON"),
    (json.dumps({k: v for k, v in qa().items() if k != "question"}), "question", "missing"),
    (json.dumps(qa(question=5)), "question", "expected a string"),
    (json.dumps(qa(duration="ten")), "duration", "expected a number"),
    (json.dumps(qa(choices="one,two")), "choices", "at least two strings"),
    (json.dumps(qa(answer="e")), "answer", "expected a letter"),
    (json.dumps(qa(evidence=[[3.0, 1.0]])), "evidence[0]", "invalid span"),
    (json.dumps(qa(evidence=[[1.0, 12.0]])), "evidence[0]", "past the clip duration"),
    (json.dumps(qa(answer_text="three")), "answer_text", "is not choice"),
])
def test_qa_error_names_file_line_and_field(tmp_path, line, field, reason):
    src = write_lines(tmp_path / "qa.jsonl", [json.dumps(qa()), "", line])
    with pytest.raises(RecordError) as ei:
        read_jsonl(src, QAExample)
    err = ei.value
    assert err.path == str(src) and err.line == 3 and err.field == field
    assert reason in err.reason
    assert f"{src}:3:" in str(err)
    if field:
        assert f"'{field}'" in str(err)


def test_skip_mode_returns_the_skipped_count(tmp_path):
    src = write_lines(tmp_path / "qa.jsonl", [
        json.dumps(qa(id="a")), "{oops", json.dumps(qa(id="b", answer=3)), json.dumps(qa(id="c")),
    ])
    res = read_jsonl(src, QAExample, on_error="skip")
    assert [r.id for r in res] == ["a", "c"]
    assert res.skipped == 2
    assert [(e.line, e.field) for e in res.errors] == [(2, None), (3, "answer")]


def test_missing_file_is_a_record_error(tmp_path):
    with pytest.raises(RecordError, match="file not found"):
        read_jsonl(tmp_path / "nope.jsonl", QAExample)


def test_bom_is_tolerated(tmp_path):
    src = tmp_path / "qa.jsonl"
    src.write_bytes(b"\xef\xbb\xbf" + json.dumps(qa()).encode() + b"\n")
    assert len(read_jsonl(src, QAExample)) == 1


def test_clip_words_nested_field_errors(tmp_path):
    good = {"clip_id": "c1", "audio": "a.wav", "duration": 3.0,
            "words": [{"text": "hi", "start": 0.1, "end": 0.4}, {"text": "there", "start": 0.5, "end": 0.9}]}
    bad = json.loads(json.dumps(good))
    bad["words"][1]["end"] = 0.2
    src = write_lines(tmp_path / "words.jsonl", [json.dumps(good), json.dumps(bad)])
    with pytest.raises(RecordError) as ei:
        read_jsonl(src, ClipWords)
    assert (ei.value.line, ei.value.field) == (2, "words[1].end")
    res = read_jsonl(src, ClipWords, on_error="skip")
    assert res.skipped == 1 and res.records[0].words[1].text == "there"


def test_sta_example_validation(tmp_path):
    ok = {"id": "s1", "audio": "a.wav", "phrase": "good morning", "start": 0.27, "end": 2.95, "duration": 3.0}
    assert StaExample.from_dict(ok).end == 2.95
    src = write_lines(tmp_path / "sta.jsonl", [json.dumps({**ok, "end": 3.5}), json.dumps({**ok, "phrase": ""}),
                                               json.dumps({**ok, "granularity": "word"})])
    res = read_jsonl(src, StaExample, on_error="skip")
    assert res.skipped == 3
    assert [e.field for e in res.errors] == ["end", "phrase", "granularity"]


def test_predictions_append_resume_and_torn_tail(tmp_path):
    out = tmp_path / "preds.jsonl"
    append_jsonl(out, Prediction(id="q1", completion="(a)", pred_letter="a", gold_letter="a", correct=True))
    append_jsonl(out, {"id": "q2", "completion": None, "error": "unreadable audio"})
    with open(out, "a") as fh:
        fh.write('{"id": "q3", "compl')          # a crash mid-write
    assert completed_ids(out) == {"q1", "q2"}
    assert repair_torn_tail(out) is True
    assert repair_torn_tail(out) is False
    res = read_jsonl(out, Prediction)
    assert [p.id for p in res] == ["q1", "q2"] and res.records[1].error == "unreadable audio"
    src = write_lines(tmp_path / "bad.jsonl", [json.dumps({"id": "x", "completion": 3})])
    with pytest.raises(RecordError, match="completion"):
        read_jsonl(src, Prediction)


# ------------------------------------------------------------------ prompts


def test_sta_prompts():
    assert sta_question(" good morning ") == "What is the timestamp of the following segment? good morning"
    ans = sta_answer("good morning", 0.27, 2.951)
    assert ans == "The segment good morning starts at 0.27 seconds and ends at 2.95 seconds."
    (span,) = find_spans(ans)                      # the grammar reads the Stage-1 answer form
    assert (span.start, span.end) == (0.27, 2.95)


def test_reasoning_prompts():
    choices = ["one", "two", "three", "four", "five"]
    text = reasoning_question("How many speakers are there?", choices)
    lines = text.splitlines()
    assert lines[0] == "How many speakers are there?"
    assert lines[2:7] == ["(a) one", "(b) two", "(c) three", "(d) four", "(e) five"]
    assert "From Xs to Ys" in text and "Final answer: (x) <choice text>" in text
    assert text.endswith(GROUNDED_INSTRUCTION)
    cot = reasoning_question("Q?", choices, style="cot")
    assert cot.endswith(COT_INSTRUCTION) and "From Xs" not in cot and "Final answer" in cot
    direct = reasoning_question("Q?", choices, style="direct")
    assert direct.endswith(DIRECT_INSTRUCTION) and "step by step" not in direct
    with pytest.raises(ValueError):
        reasoning_question("Q?", choices, style="verbose")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        format_choices(["x"] * 27)
    line = final_answer_line("C", choices)
    assert line == "Final answer: (c) three"
    assert extract_choice("reasoning...\n" + line, choices).letter == "c"


def test_user_messages():
    msgs = user_messages("hi", system="be brief")
    assert msgs[0] == {"role": "system", "content": [{"type": "text", "text": "be brief"}]}
    assert msgs[1] == {"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "hi"}]}
    assert len(user_messages("hi")) == 1


# ------------------------------------------------------------------ audio


def tone(seconds: float, sr: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_stereo_44k_becomes_16k_mono(tmp_path):
    import soundfile as sf

    sr = 44_100
    left, right = tone(1.0, sr), np.zeros(sr, dtype=np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(str(path), np.stack([left, right], axis=1), sr, subtype="PCM_16")
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) == SAMPLE_RATE
    # mono is the channel mean: a 0.5-amplitude tone in one channel becomes 0.25
    assert np.max(np.abs(audio[100:-100])) == pytest.approx(0.25, abs=0.01)
    assert duration_of(path) == pytest.approx(1.0)


def test_save_load_round_trip(tmp_path):
    a = tone(0.5, SAMPLE_RATE)
    save_audio(tmp_path / "sub" / "x.wav", a)
    b = load_audio(tmp_path / "sub" / "x.wav")
    assert np.allclose(a, b, atol=1e-3)


def test_audio_errors(tmp_path):
    import soundfile as sf

    with pytest.raises(AudioError, match="file not found"):
        load_audio(tmp_path / "missing.wav")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        load_audio(empty)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 4)
    with pytest.raises(AudioError, match="unreadable"):
        load_audio(corrupt)
    with pytest.raises(AudioError):
        duration_of(corrupt)
    no_frames = tmp_path / "noframes.wav"
    sf.write(str(no_frames), np.zeros((0, 2), dtype=np.float32), 44_100)
    with pytest.raises(AudioError, match="no audio samples"):
        load_audio(no_frames)
    short = tmp_path / "short.wav"
    save_audio(short, tone(0.1, SAMPLE_RATE))
    with pytest.raises(AudioError, match="shorter"):
        load_audio(short, min_seconds=1.0)
    err = AudioError(corrupt, "x")
    assert err.as_row() == {"path": str(corrupt), "reason": "x"}


def test_crop_mask_mix():
    a = np.ones(SAMPLE_RATE * 2, dtype=np.float32)
    assert len(crop(a, 0.5, 1.0)) == SAMPLE_RATE // 2
    assert len(crop(a, 1.5, 5.0)) == SAMPLE_RATE // 2         # clipped to the clip
    assert len(crop(a, 1.0, 0.5)) == 0
    m = mask_spans(a, [(0.5, 1.0)])
    assert m[int(0.75 * SAMPLE_RATE)] == 0.0 and m[0] == 1.0 and a[int(0.75 * SAMPLE_RATE)] == 1.0
    noisy = mix_noise(a, 20.0, np.random.default_rng(0))
    snr = 10 * np.log10(np.mean(a ** 2) / np.mean((noisy - a) ** 2))
    assert snr == pytest.approx(20.0, abs=0.5)
    assert np.array_equal(mix_noise(np.zeros(10, np.float32), 10.0, np.random.default_rng(0)), np.zeros(10))
