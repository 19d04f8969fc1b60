"""The demo's laboratory: spoken dialogues with beeps between the turns, where a citation is a pointer.

Every question asks for a property of the audio *at* located evidence, never for a time: the
pitch of a beep, found by what surrounds it (a noise burst, a speaker's turn, its rank among the
beeps). A scene is a synthetic spoken dialogue (``tgsr.data.dialogue``: 2-4 voices taking
turns) with five events laid into the silences between and around the turns:

* four **beeps** whose pitch classes are a random permutation of ``PITCHES_HZ`` (300, 600, 1200
  and 2400 Hz: octaves apart, in distinct mel bands), each heard exactly once per clip;
* one **noise burst** (band noise in ``MARKER_BAND_HZ``, above every beep and most speech
  energy), never the first or the last event, so every family can be asked of every clip.

Since every clip holds every pitch once, at independently drawn lengths and levels, no
clip-level statistic says which pitch a question is about: only reading at the located beep
does (``tgsr.data.frame_probe`` checks this with a bag-of-frames probe).

Families (``LAB_FAMILIES``; options in natural order, so the letter is the pitch rank):

=================  ===============================================================  ==========
family             question                                                         evidence
=================  ===============================================================  ==========
``after_marker``   pitch of the first beep after the noise burst                    2 spans
``before_marker``  pitch of the last beep before the noise burst                    2 spans
``after_turn``     pitch of the first beep after "the second speaker's turn"        2 spans
``ordinal_beep``   pitch of the k-th beep (count, then read)                        1 span
``compare_marker`` is the beep after the burst lower or higher than the one before  3 spans
``read_at``        pitch of the beep from X to Y (a time given: read at a pointer)  1 span
=================  ===============================================================  ==========

``read_at`` teaches the inverse of timestamp alignment (time -> read), which is what makes a
citation usable as a pointer; it is a training aid (``TRAIN_ONLY_FAMILIES``), not a test family.

Rationales cite each evidence span once, in the order the reasoning uses them: the grounded one
``From 5.10s to 5.38s, the noise burst sounds.`` and the plain one the same sentences without the
times (``The noise burst sounds.``), so plain reasoning is as informative as grounded reasoning.

Splits: ``train``, ``validation`` and ``test`` speak with three disjoint sets of voice
configurations (``lab_voice_pools``): validation and test voices are never heard in training,
and the gates measured on validation never touch a test voice.

Scene kinds (``SCENE_KINDS``): ``speech`` (the dialogues above, the default) and ``tones``
(``tgsr.data.lab_tones``: 6 s clips of the same five events and nothing else, the fallback of
LAB-AUDIT.md section 3, with held-out timbres instead of held-out voices). Both share the
families, rationales, pointers, STA rows, splits and checks of this module; ``after_turn``
needs turns, so tone scenes do not ask it.

``make_lab(out_dir, sizes, seed)`` writes, for each split::

    DIR/<split>/audio/<clip_id>.wav   16 kHz mono
    DIR/<split>/qa.jsonl              QAExample, meta: family, the scene (turns, events) and the asked event
    DIR/<split>/read_at.jsonl         held-out splits named in ``read_at_splits`` only: one ``read_at``
                                      question per scene (one per beep with ``read_at_every_beep``),
                                      kept apart from qa.jsonl (whose questions and gates it leaves
                                      unchanged), to measure reading at a given span
    DIR/<split>/sta.jsonl             StaExample: where is "the noise burst", "the third beep", "the high
                                      beep", "the second speaker's turn" (Stage 1 on the lab, ``scene_sta``)
    DIR/<split>/scenes.jsonl          Scene: everything the clip was synthesised from
    DIR/<split>/failures.jsonl        clips that could not be made (only when there are any)
    DIR/manifest.json                 sizes, counts per family and per gold letter, the text-only check
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from ..audio import save_audio
from ..errors import TgsrError
from ..records import LETTERS, QAExample, StaExample, read_jsonl, write_jsonl
from ..spans import format_span
from .dialogue import SAMPLE_RATE, TARGET_RMS, Clip, plan_clip, render_clip
from .lexicon import ORDINALS, lexicon
from .questions import Claim, Draft, cite, rationales
from .synth import ordinal_speaker, turn_name
from .tts import SynthesisError, get_engine
from .voices import VoiceConfig, engine_configs, split_configs

SOURCE = "tgsr-lab"
SPLITS = ("train", "validation", "test")
PITCHES_HZ = (300.0, 600.0, 1200.0, 2400.0)
PITCH_NAMES = ("low", "mid-low", "mid-high", "high")
COMPARE_OPTIONS = ("lower", "higher")
MARKER_BAND_HZ = (4000.0, 7000.0)
N_BEEPS = len(PITCHES_HZ)
ENVELOPES = ("flat", "decay")
# a beep's timbre: amplitudes of its odd harmonics 1, 3, 5, ... (odd only: an even harmonic of one
# pitch class would sound at another's, 2 x 300 = 600 Hz); partials above HARMONIC_CEILING_HZ are
# dropped, so the fundamental always carries the spectral peak
TIMBRES = {
    "sine": (1.0,),
    "triangle": tuple(1 / n ** 2 for n in range(1, 16, 2)),  # a sine with a faint 3rd (-19 dB) and 5th
    "square": tuple(1 / n for n in range(1, 16, 2)),         # much brighter: the 3rd at -9.5 dB
}
HARMONIC_CEILING_HZ = 7500.0
SCENE_KINDS = ("speech", "tones")
# event lengths and spacing (s); the margin keeps events clear of speech
BEEP_SECONDS = (0.25, 0.5)
MARKER_SECONDS = (0.2, 0.35)
EVENT_GAP_SECONDS = (0.15, 0.3)
SPEECH_MARGIN_SECONDS = (0.2, 0.35)
LEVEL_JITTER_DB = 3.0
MAX_EVENTS_PER_GAP = 2
# the speech audio under an event must be silent: at most this peak amplitude
SILENCE_PEAK = 1e-3
RAMP_SECONDS = 0.01
TRAIN_ONLY_FAMILIES = ("read_at",)
TURN_FAMILIES = ("after_turn",)  # need speaker turns: not asked of tone scenes
_SPLIT_IDS = {"train": 0, "validation": 1, "test": 2}
_LAB_STREAM = 15  # keeps the lab's generators apart from ``tgsr data synth``'s
_STREAMS = {"speech": _LAB_STREAM, "tones": 16}  # and tone scenes apart from speech scenes
_READ_AT_STREAM = 3  # held-out read_at questions draw apart from qa.jsonl's (stream 2), which stay as they were


# ================================================================ scene records

@dataclass
class LabEvent:
    """One non-speech event of a scene. ``pitch_hz`` is None for the noise burst."""

    kind: str            # "beep" | "marker"
    start: float
    end: float
    level_db: float      # RMS relative to the speech level (TARGET_RMS)
    pitch_hz: float | None = None
    envelope: str = "flat"
    timbre: str = "sine"  # a key of TIMBRES (beeps only)

    @property
    def pitch_index(self) -> int:
        return PITCHES_HZ.index(self.pitch_hz)


@dataclass
class LabTurn:
    """A speaker turn: ``speaker`` is the 0-based order of first appearance, ``nth`` the
    speaker's own turn count (0 = first), ``of`` how many turns the speaker takes."""

    speaker: int
    nth: int
    of: int
    start: float
    end: float

    @property
    def name(self) -> str:
        return turn_name(ordinal_speaker(self.speaker), self.of, self.nth)


