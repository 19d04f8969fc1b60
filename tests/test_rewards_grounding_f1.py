"""The verified grounding reward: precision and recall of cited spans against the evidence."""

from __future__ import annotations

import pytest

from tgsr.rewards import RewardStats, build_reward_funcs, get_reward
from tgsr.train.config import ABLATIONS

GOLD = [(1.0, 2.0), (4.0, 5.0)]   # e.g. a marker and the beep after it


def cites(*spans: tuple[float, float]) -> str:
    return "\n".join(f"From {a:.2f}s to {b:.2f}s, something." for a, b in spans) + "\nFinal answer: (a) low"


# completion, grounding_f1, grounding_iou (the precision half alone)
TABLE = [
    ("both evidence spans", cites((1, 2), (4, 5)), 1.0, 1.0),
    ("only the easy marker", cites((1, 2)), 2 * 1 * 0.5 / 1.5, 1.0),
    ("both, cited twice", cites((1, 2), (4, 5), (1, 2), (4, 5)), 1.0, 1.0),
    ("both and a wrong span", cites((1, 2), (4, 5), (7, 8)), 2 * (2 / 3) / (2 / 3 + 1), 2 / 3),
    ("halves of the marker", cites((1.5, 2), (4, 5)), 0.75, 0.75),
    ("one wide span over both", cites((1, 5)), 0.25, 0.25),
    ("both and one past the clip end", cites((1, 2), (4, 5), (9, 11)), 0.8, 2 / 3),
    ("a reversed span only", cites((3, 2)), 0.0, 0.0),
    ("a wrong span only", cites((7, 8)), 0.0, 0.0),
    ("no citation", "The beep is low.\nFinal answer: (a) low", 0.0, 0.0),
]


@pytest.mark.parametrize("label,text,f1,iou", TABLE, ids=[row[0] for row in TABLE])
def test_grounding_f1_table(label, text, f1, iou):
    columns = {"evidence": [GOLD], "duration": [10.0]}
    assert get_reward("grounding_f1")([text], **columns) == [pytest.approx(f1)]
    assert get_reward("grounding_iou")([text], **columns) == [pytest.approx(iou)]


def test_citing_only_the_easy_span_pays_less_than_citing_all():
    r = get_reward("grounding_f1")
    columns = {"evidence": [GOLD, GOLD], "duration": [10.0, 10.0]}
    easy, full = r([cites((1, 2)), cites((1, 2), (4, 5))], **columns)
    assert easy < full
    iou = get_reward("grounding_iou")([cites((1, 2)), cites((1, 2), (4, 5))], **columns)
    assert iou[0] == iou[1]  # the precision half cannot tell them apart


def test_missing_columns_are_counted_not_raised():
    stats = RewardStats()
    r = get_reward("grounding_f1", stats=stats)
    assert r([cites((1, 2))], evidence=[GOLD]) == [0.0]
    assert r([cites((1, 2))], evidence=[[]], duration=[10.0]) == [0.0]
    assert stats["grounding_f1/missing_duration"] == 1 and stats["grounding_f1/no_evidence"] == 1


def test_selectable_as_an_ablation():
    funcs, weights = build_reward_funcs(ABLATIONS["grounding_f1"]["rewards"])
    assert [f.__name__ for f in funcs] == ["answer", "grounding_f1"] and weights == [1.0, 0.5]
    assert ABLATIONS["grounding_f1"]["prompt_style"] == ABLATIONS["answer_only"]["prompt_style"] == "grounded"
    funcs, _ = build_reward_funcs(ABLATIONS["answer_only"]["rewards"])
    assert [f.__name__ for f in funcs] == ["answer"]
    # pickles by rebuilding (worker processes)
    import pickle

    r = pickle.loads(pickle.dumps(get_reward("grounding_f1")))
    assert r([cites((1, 2), (4, 5))], evidence=[GOLD], duration=[10.0]) == [1.0]
