"""Session fixture: a small synthetic corpus (espeak-ng), built once for every test that needs data.

``synth_corpus`` is the corpus folder: ``synth_corpus / "train" / "qa.jsonl"`` etc. (see
docs/synthetic-corpus.md). 24 training and 8 test clips, seed 0, all question families.
Treat it as read-only; copy it first if a test must modify files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SYNTH_CORPUS_ARGS = {"n_train": 24, "n_test": 8, "seed": 0}


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory) -> Path:
    from tgsr.data.synth import synthesize

    out = tmp_path_factory.mktemp("synth_corpus")
    synthesize(out, progress=False, **SYNTH_CORPUS_ARGS)
    return out