@dataclass
class Scene:
    clip_id: str
    split: str
    audio: str
    duration: float
    turns: list[LabTurn]
    events: list[LabEvent]
    voices: list[dict] = field(default_factory=list)
    kind: str = "speech"  # one of SCENE_KINDS

    @property
    def beeps(self) -> list[LabEvent]:
        return [e for e in self.events if e.kind == "beep"]

    @property
    def marker(self) -> LabEvent:
        return next(e for e in self.events if e.kind == "marker")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "Scene":
        return cls(clip_id=d["clip_id"], split=d["split"], audio=d["audio"], duration=float(d["duration"]),
                   turns=[LabTurn(**t) for t in d["turns"]], events=[LabEvent(**e) for e in d["events"]],
                   voices=list(d.get("voices", [])), kind=d.get("kind", "speech"))


def _r(x: float) -> float:
    return round(float(x), 3)


# ================================================================ synthesis of the events

def _ramped(n: int, envelope: str) -> np.ndarray:
    """Amplitude shape of an event: 10 ms raised-cosine ramps (no clicks), then ``envelope``."""
    t = np.arange(n) / SAMPLE_RATE
    shape = np.ones(n) if envelope == "flat" else np.exp(-t / max(t[-1], 1e-3) * np.log(1 / 0.3))
    r = min(int(RAMP_SECONDS * SAMPLE_RATE), n // 2)
    if r:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(r) / r)
        shape[:r] *= ramp
        shape[-r:] *= ramp[::-1]
    return shape


