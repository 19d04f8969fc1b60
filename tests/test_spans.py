"""The timestamp-citation grammar: every form, offsets, validity, distinctness, paper counts,
round trips, and linear behaviour on adversarial input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tgsr.spans import count_citations, distinct_spans, find_spans, format_span, parse_time, span_iou, spans_to_rows

# (text, expected [(start, end), ...]) -- one entry per form listed in the issue, and variants.
FORMS = [
    ("From 10.74s to 14.74s", [(10.74, 14.74)]),
    ("from 6.20 seconds to 10.00 seconds", [(6.20, 10.00)]),
    ("The crash is from 3 to 5 seconds.", [(3, 5)]),
    ("it starts at 1.2 seconds and ends at 3.4 seconds", [(1.2, 3.4)]),
    ("The segment [good morning] starts at 0.27 seconds and ends at 2.95 seconds.", [(0.27, 2.95)]),
    ("the laugh (1.2s - 3.4s) is loud", [(1.2, 3.4)]),
    ("the laugh (1.2s \u2013 3.4s) is loud", [(1.2, 3.4)]),
    ("the laugh (1.2, 3.4) is loud", [(1.2, 3.4)]),
    ("a door slams 1.2 to 3.4 seconds in", [(1.2, 3.4)]),
    ("a door slams 1.2-3.4 s in", [(1.2, 3.4)]),
    ("[0.00s - 4.30s] Speaker 1: hello", [(0.0, 4.30)]),
    ("[0.00s \u2013 4.30s] Speaker 1: hello", [(0.0, 4.30)]),
    ("At 00:05 - 00:09.5 a dog barks", [(5.0, 9.5)]),
    ("At 0:01:02.5 to 0:01:04 a dog barks", [(62.5, 64.0)]),
    ("From [0.00s \u2013 4.30s] the host speaks", [(0.0, 4.30)]),
    # unit spellings
    ("From 1.5 sec to 2 secs", [(1.5, 2.0)]),
    ("From 1.5 second to 2 second", [(1.5, 2.0)]),
    ("FROM 1.5S TO 2S", [(1.5, 2.0)]),
    ("between 1.5 and 2.25 s", [(1.5, 2.25)]),
    # commas as separators
    ("It starts at 1.2 seconds, and ends at 3.4 seconds, then", [(1.2, 3.4)]),
    ("From 1.2s, to 3.4s, she says", [(1.2, 3.4)]),
    ("(1.2 ,3.4)", [(1.2, 3.4)]),
    ("starting at 1 sec and ending at 2 secs", [(1.0, 2.0)]),
    # clock values inside phrase forms
    ("from 01:05 to 01:07.25", [(65.0, 67.25)]),
    ("[00:01 - 00:03]", [(1.0, 3.0)]),
    ("75:30 - 76:00", [(4530.0, 4560.0)]),
    # several, in order
    ("From 0.50s to 1.00s A; then (2s - 3s) B; finally 4 to 5 seconds C.",
     [(0.5, 1.0), (2.0, 3.0), (4.0, 5.0)]),
]

DASHES = ["-", "\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2015", "\u2212", "~"]


@pytest.mark.parametrize("text,expected", FORMS)
def test_every_form(text, expected):
    spans = find_spans(text)
    got = [v for s in spans for v in (s.start, s.end)]
    assert got == pytest.approx([v for pair in expected for v in pair])
    assert len(spans) == len(expected)
    assert all(s.valid for s in spans)


@pytest.mark.parametrize("text,expected", FORMS)
def test_offsets_point_at_the_citation(text, expected):
    spans = find_spans(text)
    for s in spans:
        assert text[s.char_start:s.char_end] == s.text
    assert [s.char_start for s in spans] == sorted(s.char_start for s in spans)
    for a, b in zip(spans, spans[1:]):
        assert a.char_end <= b.char_start


@pytest.mark.parametrize("dash", DASHES)
def test_unicode_dashes(dash):
    for text in (f"(1.2s {dash} 3.4s)", f"[1.2s{dash}3.4s]", f"1.2{dash}3.4 s", f"00:01 {dash} 00:02",
                 f"from 1.2s {dash} 3.4s"):
        spans = find_spans(text)
        assert len(spans) == 1, text
        assert spans[0].end > spans[0].start


@pytest.mark.parametrize("text", [
    "From [0.00s \u2013 4.30s]",
    "from 10 to 12 seconds",
    "is from 3 to 5 seconds",
    "from (1.0s - 2.0s)",
    "starts at 1 seconds and ends at 2 seconds",
])
def test_one_citation_is_never_counted_twice(text):
    assert len(find_spans(text)) == 1
    assert count_citations(text, "distinct") == 1


@pytest.mark.parametrize("text", [
    "from 2 to 3 speakers",
    "pages 10-12 of the book",
    "version 1.2.3",
    "the mp3 to 4 seconds",
    "scored 1234567 to 8 seconds",       # 7-digit values are not times
    "a dog barks",
    "(a) one (b) two",
    "from 5 to",
    "",
])
def test_non_citations(text):
    assert find_spans(text) == []


def test_start_after_end_is_invalid_not_swapped():
    (s,) = find_spans("From 5.00s to 3.00s, nothing")
    assert (s.start, s.end, s.valid) == (5.0, 3.0, False)
    (z,) = find_spans("From 3.00s to 3.00s")
    assert not z.valid  # a zero-length span covers no audio
    assert count_citations("From 5.00s to 3.00s", "distinct") == 0


@pytest.mark.parametrize("text,start", [
    ("From -1.00s to 2.00s", -1.0),
    ("then -1.2 to 3.4 seconds", -1.2),
    ("(\u22120.5s - 2s)", -0.5),
    ("at -00:05 - 00:09", -5.0),
])
def test_negative_start_is_kept_and_invalid(text, start):
    (s,) = find_spans(text)
    assert s.start == start and not s.valid
    assert count_citations(text) == 0


def test_dash_between_values_is_not_a_sign():
    assert [(s.start, s.end, s.valid) for s in find_spans("1.2-3.4 s, 0.5s-1.0s")] == [
        (1.2, 3.4, True), (0.5, 1.0, True)]
    assert find_spans("from 1s to -2s") == []     # a signed second value is not a citation


def test_rows_for_output_files():
    spans = find_spans("From 1s to 2s, from 4s to 3s")
    assert spans_to_rows(spans) == [{"start": 1.0, "end": 2.0, "valid": True},
                                    {"start": 4.0, "end": 3.0, "valid": False}]
    assert spans[0].as_dict()["char_start"] == 0 and spans[0].duration == 1.0


def test_parse_time():
    assert parse_time("12.5") == 12.5
    assert parse_time("01:02.5") == 62.5
    assert parse_time("1:02:03") == 3723.0


def test_non_string_input_gives_no_spans():
    assert find_spans(None) == []
    assert find_spans(12) == []  # type: ignore[arg-type]
    assert [(s.start, s.end) for s in find_spans(b"From 1s to 2s")] == [(1.0, 2.0)]
    assert count_citations(None) == 0


def test_format_span():
    assert format_span(5.98, 14.8) == "From 5.98s to 14.80s"
    assert format_span(0, 4.3) == "From 0.00s to 4.30s"


@settings(max_examples=300, deadline=None)
@given(st.floats(0, 86_000, allow_nan=False), st.floats(0, 86_000, allow_nan=False),
       st.sampled_from(["", "Then ", "x. ", "the dog barks ("]), st.sampled_from(["", ", he says", ".", ")"]))
def test_format_then_parse_round_trips(start, end, prefix, suffix):
    text = prefix + format_span(start, end) + suffix
    spans = find_spans(text)
    assert len(spans) == 1
    assert abs(spans[0].start - start) <= 0.005 + 1e-9
    assert abs(spans[0].end - end) <= 0.005 + 1e-9
    assert spans[0].valid == (round(start, 2) < round(end, 2))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789.:,-\u2013 ()[]stoandfrmecbgiuwh\n")), max_size=200))
def test_parser_is_total_and_consistent(text):
    spans = find_spans(text)
    prev_end = 0
    for s in spans:
        assert s.char_start >= prev_end
        assert text[s.char_start:s.char_end] == s.text
        assert s.valid == (0 <= s.start < s.end)
        prev_end = s.char_end
    assert count_citations(text, "distinct") <= len(spans)
    assert count_citations(text, "paper") >= 0


def test_distinct_rule():
    text = ("From 1.00s to 3.00s the man speaks. Again (1.0s - 3.0s) and from 1.05s to 3.02s. "
            "Inside, from 1.5s to 2.0s. Later from 10s to 12s. Bad: from 9s to 8s.")
    kept = distinct_spans(text)
    assert [(s.start, s.end) for s in kept] == [(1.0, 3.0), (1.5, 2.0), (10.0, 12.0)]
    assert count_citations(text, "distinct") == 3
    # also accepts already-parsed spans, and keeps the first occurrence
    assert distinct_spans(find_spans(text)) == kept
    assert distinct_spans(None) == []


def test_span_iou():
    assert span_iou((0, 2), (1, 3)) == pytest.approx(1 / 3)
    assert span_iou((0, 1), (2, 3)) == 0.0
    assert span_iou((1, 1), (1, 1)) == 0.0


# --- paper-compat counting: the authors' plugin sums five pattern counts, double counts included.
PAPER_COUNTS = [
    ("From 10.74s to 14.74s", 1),
    ("from 6.20 seconds to 10.00 seconds", 1),
    ("from 10 to 12 seconds", 2),           # pattern 2 and pattern 5
    ("is from 3 to 5 seconds", 2),
    ("FROM 10 TO 12 SECONDS", 2),           # case-insensitive
    ("From [0.00s \u2013 4.30s]", 0),       # no pattern accepts brackets
    ("[0.00s - 4.30s]", 0),
    ("starts at 1.2 seconds and ends at 3.4 seconds", 1),
    ("start at 1.2s and end at 3.4s", 1),
    ("(1.2s - 3.4s)", 1),
    ("(1.2s \u2013 3.4s)", 1),
    ("(1.2 - 3.4)", 1),
    ("(1.2, 3.4)", 1),
    ("1.2 to 3.4 seconds", 1),
    ("1.2-3.4 second", 1),
    ("1.2\u20133.4 seconds", 1),
    ("1.2-3.4 s", 0),                       # pattern 5 needs the word "second"
    ("00:05 - 00:09.5", 0),
    ("From 1.2 sec to 3 secs", 0),          # "sec" is not one of the plugin's units
    ("from 2 to 3 speakers", 1),            # the plugin counts plain numbers too
    ("From 1s to 2s. From 1s to 2s. (1s - 2s)", 3),
    ("", 0),
]


@pytest.mark.parametrize("text,count", PAPER_COUNTS)
def test_paper_mode_counts(text, count):
    assert count_citations(text, "paper") == count


def test_unknown_count_mode():
    with pytest.raises(ValueError, match="distinct"):
        count_citations("From 1s to 2s", "fancy")


# --- linear time: adversarial inputs of a few hundred KB finish (the timeout only guards
# against a hang; the benchmark prints the actual figures).
N = 300_000
ADVERSARIAL = {
    "digits": "9" * N,
    "digits_and_dots": ("1." * N)[:N],
    "nested_brackets": ("[(" * N)[:N],
    "repeated_from": ("from " * N)[:N],
    "from_number": ("from 1 " * N)[:N],
    "long_space_run": "from 1" + " " * N + "to 2 seconds",
    "starts_at": ("starts at 1 and " * N)[:N],
    "open_citations": ("[(1.2s - " * N)[:N],
    "clockish": ("0:0" * N)[:N],
    "numbers_to": ("1 to " * N)[:N],
    "many_digits_then_unit": "1" * N + " to 2 seconds",
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_input_finishes(name):
    text = ADVERSARIAL[name]
    spans = find_spans(text)
    assert isinstance(spans, list)
    assert count_citations(text, "paper") >= 0
    assert count_citations(text, "distinct") == len(distinct_spans(spans))


@pytest.mark.timeout(120)
def test_many_real_citations_all_found():
    text = " ".join(format_span(i, i + 0.5) + " x." for i in range(20_000))
    spans = find_spans(text)
    assert len(spans) == 20_000
    assert count_citations(text, "paper") == 20_000
    assert count_citations(text, "distinct") == 20_000
