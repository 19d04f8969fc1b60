"""The lab's pure-tone scenes: the five events of ``tgsr.data.lab`` and nothing else, in 6 s clips.

The fallback of LAB-AUDIT.md section 3 for the learnability gate, where the spoken dialogues
failed (docs/demo.md, "The laboratory"): no speech, so the events carry the whole clip. A scene
is ``CLIP_SECONDS`` of silence holding, in a random order with the burst neither first nor last,

* four **tones** (the lab's beeps) whose pitches are a random permutation of ``PITCHES_HZ``,
  each ``EVENT_SECONDS`` long, level +-``LEVEL_JITTER_DB`` around the lab's speech level, flat
  or decaying envelope;
* one **noise burst** (the lab's marker, band noise in ``MARKER_BAND_HZ``), ``EVENT_SECONDS`` long;

with ``GAP_SECONDS`` between consecutive events and at least ``EDGE_SECONDS`` before the first
and after the last. A **slotted** layout (``slot_jitter`` seconds, a curriculum for reading at a
given time) instead splits the clip inside the edges into five equal slots, one event per slot,
each centred in its slot and moved by at most ``slot_jitter`` (never out of it): at 0 the time
of every event is nearly fixed, so a written time names a slot; larger jitters approach the
free layout. Held out instead of voices are **timbres** (``SPLIT_TIMBRES``): training
tones are pure sines, validation tones triangle-like (a faint 3rd and 5th harmonic), test tones
square-like (a strong 3rd); so validation and test ask the model to read the pitch of a sound
it never heard, as the speech lab's held-out voices do. The families, rationales, pointers,
STA rows and corpus files are the lab's (``tgsr.data.lab.make_lab(..., scenes="tones")``);
``after_turn`` is not asked (no turns).
"""

from __future__ import annotations

import numpy as np

from .dialogue import SAMPLE_RATE
from .lab import (
    _SPLIT_IDS,
    _STREAMS,
    ENVELOPES,
    LEVEL_JITTER_DB,
    N_BEEPS,
    PITCHES_HZ,
    LabEvent,
    Scene,
    _r,
    beep_audio,
    marker_audio,
)

CLIP_SECONDS = 6.0
EVENT_SECONDS = (0.35, 0.8)
GAP_SECONDS = (0.15, 0.5)
EDGE_SECONDS = 0.1
INNER_SECONDS = CLIP_SECONDS - 2 * EDGE_SECONDS  # the clip between its margins, where events go
SPLIT_TIMBRES = {"train": ("sine",), "validation": ("triangle",), "test": ("square",)}


def _slotted_starts(rng: np.random.Generator, lengths: np.ndarray, slot_jitter: float) -> list[float]:
    """One event per equal slot between the edges, centred, moved by at most ``slot_jitter``
    (and never past its slot's bounds)."""
    slot = INNER_SECONDS / lengths.size
    starts = []
    for e, length in enumerate(lengths):
        room = min(float(slot_jitter), (slot - float(length)) / 2)
        centre = EDGE_SECONDS + slot * (e + 0.5) + float(rng.uniform(-room, room))
        starts.append(centre - float(length) / 2)
    return starts


def _free_starts(rng: np.random.Generator, lengths: np.ndarray, gaps: np.ndarray) -> list[float]:
    """The events one after another, ``gaps`` apart, the whole run at a random offset between the edges."""
    cursor = EDGE_SECONDS + float(rng.uniform(0, INNER_SECONDS - lengths.sum() - gaps.sum()))
    starts = []
    for e, length in enumerate(lengths):
        starts.append(cursor)
        cursor += float(length) + (float(gaps[e]) if e < len(gaps) else 0.0)
    return starts


def make_tone_scene(split: str, index: int, seed: int, slot_jitter: float | None = None) -> tuple[Scene, np.ndarray]:
    """Tone scene ``index`` of ``split``: depends only on (seed, split, index, slot_jitter).
    ``slot_jitter`` None is the free layout; a number of seconds, the slotted one."""
    if slot_jitter is not None and not slot_jitter >= 0:
        raise ValueError(f"slot_jitter must be >= 0 seconds or None, got {slot_jitter}")
    slotted = slot_jitter is not None
    layout_stream = [1] if slotted else []  # the free layout keeps the stream it always had
    rng = np.random.default_rng([int(seed), _STREAMS["tones"], _SPLIT_IDS[split], int(index), 0, *layout_stream])
    clip_id = f"tones-{split}-{index:05d}"
    marker_pos = int(rng.integers(1, N_BEEPS))
    pitches = [PITCHES_HZ[int(i)] for i in rng.permutation(N_BEEPS)]
    kinds = ["beep"] * N_BEEPS
    kinds.insert(marker_pos, "marker")
    while True:  # redraw the few layouts that do not fit (the longest possible one is 6.0 s)
        lengths = rng.uniform(*EVENT_SECONDS, size=len(kinds))
        gaps = rng.uniform(*GAP_SECONDS, size=len(kinds) - 1)  # drawn by both layouts: one stream each
        if slotted or lengths.sum() + gaps.sum() <= INNER_SECONDS:
            break
    starts = _slotted_starts(rng, lengths, slot_jitter) if slotted else None
    levels = rng.uniform(-LEVEL_JITTER_DB, LEVEL_JITTER_DB, size=len(kinds))
    envelopes = [ENVELOPES[int(i)] for i in rng.integers(len(ENVELOPES), size=len(kinds))]
    timbres = SPLIT_TIMBRES[split]
    timbre = [timbres[int(i)] for i in rng.integers(len(timbres), size=len(kinds))]
    if starts is None:  # the free layout draws its offset here, where its stream always had it
        starts = _free_starts(rng, lengths, gaps)
    audio = np.zeros(int(round(CLIP_SECONDS * SAMPLE_RATE)), np.float32)
    events, beep_i = [], 0
    for e, kind in enumerate(kinds):
        a = int(round(starts[e] * SAMPLE_RATE))
        level = round(float(levels[e]), 2)
        if kind == "beep":
            pitch = pitches[beep_i]
            beep_i += 1
            x = beep_audio(pitch, float(lengths[e]), float(levels[e]), envelopes[e], timbre[e])
            events.append(LabEvent("beep", _r(a / SAMPLE_RATE), _r((a + x.size) / SAMPLE_RATE), level, pitch,
                                   envelopes[e], timbre[e]))
        else:
            x = marker_audio(float(lengths[e]), float(levels[e]), rng)
            events.append(LabEvent("marker", _r(a / SAMPLE_RATE), _r((a + x.size) / SAMPLE_RATE), level))
        audio[a:a + x.size] = x
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    return Scene(clip_id, split, "", _r(audio.size / SAMPLE_RATE), [], events, [], kind="tones"), audio


__all__ = ["make_tone_scene", "CLIP_SECONDS", "EVENT_SECONDS", "GAP_SECONDS", "EDGE_SECONDS", "SPLIT_TIMBRES"]