def _at_level(x: np.ndarray, level_db: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(x ** 2)))
    return x * (TARGET_RMS * 10 ** (level_db / 20) / rms) if rms > 0 else x


def beep_audio(pitch_hz: float, seconds: float, level_db: float, envelope: str, timbre: str = "sine") -> np.ndarray:
    """A tone at ``pitch_hz`` (partials in phase 0) of ``timbre`` (``TIMBRES``) with the event
    envelope, at ``level_db`` re the speech RMS."""
    n = int(round(seconds * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    x = sum(a * np.sin(2 * np.pi * (2 * k + 1) * pitch_hz * t) for k, a in enumerate(TIMBRES[timbre])
            if (2 * k + 1) * pitch_hz <= HARMONIC_CEILING_HZ)
    return _at_level(x * _ramped(n, envelope), level_db).astype(np.float32)


def marker_audio(seconds: float, level_db: float, rng: np.random.Generator) -> np.ndarray:
    """Noise band-limited to ``MARKER_BAND_HZ`` (zeroed FFT bins outside the band)."""
    n = int(round(seconds * SAMPLE_RATE))
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spec[(freqs < MARKER_BAND_HZ[0]) | (freqs > MARKER_BAND_HZ[1])] = 0
    x = np.fft.irfft(spec, n) * _ramped(n, "flat")
    return _at_level(x, level_db).astype(np.float32)


# ================================================================ voices

def lab_voice_pools(configs: list[VoiceConfig], seed: int) -> dict[str, list[VoiceConfig]]:
    """Three disjoint voice pools: ``split_configs``'s training voices, and its test voices
    halved into validation and test within each (engine, voice type, rate level) group."""
    base = split_configs(configs, seed)
    groups: dict[tuple, list[VoiceConfig]] = {}
    for c in base["test"]:
        groups.setdefault((c.voice.engine, c.vtype, c.rate_level), []).append(c)
    out: dict[str, list[VoiceConfig]] = {"train": list(base["train"]), "validation": [], "test": []}
    for key in sorted(groups):
        members = sorted(groups[key], key=lambda c: c.voice.key)
        order = np.random.default_rng([seed, 104729, key[1], key[2], len(members)]).permutation(len(members))
        for rank, i in enumerate(order):
            out["validation" if rank % 2 else "test"].append(members[int(i)])
    return out


# ================================================================ one scene

def _gap_counts(rng: np.random.Generator, n_gaps: int, n_events: int) -> list[int]:
    """How many events go into each silence (lead-in, between turns, tail), at most
    ``MAX_EVENTS_PER_GAP`` each."""
    if n_gaps * MAX_EVENTS_PER_GAP < n_events:
        raise SynthesisError(f"{n_gaps} silences cannot hold {n_events} events")
    while True:
        counts = np.bincount(rng.integers(0, n_gaps, size=n_events), minlength=n_gaps)
        if counts.max() <= MAX_EVENTS_PER_GAP:
            return [int(c) for c in counts]


def _lab_turns(clip: Clip) -> list[LabTurn]:
    totals = Counter(t.speaker for t in clip.turns)
    seen: Counter = Counter()
    out = []
    for t in clip.turns:
        out.append(LabTurn(t.speaker, seen[t.speaker], totals[t.speaker], _r(t.start), _r(t.end)))
        seen[t.speaker] += 1
    return out


def make_scene(split: str, index: int, seed: int, pool: list[VoiceConfig], engines: dict, items, places, *,
               max_turns: int) -> tuple[Scene, np.ndarray]:
    """Plan a dialogue, widen the silences that will hold events, render it, lay the events in."""
    rng = np.random.default_rng([int(seed), _LAB_STREAM, _SPLIT_IDS[split], int(index), 0])
    clip_id = f"lab-{split}-{index:05d}"
    plan = plan_clip(rng, clip_id, pool=pool, items=items, places=places, max_turns=max_turns)
    n_turns = len(plan.turns)
    # event order: four beeps and the burst, the burst neither first nor last
    marker_pos = int(rng.integers(1, N_BEEPS))
    pitches = [PITCHES_HZ[int(i)] for i in rng.permutation(N_BEEPS)]
    kinds = ["beep"] * N_BEEPS
    kinds.insert(marker_pos, "marker")
    lengths = [float(rng.uniform(*(MARKER_SECONDS if k == "marker" else BEEP_SECONDS))) for k in kinds]
    levels = [float(rng.uniform(-LEVEL_JITTER_DB, LEVEL_JITTER_DB)) for _ in kinds]
    envelopes = [ENVELOPES[int(rng.integers(len(ENVELOPES)))] for _ in kinds]
    counts = _gap_counts(rng, n_turns + 1, len(kinds))
    # silence j precedes turn j (j = n_turns is the tail); widen the ones that hold events
    layout, k = [], 0
    for j, c in enumerate(counts):
        lead = float(rng.uniform(*SPEECH_MARGIN_SECONDS))
        offsets, cursor = [], lead
        for m in range(c):
            if m:
                cursor += float(rng.uniform(*EVENT_GAP_SECONDS))
            offsets.append(cursor)
            cursor += lengths[k + m]
        width = cursor + float(rng.uniform(*SPEECH_MARGIN_SECONDS)) if c else None
        layout.append((list(range(k, k + c)), offsets, width))
        k += c
        if width is not None:
            if j < n_turns:
                plan.pauses[j] = width
            else:
                plan.tail = width
    clip = render_clip(plan, engines)
    audio = clip.audio.copy()
    marker_rng = np.random.default_rng([int(seed), _LAB_STREAM, _SPLIT_IDS[split], int(index), 1])
    events: list[LabEvent | None] = [None] * len(kinds)
    beep_i = 0
    for j, (members, offsets, width) in enumerate(layout):
        if not members:
            continue
        # the silence of width ``width`` ends where turn j's audio begins, at or before the
        # turn's first word; the tail silence ends the clip
        end_of_silence = clip.turns[j].start if j < n_turns else clip.duration
        begin = end_of_silence - width
        for e, off in zip(members, offsets):
            a = int(round((begin + off) * SAMPLE_RATE))
            if kinds[e] == "beep":
                pitch = pitches[beep_i]
                beep_i += 1
                x = beep_audio(pitch, lengths[e], levels[e], envelopes[e])
            else:
                pitch = None
                x = marker_audio(lengths[e], levels[e], marker_rng)
            b = a + x.size
            if a < 0 or b > audio.size or np.abs(clip.audio[a:b]).max(initial=0.0) > SILENCE_PEAK:
                raise SynthesisError(f"{clip_id}: event {e} would overlap speech")
            audio[a:b] += x
            events[e] = LabEvent(kinds[e], _r(a / SAMPLE_RATE), _r(b / SAMPLE_RATE), round(levels[e], 2), pitch,
                                 envelopes[e] if kinds[e] == "beep" else "flat")
    voices = [{"speaker": s.index, "key": s.config.voice.key, "voice_type": s.config.vtype,
               "rate_level": s.config.rate_level} for s in clip.speakers]
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    scene = Scene(clip_id, split, "", _r(audio.size / SAMPLE_RATE), _lab_turns(clip), list(events), voices)
    return scene, audio


# ================================================================ question families

def _event_claim(scene: Scene, e: LabEvent, text: str) -> Claim:
    return Claim(text, cite(e.start, e.end, scene.duration))


def _pitch_draft(family: str, question: str, beep: LabEvent, claims: list[Claim], meta: dict) -> Draft:
    name = PITCH_NAMES[beep.pitch_index]
    return Draft(family, question, name, [p for p in PITCH_NAMES if p != name], claims, meta)


def _neighbours(scene: Scene) -> tuple[int, int, int]:
    """Indices (in ``scene.events``) of the beep before the burst, the burst, the beep after."""
    m = next(i for i, e in enumerate(scene.events) if e.kind == "marker")
    return m - 1, m, m + 1


def q_after_marker(scene: Scene, rng: np.random.Generator) -> Draft:
    _, m, after = _neighbours(scene)
    beep = scene.events[after]
    return _pitch_draft("after_marker", "What is the pitch of the first beep after the noise burst?", beep,
                        [_event_claim(scene, scene.events[m], "the noise burst sounds"),
                         _event_claim(scene, beep, f"the next beep is {PITCH_NAMES[beep.pitch_index]}")],
                        {"asked_event": after})


def q_before_marker(scene: Scene, rng: np.random.Generator) -> Draft:
    before, m, _ = _neighbours(scene)
    beep = scene.events[before]
    return _pitch_draft("before_marker", "What is the pitch of the last beep before the noise burst?", beep,
                        [_event_claim(scene, beep, f"a {PITCH_NAMES[beep.pitch_index]} beep sounds"),
                         _event_claim(scene, scene.events[m], "then the noise burst follows")],
                        {"asked_event": before})


def q_after_turn(scene: Scene, rng: np.random.Generator) -> Draft | None:
    cands = [(ti, next(i for i, e in enumerate(scene.events) if e.kind == "beep" and e.start >= t.end))
             for ti, t in enumerate(scene.turns)
             if any(e.kind == "beep" and e.start >= t.end for e in scene.events)]
    if not cands:
        return None
    ti, ei = cands[int(rng.integers(len(cands)))]
    turn, beep = scene.turns[ti], scene.events[ei]
    return _pitch_draft("after_turn", f"What is the pitch of the first beep after {turn.name}?", beep,
                        [Claim(f"{turn.name} is heard", cite(turn.start, turn.end, scene.duration)),
                         _event_claim(scene, beep, f"the first beep after it is {PITCH_NAMES[beep.pitch_index]}")],
                        {"asked_event": ei, "turn": ti})


def q_ordinal_beep(scene: Scene, rng: np.random.Generator) -> Draft:
    k = int(rng.integers(N_BEEPS))
    ei = [i for i, e in enumerate(scene.events) if e.kind == "beep"][k]
    beep = scene.events[ei]
    return _pitch_draft("ordinal_beep", f"What is the pitch of the {ORDINALS[k]} beep?", beep,
                        [_event_claim(scene, beep, f"the {ORDINALS[k]} beep is {PITCH_NAMES[beep.pitch_index]}")],
                        {"asked_event": ei, "ordinal": k})


def q_compare_marker(scene: Scene, rng: np.random.Generator) -> Draft:
    before, m, after = _neighbours(scene)
    b, a = scene.events[before], scene.events[after]
    answer = COMPARE_OPTIONS[int(a.pitch_hz > b.pitch_hz)]
    return Draft("compare_marker",
                 "Is the first beep after the noise burst lower or higher than the last beep before it?",
                 answer, [o for o in COMPARE_OPTIONS if o != answer],
                 [_event_claim(scene, b, f"a {PITCH_NAMES[b.pitch_index]} beep sounds"),
                  _event_claim(scene, scene.events[m], "then the noise burst"),
                  _event_claim(scene, a, f"then a {PITCH_NAMES[a.pitch_index]} beep, {answer} than the first")],
                 {"asked_event": after, "compared_event": before})


def q_read_at(scene: Scene, rng: np.random.Generator, event: int | None = None) -> Draft:
    """The pitch at a given span: of beep ``event`` (an index in ``scene.events``), or of a random one."""
    beeps = [i for i, e in enumerate(scene.events) if e.kind == "beep"]
    ei = beeps[int(rng.integers(len(beeps)))] if event is None else event
    beep = scene.events[ei]
    span = cite(beep.start, beep.end, scene.duration)
    where = format_span(*span)
    return _pitch_draft("read_at", f"What is the pitch of the beep {where[0].lower()}{where[1:]}?", beep,
                        [Claim(f"the beep there is {PITCH_NAMES[beep.pitch_index]}", span)],
                        {"asked_event": ei})


LAB_FAMILIES: dict[str, Callable[[Scene, np.random.Generator], Draft | None]] = {
    "after_marker": q_after_marker,
    "before_marker": q_before_marker,
    "after_turn": q_after_turn,
    "ordinal_beep": q_ordinal_beep,
    "compare_marker": q_compare_marker,
    "read_at": q_read_at,
}


def natural_choices(family: str) -> list[str]:
    """The options of a family, in their natural order (low to high)."""
    return list(COMPARE_OPTIONS if family == "compare_marker" else PITCH_NAMES)


def scene_questions(scene: Scene, families, rng: np.random.Generator, *,
                    read_at_every_beep: bool = False) -> list[QAExample]:
    """One question per family the scene supports. Options in natural order: the gold letter is
    the pitch rank (or lower/higher), uniform because pitches are a random permutation.
    ``read_at_every_beep`` asks ``read_at`` once per beep (ids ``-read_at0`` .. ``-read_at3``, in
    time order) instead of once about a random beep: four rows per scene, every pitch once."""
    out = []
    for family in families:
        if family == "read_at" and read_at_every_beep:
            beeps = [i for i, e in enumerate(scene.events) if e.kind == "beep"]
            out.extend(_qa_example(scene, q_read_at(scene, rng, ei), f"{scene.clip_id}-read_at{k}")
                       for k, ei in enumerate(beeps))
            continue
        draft = LAB_FAMILIES[family](scene, rng)
        if draft is not None:
            out.append(_qa_example(scene, draft, f"{scene.clip_id}-{family}"))
    return out


def _qa_example(scene: Scene, draft: Draft, item_id: str) -> QAExample:
    family = draft.task
    choices = natural_choices(family)
    letter = LETTERS[choices.index(draft.answer)]
    grounded, plain = rationales(draft, choices, letter)
    evidence = [c.span for c in draft.claims if c.span is not None]
    pointer = pointer_citations(scene, family, draft.meta, draft.answer, evidence)
    return QAExample(
        id=item_id, audio=scene.audio, question=draft.question, choices=choices,
        answer=letter, duration=scene.duration, answer_text=draft.answer,
        evidence=[(float(a), float(b)) for a, b in evidence], task=family, category="lab", source=SOURCE,
        split=scene.split, rationale=grounded, rationale_plain=plain,
        meta={"family": family, **draft.meta, **pointer, "scene_kind": scene.kind,
              "scene": {"turns": [asdict(t) for t in scene.turns], "events": [asdict(e) for e in scene.events]}})


def pointer_citations(scene: Scene, task: str, meta: Mapping, answer: str,
                      evidence: list[tuple[float, float]]) -> dict:
    """Which evidence span points at the asked beep (``pointer``), and the counterfactual
    citations: each other beep's span with the answer it implies, where that answer differs.

    ``tgsr.analysis.citation_following`` teacher-forces these in place of the pointer's span.
    In ``read_at`` the question states the span too, so a counterfactual citation contradicts
    the question: an answer that follows it reads at the model's own citation, one that stays
    with the gold answer reads at the question's time."""
    asked = scene.events[meta["asked_event"]]
    span = cite(asked.start, asked.end, scene.duration)
    out = {"pointer": [tuple(x) for x in evidence].index(span), "counterfactuals": []}
    compared = scene.events[meta["compared_event"]] if "compared_event" in meta else None
    for e in scene.beeps:
        if e is asked or e is compared:
            continue
        if compared is not None:
            implied = COMPARE_OPTIONS[int(e.pitch_hz > compared.pitch_hz)]
        else:
            implied = PITCH_NAMES[e.pitch_index]
        if implied != answer:
            out["counterfactuals"].append({"span": list(cite(e.start, e.end, scene.duration)),
                                           "answer": LETTERS[natural_choices(task).index(implied)]})
    return out


def scene_sta(scene: Scene) -> list[StaExample]:
    """Stage-1 targets of a scene: every event named by what it is ("the noise burst"), by its
    rank among the beeps ("the third beep") and by its pitch ("the high beep"), and every turn
    named by speaker order ("the second speaker's turn"); each name is unique in its clip."""
    rows = []

    def add(key: str, phrase: str, start: float, end: float, granularity: str) -> None:
        rows.append(StaExample(id=f"{scene.clip_id}-{key}", audio=scene.audio, phrase=phrase, start=start, end=end,
                               source=SOURCE, clip_id=scene.clip_id, duration=scene.duration,
                               granularity=granularity))

    m = scene.marker
    add("burst", "the noise burst", m.start, m.end, "event")
    for k, e in enumerate(scene.beeps):
        add(f"beep{k}", f"the {ORDINALS[k]} beep", e.start, e.end, "event")
        add(f"pitch{e.pitch_index}", f"the {PITCH_NAMES[e.pitch_index]} beep", e.start, e.end, "event")
    for i, t in enumerate(scene.turns):
        add(f"turn{i}", t.name, t.start, t.end, "turn")
    return rows


# ================================================================ the lab corpus

@dataclass
class LabSummary:
    out_dir: str
    clips: dict[str, int] = field(default_factory=dict)
    qa: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    text_baseline: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)


def default_families(split: str, scenes: str = "speech") -> tuple[str, ...]:
    return tuple(f for f in LAB_FAMILIES if (split == "train" or f not in TRAIN_ONLY_FAMILIES)
                 and not (scenes == "tones" and f in TURN_FAMILIES))


def _scene_maker(scenes: str, seed: int, max_turns: int,
                 tone_slot_jitter: float | None = None) -> Callable[[str, int], tuple[Scene, np.ndarray]]:
    """``(split, index) -> (scene, audio)`` for a scene kind."""
    if scenes == "tones":
        from .lab_tones import make_tone_scene

        return lambda split, i: make_tone_scene(split, i, seed, tone_slot_jitter)
    items, places = lexicon(None)
    engine = get_engine("espeak")
    pools = lab_voice_pools(engine_configs(engine), seed)
    return lambda split, i: make_scene(split, i, seed, pools[split], {"espeak": engine}, items, places,
                                       max_turns=max_turns)


def make_lab(out_dir: str | Path, sizes: Mapping[str, int], seed: int = 0, *, max_turns: int = 3,
             families: Mapping[str, tuple[str, ...]] | None = None, first_clip: Mapping[str, int] | None = None,
             read_at_splits: tuple[str, ...] = (), scenes: str = "speech", read_at_every_beep: bool = False,
             tone_slot_jitter: float | None = None, progress: bool = True) -> LabSummary:
    """Write the lab corpus (see the module docstring). ``sizes`` maps split -> number of clips;
    clip ``i`` of a split depends only on (seed, split, i), and ``first_clip`` starts a split at a
    later index (fresh scenes with the same voices). ``read_at_splits`` (held-out splits) also get
    ``read_at.jsonl``: one ``read_at`` question per scene, to measure whether a model reads the
    pitch at a given span on voices it never heard. ``scenes`` is the scene kind
    (``SCENE_KINDS``); ``read_at_every_beep`` asks ``read_at`` of every beep of a scene (train
    ``qa.jsonl`` and ``read_at.jsonl``), four rows per scene instead of one. ``tone_slot_jitter``
    (tone scenes only) lays the events out in slots (``tgsr.data.lab_tones``)."""
    if scenes not in SCENE_KINDS:
        raise TgsrError(f"unknown scene kind {scenes!r}; choose from {', '.join(SCENE_KINDS)}")
    unknown = [s for s in sizes if s not in SPLITS]
    if unknown:
        raise TgsrError(f"unknown lab splits {unknown}; expected {', '.join(SPLITS)}")
    if any(int(n) < 0 for n in sizes.values()):
        raise TgsrError(f"split sizes must be >= 0, got {dict(sizes)}")
    if max_turns < 2:
        raise TgsrError(f"max_turns must be at least 2, got {max_turns}")
    if tone_slot_jitter is not None and (scenes != "tones" or not tone_slot_jitter >= 0):
        raise TgsrError(f"tone_slot_jitter {tone_slot_jitter}: a slotted layout needs tone scenes and a jitter "
                        f">= 0 seconds")
    bad_read_at = [s for s in read_at_splits if s not in sizes or s == "train"]
    if bad_read_at:
        raise TgsrError(f"read_at_splits {bad_read_at}: name held-out splits being built "
                        f"({', '.join(s for s in sizes if s != 'train') or 'none'}); train already asks read_at")
    fams = {s: tuple((families or {}).get(s) or default_families(s, scenes)) for s in sizes}
    for s, fs in fams.items():
        bad = [f for f in fs if f not in LAB_FAMILIES]
        if bad:
            raise TgsrError(f"split {s}: unknown lab families {bad}; choose from {', '.join(LAB_FAMILIES)}")
        if scenes == "tones" and set(fs) & set(TURN_FAMILIES):
            raise TgsrError(f"split {s}: {sorted(set(fs) & set(TURN_FAMILIES))} need speaker turns; "
                            f"tone scenes have none")
    new_scene = _scene_maker(scenes, seed, max_turns, tone_slot_jitter)
    stream = _STREAMS[scenes]
    prefix = "lab" if scenes == "speech" else scenes
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = LabSummary(out_dir=str(out))
    from tqdm.auto import tqdm

    bar = tqdm(total=sum(int(n) for n in sizes.values()), desc="lab scenes", unit="clip", disable=not progress)
    manifest_splits = {}
    qa_by_split: dict[str, list[QAExample]] = {}
    for split, n in sizes.items():
        folder = out / split
        for name in ("qa.jsonl", "read_at.jsonl", "sta.jsonl", "scenes.jsonl", "failures.jsonl"):
            (folder / name).unlink(missing_ok=True)
        if (folder / "audio").is_dir():
            shutil.rmtree(folder / "audio")
        (folder / "audio").mkdir(parents=True)
        made, qa, read_at, failures = [], [], [], []
        first = int((first_clip or {}).get(split, 0))
        for i in range(first, first + int(n)):
            try:
                scene, audio = new_scene(split, i)
            except SynthesisError as e:
                failures.append({"clip_id": f"{prefix}-{split}-{i:05d}", "error": str(e)})
                bar.update(1)
                continue
            wav = (folder / "audio" / f"{scene.clip_id}.wav").resolve()
            save_audio(wav, audio)
            scene.audio = str(wav)
            made.append(scene)
            q_rng = np.random.default_rng([int(seed), stream, _SPLIT_IDS[split], i, 2])
            qa.extend(scene_questions(scene, fams[split], q_rng, read_at_every_beep=read_at_every_beep))
            if split in read_at_splits:
                r_rng = np.random.default_rng([int(seed), stream, _SPLIT_IDS[split], i, _READ_AT_STREAM])
                read_at.extend(scene_questions(scene, ("read_at",), r_rng, read_at_every_beep=read_at_every_beep))
            bar.update(1)
        write_jsonl(folder / "scenes.jsonl", [s.to_dict() for s in made])
        write_jsonl(folder / "qa.jsonl", qa)
        if split in read_at_splits:
            write_jsonl(folder / "read_at.jsonl", read_at)
        write_jsonl(folder / "sta.jsonl", [x for sc in made for x in scene_sta(sc)])
        if failures:
            write_jsonl(folder / "failures.jsonl", failures)
        qa_by_split[split] = read_jsonl(folder / "qa.jsonl", QAExample).records
        summary.clips[split], summary.qa[split], summary.failures[split] = len(made), len(qa), len(failures)
        manifest_splits[split] = {
            "clips": len(made), "failed_clips": len(failures), "first_clip": first, "families": list(fams[split]),
            "audio_seconds": round(sum(s.duration for s in made), 3),
            "qa": dict(sorted(Counter(x.task for x in qa).items())),
            "gold_letters": dict(sorted(Counter(x.answer for x in qa).items())),
            "voices": len({v["key"] for s in made for v in s.voices}),
            "timbres": sorted({e.timbre for s in made for e in s.beeps})}
        if split in read_at_splits:
            manifest_splits[split]["read_at_questions"] = len(read_at)
    bar.close()
    if qa_by_split.get("train") and qa_by_split.get("test"):
        from .text_baseline import text_only_baseline

        summary.text_baseline = text_only_baseline(qa_by_split["train"], qa_by_split["test"]).to_dict()
    summary.manifest = {"source": SOURCE, "scenes": scenes, "read_at_every_beep": read_at_every_beep,
                        "tone_slot_jitter": tone_slot_jitter,
                        "seed": seed, "sizes": dict(sizes), "max_turns": max_turns,
                        "pitches_hz": list(PITCHES_HZ), "pitch_names": list(PITCH_NAMES),
                        "marker_band_hz": list(MARKER_BAND_HZ), "splits": manifest_splits,
                        "text_only_baseline": summary.text_baseline}
    (out / "manifest.json").write_text(json.dumps(summary.manifest, indent=2, sort_keys=True) + "\n",
                                       encoding="utf-8")
    return summary


def read_scenes(path: str | Path) -> list[Scene]:
    """Scenes from ``scenes.jsonl``; a malformed line raises with the file and line."""
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(Scene.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError) as e:
            raise TgsrError(f"{path}:{n}: not a lab scene ({type(e).__name__}: {e})") from None
    return out


__all__ = ["LAB_FAMILIES", "TRAIN_ONLY_FAMILIES", "TURN_FAMILIES", "SCENE_KINDS", "TIMBRES",
           "PITCHES_HZ", "PITCH_NAMES", "COMPARE_OPTIONS", "MARKER_BAND_HZ",
           "SPLITS", "LabEvent", "LabTurn", "Scene", "LabSummary", "make_lab", "make_scene", "scene_questions",
           "lab_voice_pools", "natural_choices", "pointer_citations", "scene_sta", "default_families", "read_scenes",
           "beep_audio", "marker_audio"]
