"""Stage-1 STA examples from word timings: sample phrases, keep their exact spans.

A phrase is a run of consecutive words inside one utterance/speaker turn that never
crosses a long pause. Its start is the first word's start and its end the last word's
end, rounded to 2 decimals (the precision the model is asked to produce). Words the
aligner was unsure about (confidence below ``min_confidence``) are never part of a
phrase: they split runs, so a phrase always matches what is said in its span.
Sampling is seeded per clip, so the output does not depend on the order of the input.

Unusable input lines -- malformed, or a clip id already seen (tgsr's duplicate policy,
``tgsr.records.FirstSeen``: the first is kept) -- are written to the errors file
(``<out>.errors.jsonl``) with file, line and reason, and counted in the summary, so a clip
repeated in ``words.jsonl`` yields its phrases once.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..records import ClipWords, DuplicateRecord, StaExample, Utterance, Word, read_jsonl, write_jsonl


@dataclass
class StaOptions:
    min_words: int = 3
    max_words: int = 12
    per_clip: int = 4
    max_pause: float = 1.0          # seconds of silence between words that ends a phrase
    min_confidence: float = 0.4     # words below this are dropped (when the backend reports confidence)
    seed: int = 0


@dataclass
class StaSummary:
    clips: int = 0
    clips_without_phrase: int = 0
    examples: int = 0
    words_dropped_low_confidence: int = 0
    bad_records: int = 0            # malformed lines
    duplicates: int = 0             # lines repeating a clip id (the first is kept)
    errors_path: str = ""


def parse_phrase_len(text: str) -> tuple[int, int]:
    """``"3-12"`` -> (3, 12); ``"5"`` -> (5, 5)."""
    try:
        lo, _, hi = text.partition("-")
        lo_i, hi_i = int(lo), int(hi or lo)
    except ValueError:
        raise ValueError(f"phrase length {text!r}: expected MIN-MAX, e.g. 3-12") from None
    if lo_i < 1 or hi_i < lo_i:
        raise ValueError(f"phrase length {text!r}: need 1 <= MIN <= MAX")
    return lo_i, hi_i


def _turn_index(w: Word, utterances: list[Utterance]) -> int:
    """Index of the utterance that contains the word's midpoint (-1 if none)."""
    mid = (w.start + w.end) / 2
    for i, u in enumerate(utterances):
        if u.start <= mid <= u.end:
            return i
    return -1


def word_runs(clip: ClipWords, opts: StaOptions) -> tuple[list[list[Word]], int]:
    """Maximal runs of usable words: same turn and speaker, no long pause, all confident."""
    runs: list[list[Word]] = []
    current: list[Word] = []
    prev_key = None
    dropped = 0
    for w in clip.words:
        if w.confidence is not None and w.confidence < opts.min_confidence:
            dropped += 1
            if current:
                runs.append(current)
            current, prev_key = [], None
            continue
        key = (_turn_index(w, clip.utterances), w.speaker)
        if current and (key != prev_key or w.start - current[-1].end > opts.max_pause):
            runs.append(current)
            current = []
        current.append(w)
        prev_key = key
    if current:
        runs.append(current)
    return runs, dropped


def _clip_rng(seed: int, clip_id: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(clip_id.encode("utf-8"))])


def sample_clip(clip: ClipWords, opts: StaOptions) -> tuple[list[StaExample], int]:
    """Up to ``per_clip`` distinct phrases of ``clip`` (fewer when it has fewer)."""
    runs, dropped = word_runs(clip, opts)
    # every candidate (run, first word, length): sampled without replacement, lengths uniform
    by_len: dict[int, list[tuple[int, int]]] = {}
    for r, run in enumerate(runs):
        for n in range(opts.min_words, min(opts.max_words, len(run)) + 1):
            by_len.setdefault(n, []).extend((r, i) for i in range(len(run) - n + 1))
    rng = _clip_rng(opts.seed, clip.clip_id)
    examples: list[StaExample] = []
    limit = math.floor(clip.duration * 100) / 100  # 2-decimal end never past the clip
    while len(examples) < opts.per_clip and by_len:
        n = int(rng.choice(sorted(by_len)))
        cands = by_len[n]
        r, i = cands.pop(int(rng.integers(len(cands))))
        if not cands:
            del by_len[n]
        words = runs[r][i:i + n]
        start = min(round(words[0].start, 2), limit)
        end = min(round(words[-1].end, 2), limit)
        if end <= start:
            continue
        examples.append(StaExample(
            id=f"{clip.clip_id}-sta{len(examples)}", audio=clip.audio, phrase=" ".join(w.text for w in words),
            start=start, end=end, source=clip.source, clip_id=clip.clip_id, duration=clip.duration,
            granularity="phrase"))
    return examples, dropped


def build_sta(words_path: str | Path, out: str | Path, opts: StaOptions | None = None, *,
              errors_path: str | Path | None = None) -> tuple[StaSummary, list]:
    """Read ``words.jsonl``, write ``sta.jsonl`` and its errors file (default ``<out>.errors.jsonl``).
    Returns the summary and the input problems (``RecordError``: malformed lines, repeated clip ids)."""
    opts = opts or StaOptions()
    out = Path(out)
    errors_path = Path(errors_path) if errors_path else out.with_name(out.stem + ".errors.jsonl")
    loaded = read_jsonl(words_path, ClipWords, on_error="skip", unique="clip_id")
    dups = sum(isinstance(e, DuplicateRecord) for e in loaded.errors)
    summary = StaSummary(bad_records=len(loaded.errors) - dups, duplicates=dups, errors_path=str(errors_path))
    examples: list[StaExample] = []
    for clip in loaded.records:
        summary.clips += 1
        got, dropped = sample_clip(clip, opts)
        summary.words_dropped_low_confidence += dropped
        if not got:
            summary.clips_without_phrase += 1
        examples.extend(got)
    summary.examples = write_jsonl(out, examples)
    write_jsonl(errors_path, [{**e.as_row(), "stage": "words"} for e in loaded.errors])
    return summary, loaded.errors


__all__ = ["StaOptions", "StaSummary", "parse_phrase_len", "word_runs", "sample_clip", "build_sta"]
