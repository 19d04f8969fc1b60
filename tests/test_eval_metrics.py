"""IoU, IoU >= 0.7 rate and event-based SED-F1."""

import pytest

from tgsr.eval.metrics import SedCounts, best_iou, first_cited_span, iou, iou_rate, score_spans, sed_f1, spans_match
from tgsr.spans import find_spans


def test_iou():
    assert iou((0, 2), (1, 3)) == pytest.approx(1 / 3)
    assert iou((0, 1), (2, 3)) == 0.0
    assert iou((0, 1), (1, 2)) == 0.0
    assert iou((1, 2), (1, 2)) == 1.0
    assert iou((1, 1), (1, 1)) == 0.0 and iou((1, 1), (2, 2)) == 0.0  # empty intervals
    assert iou((3, 2), (2, 3)) == 0.0  # reversed = invalid, never swapped
    span = find_spans("From 1.00s to 3.00s")[0]  # objects with .start/.end work too
    assert iou(span, (2, 3)) == pytest.approx(0.5)


def test_best_iou_and_rate():
    assert best_iou([(0, 1), (2, 4)], (2, 3)) == pytest.approx(0.5)
    assert best_iou([(0, 1)], [(5, 6), (0, 2)]) == pytest.approx(0.5)
    assert best_iou([], (0, 1)) == 0.0
    assert iou_rate([0.7, 0.69, 1.0, 0.0]) == 0.5
    assert iou_rate([]) == 0.0


def test_collars():
    # onset collar 0.2 s
    assert spans_match((1.19, 2.0), (1.0, 2.0))
    assert not spans_match((1.21, 2.0), (1.0, 2.0))
    # offset collar: max(0.2 s, 20% of the reference length)
    assert not spans_match((0.0, 1.25), (0.0, 1.0))
    assert spans_match((0.0, 11.9), (0.0, 10.0))      # 20% of 10 s = 2 s
    assert not spans_match((0.0, 12.1), (0.0, 10.0))


def test_sed_f1_counts_and_perfect_cases():
    r = sed_f1([(0.1, 1.0), (5, 6)], [(0, 1), (3, 4)])
    assert (r.tp, r.fp, r.fn) == (1, 1, 1)
    assert float(r) == pytest.approx(0.5) and r.precision == 0.5 and r.recall == 0.5
    assert sed_f1([], []).f1 == 1.0
    assert sed_f1([], [(0, 1)]).f1 == 0.0
    # one prediction cannot match two references
    assert sed_f1([(0, 1)], [(0, 1), (0.05, 1.05)]).tp == 1
    total = SedCounts() + sed_f1([(0, 1)], [(0, 1)]) + sed_f1([], [(0, 1)])
    assert (total.tp, total.fn) == (1, 1) and total.f1 == pytest.approx(2 / 3)


def test_sed_matching_is_maximal_not_greedy():
    refs = [(0.0, 1.0), (0.3, 1.3)]
    p1, p2 = (0.15, 1.15), (0.0, 1.0)     # p1 matches both references, p2 only the first
    assert sed_f1([p1, p2], refs).tp == 2
    assert sed_f1([p2, p1], refs).tp == 2
    assert sed_f1([p1, p2], refs[::-1]).tp == 2


def test_score_spans_by_hand():
    outputs = ["From 0.00s to 0.50s.",                      # IoU 1 with (0, 0.5)
               "From 9s to 8s. From 0.30s to 0.70s.",       # invalid first, then IoU 0.8: the first valid counts
               "nothing cited",                             # no span
               None]                                        # an error item
    refs = [(0.0, 0.5), (0.3, 0.8), (1.0, 2.0), (1.0, 2.0)]
    s = score_spans(outputs, refs, n_items=5)               # one item never predicted
    assert (s["items"], s["predicted"], s["missing"], s["errors"], s["no_span"]) == (5, 4, 1, 1, 1)
    assert s["ious"] == pytest.approx([1.0, 0.8, 0.0, 0.0])
    assert s["mean_iou"] == pytest.approx(1.8 / 5) and s["iou_at_0.7"] == pytest.approx(2 / 5)
    # two detections both match their references; three references (no span, error, missing) are missed
    assert (s["sed"]["tp"], s["sed"]["fp"], s["sed"]["fn"]) == (2, 0, 3)
    assert s["sed"]["f1"] == pytest.approx(2 * 2 / (2 * 2 + 0 + 3))
    assert first_cited_span(outputs[1]) == (0.3, 0.7) and first_cited_span(None) is None
    with pytest.raises(ValueError, match="2 outputs for 1"):
        score_spans(["a", "b"], [(0, 1)])
