"""Answer extraction from the last non-empty line."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tgsr.analysis.attention import token_char_spans, token_phases
from tgsr.analysis.behaviors import audiology_verify
from tgsr.answers import answer_line, completion_text, extract_choice
from tgsr.rewards import get_reward

CHOICES = ["one speaker", "two speakers", "three speakers", "dog"]
EIGHT = [f"option {i}" for i in range(8)]


@pytest.mark.parametrize("completion,letter", [
    ("(b)", "b"),
    ("(B)", "b"),
    ("Final answer: (b) two speakers", "b"),
    ("From 1.00s to 2.00s two voices.\nFinal answer: (c) three speakers\n\n  \n", "c"),
    ("Answer: B", "b"),
    ("answer: b", "b"),
    ("Answer: B.", "b"),
    ("B.", "b"),
    ("B", "b"),
    ("b)", "b"),
    ("[c]", "c"),
    ("C. three speakers", "c"),
    ("The answer is (a).", "a"),
    ("The answer is B.", "b"),
    ("The correct option is D", "d"),
    ("**Final answer: (C)**", "c"),
    ("Final answer: `d`", "d"),
    ("I pick (c) here", "c"),
    ("Final answer: (b) the second option a", "b"),   # 'option a' later on the line is ignored
    ("Answer: d dog", "d"),                          # letter followed by its own choice text
    ("two speakers", "b"),                           # last line equals a choice's text
    ("Final answer: Two Speakers.", "b"),
    ("Final answer: dog", "d"),
])
def test_letters(completion, letter):
    got = extract_choice(completion, CHOICES)
    assert got.letter == letter, got
    assert got.text == CHOICES["abcd".index(letter)]
    assert got.reason is None


@pytest.mark.parametrize("completion", [
    "Final answer: a dog",        # the article 'a', not the letter: choice (a) is not 'dog'
    "Answer: a dog barks",
    "I think so",                 # pronoun
    "I am not sure.",
    "A dog barks in the background",
    "The speaker sounds happy",
    "(b) and then (c)",           # ambiguous
    "Final answer: (e)",          # beyond four choices
    "",
    "   \n\n",
    None,
])
def test_no_false_positives(completion):
    got = extract_choice(completion, CHOICES)
    assert got.letter is None and got.text is None
    assert got.reason


def test_reasons_say_why():
    assert extract_choice("", CHOICES).reason == "empty completion"
    assert "ambiguous" in extract_choice("(a) or (b)", CHOICES).reason
    assert "beyond the 4 choices" in extract_choice("Final answer: (e)", CHOICES).reason


def test_letters_past_d():
    assert extract_choice("Final answer: (h) option 7", EIGHT).letter == "h"
    assert extract_choice("Answer: E", EIGHT).text == "option 4"
    assert extract_choice("(g)", EIGHT).letter == "g"


def test_only_the_last_line_counts():
    assert extract_choice("Final answer: (a)\nActually I am unsure.", CHOICES).letter is None
    assert extract_choice("(a) is tempting\nFinal answer: (b)", CHOICES).letter == "b"


def test_without_choices_any_letter():
    got = extract_choice("Final answer: (f)", None)
    assert got.letter == "f" and got.text is None


def test_chat_message_completions():
    msgs = [{"role": "assistant", "content": "From 1s to 2s.\nFinal answer: (b)"}]
    assert extract_choice(msgs, CHOICES).letter == "b"
    parts = [{"role": "assistant", "content": [{"type": "text", "text": "Final answer: (c)"}]}]
    assert extract_choice(parts, CHOICES).letter == "c"
    assert completion_text([{"role": "user", "content": "(a)"}]) == ""
    assert completion_text(42) == ""


# One table for every reader of the final answer line: the answer reward, the attention
# phases and Audiology Verify's attribution stop must all find the same line.
ANSWER_LINES = [
    # text, the answer line's text, its letter
    ("x\n**Final answer:** (b)\n\n", "Final answer: (b)", "b"),
    ("x\n**Final answer: (b)**\n", "Final answer: (b)", "b"),
    ("From 1.00s to 2.00s two voices.\nFinal answer: (c) three speakers\n\n  \n",
     "Final answer: (c) three speakers", "c"),
    ("reasoning\n\nFinal answer: (a)\n**\n", "Final answer: (a)", "a"),
    ("Final answer: (d) dog", "Final answer: (d) dog", "d"),
    ("a\n\n> Answer: (b)\n  \n", "Answer: (b)", "b"),
]


class _Chars:
    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(i) for i in ids)


@pytest.mark.parametrize("text,line,letter", ANSWER_LINES)
def test_reward_attention_and_verify_read_the_same_answer_line(text, line, letter):
    found = answer_line(text)
    assert found is not None and found.text == line
    assert text[found.start:found.end].strip().strip("*> ").startswith(line.split()[0])
    # the answer reward reads it
    assert extract_choice(text, CHOICES).letter == letter
    assert get_reward("answer")([text], answer=[letter], choices=[CHOICES]) == [1.0]
    # the attention phases start it there
    phases = token_phases(text, token_char_spans(_Chars(), [ord(c) for c in text]))
    assert phases.index("answer") == found.start
    assert all(p != "answer" for p in phases[:found.start])
    # Audiology Verify attributes a citation's words up to that line and never into it: a citation
    # on the line before the answer, its sentence running on without a full stop
    cited = 'From 0.00s to 1.00s she says "hello there"' + "\n" + text
    _, details = audiology_verify(np.zeros(16_000, np.float32), cited, lambda crop: "hello there")
    assert details[0]["attributed"] == "hello there" and details[0]["similarity"] == 1.0
    assert not any("answer" in (d.get("attributed") or "").lower() for d in details)


def test_answer_line_of_blank_text_is_none():
    assert answer_line("\n\n") is None
    assert answer_line("** \n__\n") is None
    assert extract_choice("** \n", CHOICES).reason == "empty completion"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_never_raises_and_letter_is_valid(text):
    got = extract_choice(text, CHOICES)
    assert (got.letter is None) == (got.reason is not None)
    if got.letter is not None:
        assert got.letter in "abcd"
        assert got.text == CHOICES["abcd".index(got.letter)]
