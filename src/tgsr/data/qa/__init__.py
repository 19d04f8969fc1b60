"""Stage-2 question-answer data (``qa.jsonl``, ``tgsr.records.QAExample``) from real corpora.

``tgsr data qa meld | cota | manifest``: one builder per source (``meld``, ``cota``,
``manifest`` modules), sharing options, summaries, error rows and word timings (``common``).
Every builder writes the whole output and its errors file, so a rerun gives the same files;
MELD's slow audio step is also resumable per dialogue.
"""

from __future__ import annotations

from .common import QaSummary

SOURCES = ("meld", "cota", "manifest")

__all__ = ["SOURCES", "QaSummary"]
