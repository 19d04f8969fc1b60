"""Rewards in TRL's convention (paper Eq. 1 and 2, grounding IoU, combined) and `tgsr rewards`."""

from __future__ import annotations

import json
import random

import pytest

from tgsr.cli import main
from tgsr.rewards import (
    REWARD_STATS,
    REWARDS,
    RewardStats,
    build_reward_funcs,
    compaction_value,
    get_reward,
    normalize_letter,
)
from tgsr.spans import count_citations, format_span

CHOICES = ["one", "two", "three", "four"]

# Paper Eq. 2 with k_ref=1, k_max=5, C_max=0.5, C_min=0.1.
EQ2 = {0: 0.0, 1: 0.5, 2: 0.4, 3: 0.3, 4: 0.2, 5: 0.1, 6: 0.1}


def k_citations(k: int) -> str:
    """A completion with k distinct, non-overlapping canonical citations."""
    body = " ".join(f"{format_span(2 * i, 2 * i + 1)}, someone speaks." for i in range(k))
    return f"{body}\nFinal answer: (b) two"


@pytest.mark.parametrize("k", sorted(EQ2))
def test_compaction_value_table(k):
    assert compaction_value(k) == pytest.approx(EQ2[k])
    assert compaction_value(k, no_compaction=True) == (0.0 if k == 0 else 0.5)


@pytest.mark.parametrize("mode", ["distinct", "paper"])
def test_eq2_table_in_both_modes(mode):
    reward = get_reward("compaction", count=mode)
    texts = [k_citations(k) for k in sorted(EQ2)]
    for k, text in zip(sorted(EQ2), texts):
        assert count_citations(text, mode) == k
    assert reward(texts) == pytest.approx([EQ2[k] for k in sorted(EQ2)])


def test_compaction_modes_differ_on_double_counts_and_repeats():
    double = "The knock is from 10 to 12 seconds.\nFinal answer: (a) one"
    assert get_reward("compaction", count="distinct")([double]) == [0.5]   # k = 1
    assert get_reward("compaction", count="paper")([double]) == [pytest.approx(0.4)]  # k = 2
    repeated = " ".join([format_span(1, 2)] * 3)
    assert get_reward("compaction")([repeated]) == [0.5]                   # one region
    assert get_reward("compaction", count="paper")([repeated]) == [pytest.approx(0.3)]
    bracket = "From [0.00s \u2013 4.30s] the host speaks."
    assert get_reward("compaction")([bracket]) == [0.5]
    assert get_reward("compaction", count="paper")([bracket]) == [0.0]


def test_compaction_parameters_and_flat_variant():
    r = get_reward("compaction", k_ref=2, k_max=4, c_max=1.0, c_min=0.0)
    assert r([k_citations(k) for k in range(6)]) == pytest.approx([0, 1, 1, 0.5, 0, 0])
    flat = get_reward("compaction_flat")
    assert flat.__name__ == "compaction_flat"
    assert flat([k_citations(k) for k in range(7)]) == [0.0] + [0.5] * 6
    assert get_reward("compaction", no_compaction=True)([k_citations(6)]) == [0.5]
    with pytest.raises(ValueError):
        get_reward("compaction", count="sometimes")
    with pytest.raises(ValueError):
        get_reward("compaction", k_ref=5, k_max=5)


def test_answer_reward_trl_convention():
    reward = REWARDS["answer"]
    completions = [
        "From 1.00s to 2.00s two voices.\nFinal answer: (b) two",
        [{"role": "assistant", "content": "Final answer: (c) three"}],
        "Answer: B",
        "two",                          # equals the text of choice (b)
        "I am not sure",
    ]
    n = len(completions)
    got = reward(completions, prompts=["p"] * n, completion_ids=[[1]] * n, trainer_state=None,
                 answer=["b", "b", "b", "b", "b"], choices=[CHOICES] * n)
    assert got == [1.0, 0.0, 1.0, 1.0, 0.0]
    assert reward(["(b)"], label=["B"]) == [1.0]          # gold from `label`
    assert reward(["(b)"], label=[1]) == [1.0]            # 0-based index
    assert reward(["(b)"], answer=["(b)"]) == [1.0]


def test_answer_without_gold_scores_zero_and_is_counted():
    stats = RewardStats()
    reward = get_reward("answer", stats=stats)
    assert reward(["(b)", "(b)"], answer=[None, "zz"]) == [0.0, 0.0]
    assert reward(["(b)"]) == [0.0]
    assert stats["answer/missing_gold"] == 3


def test_normalize_letter():
    assert normalize_letter("B") == "b"
    assert normalize_letter("(c)") == "c"
    assert normalize_letter(0) == "a"
    assert normalize_letter(True) is None
    assert normalize_letter("two") is None


