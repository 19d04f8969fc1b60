"""The word pools of the synthetic corpus: keywords occur only where templates put them."""

import re

import pytest

from tgsr.data.lexicon import GREETINGS, INTENTS, ITEMS, PLACES, SCENARIOS, VOICE_TYPES, lexicon


def test_keywords_never_occur_in_fixed_sentences():
    fixed = [line for roles in SCENARIOS.values() for lines in roles for line in lines] + list(GREETINGS)
    fixed += [t.replace("{item}", "").replace("{place}", "") for ts in INTENTS.values() for t in ts]
    spoken = {w.lower() for t in fixed for w in re.findall(r"[\w']+", t)}
    assert not spoken & set(ITEMS) and not spoken & set(PLACES)
    assert len(set(ITEMS)) == len(ITEMS) and len(set(PLACES)) == len(PLACES) and not set(ITEMS) & set(PLACES)


def test_sentences_are_plain_words():
    for t in [line for roles in SCENARIOS.values() for lines in roles for line in lines] + list(GREETINGS):
        assert re.fullmatch(r"[A-Za-z' ,.?]+", t), t
    for intent, templates in INTENTS.items():
        assert len(templates) >= 3 and all("{item}" in t for t in templates), intent


@pytest.mark.parametrize("size", [8, 12, 16, 40, 64])
def test_lexicon_sizes(size):
    items, places = lexicon(size)
    assert len(items) + len(places) == size and len(items) >= 4 and len(places) >= 4


def test_lexicon_rejects_impossible_sizes():
    with pytest.raises(ValueError):
        lexicon(7)
    with pytest.raises(ValueError):
        lexicon(len(ITEMS) + len(PLACES) + 1)
    assert lexicon(None) == (ITEMS, PLACES) and len(VOICE_TYPES) == 4
