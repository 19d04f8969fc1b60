"""Official benchmark rules (re-implemented quirks included) and tgsr accuracy."""

import json

import pytest

from tgsr.errors import RecordError
from tgsr.eval.benchmarks import BENCHMARKS
from tgsr.eval.scoring import (
    airbench_gold_letter,
    airbench_letter,
    is_correct,
    official_airbench,
    official_mmar,
    official_mmau,
    string_match,
    tgsr_accuracy,
    tokenize,
    weighted_f1,
)
from tgsr.records import LETTERS, Prediction


@pytest.fixture(scope="module")
def mmau(benchmarks_dir):
    return json.loads((benchmarks_dir / "mmau/mmau-test-mini.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def mmar(benchmarks_dir):
    text = (benchmarks_dir / "mmar/MMAR-meta.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def _with(records, key, fn):
    return [{**r, key: fn(r)} for r in records]


# ---------------------------------------------------------------- tokeniser and string_match

def test_tokenize_follows_the_official_regex():
    assert tokenize("Can't stop 3.5 light_switch_clicking MAN!!") == {"can", "t", "stop", "3", "5",
                                                                        "light_switch_clicking", "man"}
    assert tokenize("北京欢迎你 ok") == {"北京欢迎你", "ok"}
    assert tokenize("...") == set()


def test_string_match_documented_consequences():
    choices = ["Man", "Woman", "Child", "Robot"]
    assert string_match("Man", "MAN!!", choices)
    assert string_match("Man", "(A) Man", choices)
    assert not string_match("Man", "A", choices) and not string_match("Man", "(B)", choices)
    assert not string_match("Man", "Man or woman", choices)
    assert not string_match("Man", "man, not a woman", choices)
    assert not string_match("Man", "", choices)
    ch = ["No, it is not present.", "Yes, the dog is present.", "Only the cat"]
    assert not string_match(ch[0], "The dog is not present", ch)
    assert not string_match(ch[0], "Not present", ch)
    assert not string_match("nine", "9", ["nine", "ten"])
    with pytest.raises(TypeError):
        string_match("Man", None, choices)


def test_exact_answers_and_wrappers_on_the_real_metadata(mmau, mmar):
    # the measured counts in SCORING.md
    def count(data, fmt):
        return sum(string_match(r["answer"], fmt(r), r["choices"]) for r in data)

    letter = lambda r: f"({'ABCDEFGH'[r['choices'].index(r['answer'])]}) {r['answer']}"  # noqa: E731
    assert count(mmau, lambda r: r["answer"]) == 1000
    assert count(mmau, letter) == 967
    assert count(mmau, lambda r: "The answer is " + r["answer"]) == 907
    assert count([r for r in mmau if r["task"] == "speech"], lambda r: "The answer is " + r["answer"]) == 273
    assert count(mmar, lambda r: r["answer"]) == 1000
    assert count(mmar, letter) == 985
    assert count(mmar, lambda r: "The answer is " + r["answer"]) == 910
    assert count([r for r in mmar if "speech" in r["modality"]], lambda r: "The answer is " + r["answer"]) == 565


def test_permuted_option_quirk(mmau, mmar):
    """A wrong option that permutes the answer's words is accepted by the official rule."""
    def permuted(data):
        return [(r, c) for r in data for c in r["choices"]
                if c != r["answer"] and tokenize(c) == tokenize(r["answer"])]

    hits = permuted(mmau)
    assert len({r["id"] for r, _ in hits}) == 9
    assert len({r["id"] for r, _ in hits if r["task"] == "speech"}) == 8
    assert all(string_match(r["answer"], c, r["choices"]) for r, c in hits)
    assert len({r["id"] for r, _ in permuted(mmar)}) == 20
    # tgsr's rule does not share the quirk: that option's letter is wrong
    r, c = next((r, c) for r, c in hits if r["task"] == "speech")
    gold = LETTERS[r["choices"].index(r["answer"])]
    assert not is_correct(LETTERS[r["choices"].index(c)], gold, r["choices"])
    rec = {**r, "model_output": c}
    assert official_mmau([rec])["correct"] == 1


def test_bare_letter_scores_zero_under_mmau(mmau):
    speech = [r for r in mmau if r["task"] == "speech"]
    for fmt in (lambda r: "ABCDEFGH"[r["choices"].index(r["answer"])],
                lambda r: "(" + "ABCDEFGH"[r["choices"].index(r["answer"])] + ")"):
        res = official_mmau(_with(speech, "model_output", fmt))
        assert res["counted"] == 333 and res["correct"] == 0 and res["accuracy"] == 0.0


def test_mmau_driver_counts_and_breakdowns(mmau):
    speech = [r for r in mmau if r["task"] == "speech"]
    res = official_mmau(_with(speech, "model_output", lambda r: r["answer"]))
    assert res["accuracy"] == 1.0 and res["counted"] == 333
    assert set(res["by"]["task"]) == {"speech"}
    assert sum(v["total"] for v in res["by"]["sub-category"].values()) == 333
    assert res["by"]["sub-category"]["Counting"]["total"] == 29
    assert sum(v["total"] for v in res["by"]["difficulty"].values()) == 333


def test_mmau_driver_skips_records_without_model_output(mmau):
    recs = [dict(r) for r in mmau[:10]]
    recs[0]["model_output"] = recs[0]["answer"]
    recs[1]["model_prediction"] = recs[1]["answer"]  # the README's key: ignored by the driver
    res = official_mmau(recs)
    assert res["counted"] == 1 and res["correct"] == 1 and res["skipped_no_prediction"] == 9


def test_mmau_driver_refuses_what_the_official_script_crashes_on(mmau):
    with pytest.raises(RecordError, match="model_output"):
        official_mmau([{**mmau[0], "model_output": None}], source="x.json")
    with pytest.raises(RecordError, match="KeyError"):
        official_mmau([{**mmau[0], "model_output": "Man", "task": "speechx"}])
    with pytest.raises(RecordError) as e:
        official_mmau([{**mmau[0], "model_output": "x"}, {**mmau[1], "model_output": "x", "difficulty": "?"}],
                      source="p.json")
    assert e.value.path == "p.json" and e.value.line == 2 and e.value.field == "difficulty"


def test_mmar_driver(mmar):
    speech = [r for r in mmar if r["modality"] == "speech"]
    res = official_mmar(_with(speech, "answer_prediction", lambda r: r["answer"]))
    assert res["counted"] == 294 and res["accuracy"] == 1.0
    assert set(res["by"]["modality"]) == {"speech"}
    with pytest.raises(RecordError, match="category"):
        official_mmar([{**speech[0], "answer_prediction": "x", "category": "Other"}])
    old_key = official_mmar(_with(speech, "model_prediction", lambda r: r["answer"]))
    assert old_key["counted"] == 0 and old_key["skipped_no_prediction"] == 294


# ---------------------------------------------------------------- AIR-Bench

AIR_C = {"path": "x.wav", "question": "q", "choice_a": "happy", "choice_b": "sad", "choice_c": "neutral",
         "choice_d": "angry", "answer_gt": "neutral", "task_name": "Speaker_Emotion_Recontion",
         "dataset_name": "iemocap", "uniq_id": 1}


@pytest.mark.parametrize("response,letter", [
    ("C", "C"), ("C. neutral", "C"), ("(C)", "C"), ("  C  ", "C"), ("The answer is C.", "C"), ("C\nD", "C"),
    ("Clearly the speaker is sad.", "C"),          # spurious but correct, as in the official scorer
    ("Answer: C", "A"), ("Based on the audio, C.", "B"), ("Definitely neutral (C).", "D"),
    ("The answer is C", None), ("c", None), ("neutral", None), ("", None), ("None", None),
])
def test_airbench_verified_behaviour(response, letter):
    assert airbench_letter(response) == letter
    res = official_airbench([{**AIR_C, "response": response}])
    if letter is None:
        assert res["fail_num"] == 1 and res["counted"] == 0 and res["total_sum"] == 1
    else:
        assert res["counted"] == 1 and res["correct"] == int(letter == "C") and res["fail_num"] == 0


def test_airbench_failures_are_excluded_from_the_denominator():
    recs = [{**AIR_C, "response": r, "uniq_id": i} for i, r in enumerate(["C", "A", "c", "neutral", "C."])]
    recs.append({**AIR_C, "dataset_name": "meld", "response": "B"})
    res = official_airbench(recs)
    g = res["by"]["group"]
    assert g["Speaker_Emotion_Recontion_iemocap"] == {"correct": 2, "total": 3, "accuracy": pytest.approx(2 / 3)}
    assert g["Speaker_Emotion_Recontion_meld"]["correct"] == 0
    assert res["fail_num"] == 2 and res["total_sum"] == 6 and res["counted"] == 4


def test_airbench_gold_letter_first_match_and_crash_cases():
    dup = {**AIR_C, "choice_d": "neutral"}
    assert airbench_gold_letter(dup) == "C"
    assert official_airbench([{**dup, "response": "D"}])["correct"] == 0  # the later duplicate scores wrong
    with pytest.raises(RecordError, match="status 1"):
        official_airbench([{**AIR_C, "answer_gt": "bored", "response": "A"}])
    with pytest.raises(RecordError, match="null"):
        official_airbench([{**AIR_C, "response": None}])
    assert official_airbench([AIR_C])["skipped_no_prediction"] == 1


def test_airbench_sample_gold_letters(benchmarks_dir):
    for name in ("airbench-ser", "airbench-snv", "airbench-sic"):
        for ex in BENCHMARKS[name].load(None, benchmarks_dir / "airbench/foundation_SER_SIC_SNV_sample.jsonl"):
            assert ex.answer.upper() == airbench_gold_letter(ex.meta["official"])


# ---------------------------------------------------------------- tgsr accuracy

def _pred(i, letter, gold="b", **kw):
    return Prediction(id=str(i), completion="x", pred_letter=letter, gold_letter=gold,
                      meta={"choices": ["x", "y", "y", "z"], "breakdown": {"task": "t" + str(i % 2)}}, **kw)


def test_tgsr_accuracy_keeps_every_item_in_the_denominator():
    preds = [_pred(0, "b"), _pred(1, "c"), _pred(2, None), _pred(3, "a"),
             Prediction(id="4", completion=None, gold_letter="b", error="audio: file not found",
                        meta={"choices": ["x", "y"], "breakdown": {"task": "t0"}}),
             _pred(0, "a")]  # duplicate id: ignored and reported
    res = tgsr_accuracy(preds, n_items=7)
    assert res["items"] == 7 and res["correct"] == 2        # (c) has the gold option's text too
    assert res["unparseable"] == 1 and res["errors"] == 1 and res["missing"] == 2
    assert res["duplicates_ignored"] == 1
    assert res["accuracy"] == pytest.approx(2 / 7)   # a fraction; percent only when printed
    assert res["accuracy_excluding_errors"] == pytest.approx(2 / 6)
    assert res["by"]["task"]["t0"]["total"] == 3 and res["by"]["task"]["t0"]["errors"] == 1


def test_weighted_f1_matches_a_hand_computation():
    res = weighted_f1(["a", "a", "b", "c"], ["a", "b", "b", "c"])
    assert res["f1"] == pytest.approx(0.75)
    assert res["per_label"]["a"]["f1"] == pytest.approx(2 / 3)
    # a label only predicted (no answer) weighs 0 but costs recall
    res = weighted_f1(["a", "b"], ["a", "<none>"])
    assert res["f1"] == pytest.approx(0.5) and res["per_label"]["<none>"]["support"] == 0
    assert weighted_f1([], [])["f1"] is None
    with pytest.raises(ValueError):
        weighted_f1(["a"], [])