def test_grounding_iou():
    reward = get_reward("grounding_iou")
    completions = [
        "From 1.00s to 2.00s a knock.",                       # exact: 1
        "From 1.00s to 3.00s a knock.",                       # IoU 0.5
        "From 1.00s to 2.00s, and From 8.00s to 12.00s.",     # second beyond duration 10: (1+0)/2
        "From 2.00s to 1.00s.",                               # start > end: 0
        "No citation at all.",                                # 0
        "From 5s to 6s and from 1s to 2s.",                   # best gold per span: (1 + 1)/2
    ]
    n = len(completions)
    evidence = [[[1.0, 2.0], [5.0, 6.0]]] * n
    got = reward(completions, evidence=evidence, duration=[10.0] * n)
    assert got == pytest.approx([1.0, 0.5, 0.5, 0.0, 0.0, 1.0])
    dict_evidence = [[{"start": 1.0, "end": 2.0}]]
    assert reward(["From 1s to 2s"], evidence=dict_evidence, duration=[3.0]) == [1.0]


def test_grounding_iou_needs_columns():
    stats = RewardStats()
    reward = get_reward("grounding_iou", stats=stats)
    assert reward(["From 1s to 2s"], evidence=[[[1, 2]]]) == [0.0]
    assert reward(["From 1s to 2s"], evidence=[[]], duration=[5.0]) == [0.0]
    assert stats["grounding_iou/missing_duration"] == 1
    assert stats["grounding_iou/no_evidence"] == 1


def test_combined_weighted_sum():
    comb = REWARDS["combined"]                  # paper: answer 1 + compaction 1
    text = "From 1.00s to 2.00s two voices.\nFinal answer: (b) two"
    assert comb([text], answer=["b"]) == [1.5]
    assert comb([text], answer=["a"]) == [0.5]
    custom = get_reward("combined", components={"answer": 2.0,
                                                "compaction": {"weight": 0.5, "count": "paper"}})
    assert custom([text], answer=["b"]) == [pytest.approx(2.25)]
    custom2 = get_reward("combined", answer=1.0, grounding_iou=1.0)
    assert custom2([text], answer=["b"], evidence=[[[1.0, 2.0]]], duration=[5.0]) == [2.0]
    assert custom.params["compaction"]["count"] == "paper"


def test_registry_and_build_reward_funcs():
    assert {"answer", "compaction", "grounding_iou", "combined"} <= set(REWARDS)
    for name, func in REWARDS.items():
        assert func.__name__ == name
        assert callable(func)
    funcs, weights = build_reward_funcs({"answer": 1, "compaction": {"weight": 0.5, "count": "paper"}})
    assert [f.__name__ for f in funcs] == ["answer", "compaction"]
    assert weights == [1.0, 0.5]
    assert funcs[1].params["count"] == "paper"
    funcs, weights = build_reward_funcs(["answer", "grounding_iou"])
    assert weights == [1.0, 1.0]
    with pytest.raises(KeyError, match="unknown reward"):
        get_reward("bleu")
    with pytest.raises(ValueError):
        build_reward_funcs({"answer": "heavy"})


GARBAGE = [
    None,
    "",
    "   \n\t ",
    "From 1.00s to 2.00s " * 60_000,                 # ~1.2 MB
    b"\x00\xff\xfe From 1s to 2s (b)",
    random.Random(0).randbytes(4096),
    "\x00" * 100 + "Final answer: (b)",
    12345,
    3.5,
    {"unexpected": "object"},
    [{"role": "assistant", "content": None}],
    [None, 7, {"content": ["x", 5, {"text": None}]}],
    object(),
]


@pytest.mark.parametrize("name", ["answer", "compaction", "grounding_iou", "combined", "compaction_flat"])
def test_rewards_never_raise_on_garbage(name):
    stats = RewardStats()
    reward = get_reward(name, stats=stats)
    n = len(GARBAGE)
    got = reward(GARBAGE, answer=["b"] * n, choices=[CHOICES] * n,
                 evidence=[[[1.0, 2.0]]] * n, duration=[5.0] * n)
    assert got == [0.0] * n
    problems = stats.snapshot()
    for key in ("none", "empty", "too_long", "binary", "not_text"):
        assert problems.get(f"{name}/{key}", 0) >= 1, (key, problems)
    assert reward(None) == []
    assert reward(iter([])) == []


def test_columns_shorter_than_completions_do_not_raise():
    assert REWARDS["answer"](["(b)", "(b)"], answer=["b"]) == [1.0, 0.0]
    assert REWARDS["grounding_iou"](["From 1s to 2s"], evidence="bad", duration=5) == [0.0]


def test_default_stats_are_shared_and_resettable():
    REWARD_STATS.reset()
    REWARDS["compaction"]([None])
    assert REWARD_STATS.reset() == {"compaction/none": 1}
    assert REWARD_STATS.snapshot() == {}


