"""Session fixture: a small lab corpus (``tgsr.data.lab``), built once for the tests that need it.

``lab_corpus`` is the corpus folder (``lab_corpus / "test" / "qa.jsonl"`` ...): 60 training,
4 validation and 50 test scenes, seed 0, enough items (~250 test questions) for the chance
checks. ``tone_lab_corpus`` is the same for the pure-tone scenes (``scenes="tones"``), with
``read_at`` asked of every beep and a ``validation/read_at.jsonl``. Treat them as read-only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

LAB_CORPUS_SIZES = {"train": 60, "validation": 4, "test": 50}


@pytest.fixture(scope="session")
def lab_corpus(tmp_path_factory) -> Path:
    from tgsr.data.lab import make_lab

    out = tmp_path_factory.mktemp("lab_corpus")
    make_lab(out, LAB_CORPUS_SIZES, seed=0, progress=False)
    return out


@pytest.fixture(scope="session")
def tone_lab_corpus(tmp_path_factory) -> Path:
    from tgsr.data.lab import make_lab

    out = tmp_path_factory.mktemp("tone_lab_corpus")
    make_lab(out, LAB_CORPUS_SIZES, seed=0, scenes="tones", read_at_splits=("validation",), read_at_every_beep=True,
             progress=False)
    return out
