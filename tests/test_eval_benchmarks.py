"""Benchmark loaders on the real metadata fixtures."""

import json
from collections import Counter

import pytest

from tgsr.errors import RecordError, TgsrError
from tgsr.eval.benchmarks import BENCHMARKS, get_benchmark
from tgsr.eval.benchmarks.meld import EMOTIONS, parse_time

AIR = "airbench/foundation_SER_SIC_SNV_sample.jsonl"


def test_mmau_speech_selects_333(benchmarks_dir, tmp_path):
    exs = BENCHMARKS["mmau-mini-speech"].load(tmp_path, benchmarks_dir / "mmau/mmau-test-mini.json")
    assert len(exs) == 333 and len({e.id for e in exs}) == 333
    assert all(e.task == "speech" for e in exs)
    subs = Counter(e.meta["breakdown"]["sub-category"] for e in exs)
    assert subs["Phonemic Stress Pattern Analysis"] == 53 and subs["Emotion Flip Detection"] == 20
    assert Counter(len(e.choices) for e in exs)[5] == 24
    for e in exs:
        assert e.choices[e.answer_index] == e.meta["official"]["answer"]
        assert e.audio == str((tmp_path / "test-mini-audios" / f"{e.id}.wav").resolve())
    # duplicated options: the gold letter is the first option with the answer text
    dup = [e for e in exs if len(set(e.choices)) < len(e.choices) and e.choices.count(e.answer_text) > 1]
    assert dup and all(e.choices.index(e.answer_text) == e.answer_index for e in dup)


def test_mmar_speech_selects_294(benchmarks_dir, tmp_path):
    exs = BENCHMARKS["mmar-speech"].load(tmp_path, benchmarks_dir / "mmar/MMAR-meta.jsonl")
    assert len(exs) == 294 and all(e.meta["official"]["modality"] == "speech" for e in exs)
    assert exs[0].audio.endswith(f"audio/{exs[0].id}.wav")


def test_metadata_is_found_under_the_data_root(benchmarks_dir):
    assert len(BENCHMARKS["mmau-mini-speech"].load(benchmarks_dir / "mmau")) == 333
    with pytest.raises(RecordError, match="--meta"):
        BENCHMARKS["mmar-speech"].load(benchmarks_dir / "mmau")


def test_airbench_tasks(benchmarks_dir, tmp_path):
    counts = {n: len(BENCHMARKS[n].load(tmp_path, benchmarks_dir / AIR)) for n in
              ("airbench-ser", "airbench-snv", "airbench-sic")}
    assert counts == {"airbench-ser": 61, "airbench-snv": 40, "airbench-sic": 38}
    ex = BENCHMARKS["airbench-ser"].load(tmp_path, benchmarks_dir / AIR)[0]
    assert ex.audio.endswith("Speaker_Emotion_Recontion_iemocap/Ses01M_impro05_F025.wav")
    assert ex.meta["breakdown"] == {"group": "Speaker_Emotion_Recontion_iemocap"}


def test_airbench_two_way_items_drop_null_options(tmp_path):
    rec = {"path": "a.wav", "question": "Gender?", "choice_a": "male", "choice_b": "female", "choice_c": None,
           "choice_d": None, "answer_gt": "female", "task_name": "Speaker_Number_Verification",
           "dataset_name": "x", "uniq_id": 7}
    meta = tmp_path / "Foundation_meta.json"
    meta.write_text(json.dumps([rec]))
    (ex,) = BENCHMARKS["airbench-snv"].load(tmp_path)
    assert ex.choices == ["male", "female"] and ex.answer == "b" and ex.id == "7"
    meta.write_text(json.dumps([{**rec, "answer_gt": "other"}]))
    with pytest.raises(RecordError, match="answer_gt"):
        BENCHMARKS["airbench-snv"].load(tmp_path)


def test_meld_test_split(benchmarks_dir, tmp_path):
    exs = BENCHMARKS["meld"].load(tmp_path, benchmarks_dir / "meld/test_sent_emo.csv")
    assert len(exs) == 2610
    assert Counter(e.choices[e.answer_index] for e in exs) == {
        "neutral": 1256, "joy": 402, "anger": 345, "surprise": 281, "sadness": 208, "disgust": 68, "fear": 50}
    assert all(e.choices == list(EMOTIONS) for e in exs)
    first = exs[0]
    assert first.id == "dia0_utt0" and first.choices[first.answer_index] == "surprise"
    assert first.meta["end"] - first.meta["start"] == pytest.approx(2.251)
    assert parse_time("0:12:32,632") == pytest.approx(752.632)


def test_meld_bad_row_names_the_line(tmp_path):
    p = tmp_path / "test_sent_emo.csv"
    p.write_text("Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,"
                 "StartTime,EndTime\n"
                 '1,Hi,Mark,joy,positive,0,0,3,19,"00:14:38,127","00:14:40,378"\n'
                 '2,Hey,Mark,bored,positive,0,1,3,19,"00:14:38,127","00:14:40,378"\n')
    with pytest.raises(RecordError) as e:
        BENCHMARKS["meld"].load(tmp_path)
    assert e.value.line == 3 and e.value.field == "Emotion"


def test_mmau_bad_record_names_the_record(tmp_path):
    recs = [{"id": "a", "audio_id": "./x.wav", "question": "q", "choices": ["x", "y"], "answer": "z",
             "task": "speech"}]
    (tmp_path / "mmau-test-mini.json").write_text(json.dumps(recs))
    with pytest.raises(RecordError) as e:
        BENCHMARKS["mmau-mini-speech"].load(tmp_path)
    assert e.value.line == 1 and e.value.field == "answer"


def test_unknown_benchmark():
    with pytest.raises(TgsrError, match="mmau-mini-speech"):
        get_benchmark("mmau")