# ------------------------------------------------------------------ the command


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_cli_rewards_end_to_end(tmp_path, capsys):
    src = tmp_path / "completions.jsonl"
    good = {"completion": "From 1.00s to 2.00s a knock, from 10 to 12 seconds a bell.\nFinal answer: (b) two",
            "answer": "b", "choices": CHOICES, "evidence": [[1.0, 2.0]], "duration": 20.0, "id": "q1"}
    chat = {"completion": [{"role": "assistant", "content": "Final answer: (a) one"}], "label": "b"}
    _write(src, [
        json.dumps(good),
        "{not json",
        json.dumps([1, 2]),
        json.dumps({"answer": "a"}),
        "",
        json.dumps(chat),
        json.dumps({"completion": 17}),
    ])
    out = tmp_path / "scored.jsonl"
    rc = main(["rewards", "--input", str(src), "--reward", "answer", "--reward", "compaction",
               "--reward", "grounding_iou", "--out", str(out)])
    assert rc == 0
    err = capsys.readouterr().err
    assert f"{src}:2:" in err and "invalid JSON" in err
    assert f"{src}:3:" in err
    assert f"{src}:4:" in err and "completion" in err
    assert f"{src}:7:" in err
    assert "scored 2 line(s), skipped 4 malformed line(s)" in err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2
    assert rows[0]["id"] == "q1"
    assert rows[0]["rewards"] == {"answer": 1.0, "compaction": 0.4, "grounding_iou": 0.5}
    assert rows[0]["spans"] == [{"start": 1.0, "end": 2.0, "valid": True},
                                {"start": 10.0, "end": 12.0, "valid": True}]
    assert rows[1]["rewards"]["answer"] == 0.0
    assert rows[1]["spans"] == []

    rc = main(["rewards", "--input", str(src), "--reward", "compaction",
               "--compaction-count", "paper", "--out", str(out)])
    assert rc == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["rewards"] == {"compaction": pytest.approx(0.3)}   # paper: 1 + 2 = 3 matches


def test_cli_rewards_defaults_and_errors(tmp_path, capsys):
    src = tmp_path / "c.jsonl"
    _write(src, [json.dumps({"completion": "(1.0s - 2.0s)\nFinal answer: (a)", "answer": "a"})])
    out = tmp_path / "sub" / "o.jsonl"
    assert main(["rewards", "--input", str(src), "--out", str(out)]) == 0
    row = json.loads(out.read_text())
    assert row["rewards"] == {"answer": 1.0, "compaction": 0.5}
    assert main(["rewards", "--input", str(tmp_path / "missing.jsonl"), "--out", str(out)]) == 1
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    _write(bad, ["nope"])
    assert main(["rewards", "--input", str(bad), "--out", str(out)]) == 1


def test_cli_rewards_empty_input_or_folder_fails(tmp_path, capsys):
    # Regression: an empty input exited 0 although nothing was scored (docs: exit 1).
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    assert main(["rewards", "--input", str(empty), "--out", str(tmp_path / "o.jsonl")]) == 1
    assert "no completions" in capsys.readouterr().err
    assert main(["rewards", "--input", str(tmp_path), "--out", str(tmp_path / "o.jsonl")]) == 1
    assert "is a folder" in capsys.readouterr().err


def test_rewards_pickle_by_rebuilding():
    import pickle

    for func in [get_reward("compaction", count="paper", k_max=4), REWARDS["combined"],
                 get_reward("answer", stats=RewardStats())]:
        copy = pickle.loads(pickle.dumps(func))
        assert copy.__name__ == func.__name__ and copy.params == func.params
        texts = [k_citations(k) for k in range(6)]
        assert copy(texts, answer=["b"] * 6) == func(texts, answer=["b"] * 6)


def test_numpy_gold_letters():
    np = pytest.importorskip("numpy")
    assert normalize_letter(np.int64(2)) == "c"
    assert REWARDS["answer"](["(c)"], label=np.array([2])) == [1.0]


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=300), st.binary(max_size=100),
                          st.integers(), st.lists(st.dictionaries(st.text(max_size=8), st.text(max_size=30)))),
                min_size=1, max_size=5))
def test_rewards_total_on_random_input(completions):
    n = len(completions)
    cols = dict(answer=["a"] * n, choices=[CHOICES] * n, evidence=[[[0.0, 1.0]]] * n, duration=[4.0] * n)
    comp = REWARDS["compaction"](completions, **cols)
    assert len(comp) == n and all(v == 0.0 or 0.1 <= v <= 0.5 for v in comp)
    assert all(v in (0.0, 1.0) for v in REWARDS["answer"](completions, **cols))
    assert all(0.0 <= v <= 1.0 for v in REWARDS["grounding_iou"](completions, **cols))
    assert all(0.0 <= v <= 1.5 for v in REWARDS["combined"](completions, **cols))
