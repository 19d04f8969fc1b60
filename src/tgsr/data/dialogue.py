"""Compose one synthetic dialogue: plan who says what in which voice, then render the audio.

A plan is drawn from a seeded generator, so the same seed gives the same clip. Speakers are
numbered by order of first appearance ("the second speaker" is the second voice heard). The
first two speakers play the two roles of a scenario (plumber and customer ...) and each says
at least one line that only that role would say; the other sentences carry an intent and a
keyword from the lexicon. Rendering speaks every turn with its speaker's voice, normalises
loudness, inserts pauses between turns and records exact word, sentence and turn times.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field

import numpy as np

from ..records import Word
from .acoustics import median_f0, speaking_rate
from .lexicon import GREETINGS, INFO_INTENT, INTENTS, SCENARIOS
from .tts import SynthesisError, tokenize
from .voices import VoiceConfig

SAMPLE_RATE = 16_000
SPEAKER_COUNTS = (2, 3, 4)
TARGET_RMS = 0.08


@dataclass
class SentencePlan:
    text: str
    intent: str | None = None     # an intent label when the sentence carries one
    item: str | None = None
    place: str | None = None
    role: int | None = None       # 0/1: a line of that scenario role


@dataclass
class TurnPlan:
    speaker: int
    sentences: list[SentencePlan]

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.sentences)


@dataclass
class ClipPlan:
    clip_id: str
    n_speakers: int
    voices: list[VoiceConfig]
    scenario: str
    roles: tuple[int, int]        # roles[speaker] for speakers 0 and 1
    turns: list[TurnPlan]
    pauses: list[float]           # silence before each turn (the first is the lead-in)
    tail: float


@dataclass
class Sentence:
    text: str
    start: float
    end: float
    words: list[Word]
    intent: str | None
    item: str | None
    place: str | None
    role: int | None


@dataclass
class Turn:
    index: int
    speaker: int
    start: float
    end: float
    text: str
    sentences: list[Sentence]

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Speaker:
    index: int
    id: str                       # "spk1" ...
    config: VoiceConfig
    f0: float = 0.0               # measured median F0 (Hz)
    rate: float = 0.0             # measured letters per second of speech
    talk_time: float = 0.0        # total seconds of words spoken
    turns: list[int] = field(default_factory=list)


@dataclass
class Clip:
    clip_id: str
    audio: np.ndarray
    duration: float
    speakers: list[Speaker]
    turns: list[Turn]
    scenario: str
    roles: tuple[int, int]

    @property
    def words(self) -> list[Word]:
        return [w for t in self.turns for s in t.sentences for w in s.words]


# ---------------------------------------------------------------- planning

def _speaker_sequence(rng: np.random.Generator, n: int, n_turns: int) -> list[int]:
    """Turn owners: no speaker twice in a row, everyone speaks, numbered by first appearance."""
    for _ in range(1000):
        seq = [int(rng.integers(n))]
        while len(seq) < n_turns:
            choices = [s for s in range(n) if s != seq[-1]]
            seq.append(int(choices[rng.integers(len(choices))]))
        if len(set(seq)) == n:
            relabel: dict[int, int] = {}
            for s in seq:
                relabel.setdefault(s, len(relabel))
            return [relabel[s] for s in seq]
    # unreachable in practice (n_turns > n); fall back to a round robin
    return [i % n for i in range(n_turns)]


def plan_clip(rng: np.random.Generator, clip_id: str, *, pool: list[VoiceConfig], items: tuple[str, ...],
              places: tuple[str, ...], max_turns: int) -> ClipPlan:
    """Draw one dialogue plan."""
    types_available = sorted({c.vtype for c in pool})
    n_max = min(max(SPEAKER_COUNTS), len(types_available))
    if n_max < 2:
        raise SynthesisError("the selected engines offer fewer than two distinct voice types; add espeak")
    n = int(rng.choice([k for k in SPEAKER_COUNTS if k <= n_max]))
    # usually someone speaks twice (at least n + 1 turns), unless max_turns asks for short clips
    low = min(max(n + 1, 4), max(max_turns, n))
    n_turns = int(rng.integers(low, max(max_turns, low) + 1))
    seq = _speaker_sequence(rng, n, n_turns)

    # voices: distinct types in random order (symmetric, so a type says nothing about order)
    speaker_types = [int(t) for t in rng.permutation(types_available)[:n]]
    levels = [int(x) for x in rng.permutation(4)[:n]]
    voices = []
    for k in range(n):
        cands = [c for c in pool if c.vtype == speaker_types[k] and c.rate_level == levels[k]]
        if not cands:
            cands = [c for c in pool if c.vtype == speaker_types[k]]
        # engine first, uniformly, so an engine with few voices is heard as often as espeak
        engines = sorted({c.voice.engine for c in cands})
        engine = engines[int(rng.integers(len(engines)))]
        cands = [c for c in cands if c.voice.engine == engine]
        voices.append(cands[int(rng.integers(len(cands)))])

    scenario = list(SCENARIOS)[int(rng.integers(len(SCENARIOS)))]
    first_role = int(rng.integers(2))
    roles = (first_role, 1 - first_role)
    role_lines = {r: list(rng.permutation(len(SCENARIOS[scenario][r]))) for r in (0, 1)}
    dominant = int(rng.integers(n))  # talks in longer turns, so "who talks longest" is clear
    item_order = [items[i] for i in rng.permutation(len(items))]
    intents = list(INTENTS)

    def role_sentence(speaker: int) -> SentencePlan | None:
        r = roles[speaker]
        if not role_lines[r]:
            return None
        return SentencePlan(SCENARIOS[scenario][r][role_lines[r].pop()], role=r)

    def intent_sentence(intent: str | None = None, item: str | None = None) -> SentencePlan:
        intent = intent or intents[int(rng.integers(len(intents)))]
        templates = INTENTS[intent]
        template = templates[int(rng.integers(len(templates)))]
        if item is None:
            item = item_order.pop(0) if item_order else items[int(rng.integers(len(items)))]
        place = places[int(rng.integers(len(places)))] if "{place}" in template else None
        return SentencePlan(template.format(item=item, place=place), intent=intent, item=item, place=place)

    turns: list[TurnPlan] = []
    seen: set[int] = set()
    for spk in seq:
        first_turn = spk not in seen
        seen.add(spk)
        n_sent = 2 if spk == dominant else 1
        sentences: list[SentencePlan] = []
        if first_turn and spk in (0, 1):
            s = role_sentence(spk)
            if s is not None:
                sentences.append(s)
        elif first_turn and rng.random() < 0.15:
            sentences.append(SentencePlan(GREETINGS[int(rng.integers(len(GREETINGS)))]))
        while len(sentences) < n_sent:
            s = role_sentence(spk) if spk in (0, 1) and rng.random() < 0.25 else None
            sentences.append(s or intent_sentence())
        order = rng.permutation(len(sentences)) if len(sentences) > 1 else [0]
        turns.append(TurnPlan(spk, [sentences[int(i)] for i in order]))
    # every clip states where at least one thing is (content questions need it): turn a random
    # intent sentence into one, so that the position of "giving information" carries no signal
    slots = [(ti, si) for ti, t in enumerate(turns) for si, x in enumerate(t.sentences) if x.intent]
    if slots and not any(turns[ti].sentences[si].intent == INFO_INTENT for ti, si in slots):
        ti, si = slots[int(rng.integers(len(slots)))]
        turns[ti].sentences[si] = intent_sentence(INFO_INTENT, turns[ti].sentences[si].item)
    pauses = [float(rng.uniform(0.2, 0.5))] + [float(rng.uniform(0.3, 1.0)) for _ in range(len(turns) - 1)]
    return ClipPlan(clip_id, n, voices, scenario, roles, turns, pauses, float(rng.uniform(0.2, 0.5)))


# ---------------------------------------------------------------- rendering

def render_clip(plan: ClipPlan, engines: dict, *, noise_snr: float | None = None,
                rng: np.random.Generator | None = None) -> Clip:
    """Speak every turn and lay the turns out in time. Times are exact to the sample."""
    with ExitStack() as stack:
        for engine in engines.values():  # one engine instance per clip where the engine supports it
            if hasattr(engine, "batch"):
                stack.enter_context(engine.batch())
        return _render(plan, engines, noise_snr, rng)


def _render(plan: ClipPlan, engines: dict, noise_snr: float | None, rng: np.random.Generator | None) -> Clip:
    pieces: list[np.ndarray] = []
    turns: list[Turn] = []
    cursor = 0
    speakers = [Speaker(k, f"spk{k + 1}", plan.voices[k]) for k in range(plan.n_speakers)]
    for idx, (turn, pause) in enumerate(zip(plan.turns, plan.pauses)):
        gap = int(round(pause * SAMPLE_RATE))
        pieces.append(np.zeros(gap, np.float32))
        cursor += gap
        voice = plan.voices[turn.speaker].voice
        audio, words = engines[voice.engine].synthesize(turn.text, voice)
        if len(words) != sum(len(tokenize(s.text)) for s in turn.sentences):
            raise SynthesisError(f"{voice.engine} timed {len(words)} words for {turn.text!r}")
        rms = float(np.sqrt(np.mean(audio ** 2))) if audio.size else 0.0
        if rms > 0:
            audio = audio * np.float32(TARGET_RMS / rms)
        offset = cursor / SAMPLE_RATE
        spk = speakers[turn.speaker]
        sentences: list[Sentence] = []
        w = 0
        for sp in turn.sentences:
            k = len(tokenize(sp.text))
            sw = [Word(text=x.text, start=x.start + offset, end=x.end + offset, speaker=spk.id) for x in words[w:w + k]]
            w += k
            sentences.append(Sentence(sp.text, sw[0].start, sw[-1].end, sw, sp.intent, sp.item, sp.place, sp.role))
        turns.append(Turn(idx, turn.speaker, sentences[0].start, sentences[-1].end, turn.text, sentences))
        spk.turns.append(idx)
        pieces.append(audio.astype(np.float32))
        cursor += audio.size
    pieces.append(np.zeros(int(round(plan.tail * SAMPLE_RATE)), np.float32))
    clip_audio = np.concatenate(pieces)
    # measure each speaker's pitch and rate from what was actually synthesized
    for spk in speakers:
        segs = [clip_audio[int(turns[i].start * SAMPLE_RATE):int(np.ceil(turns[i].end * SAMPLE_RATE))]
                for i in spk.turns]
        spk.f0 = median_f0(np.concatenate(segs))
        ws = [x for i in spk.turns for s in turns[i].sentences for x in s.words]
        spk.talk_time = float(sum(x.end - x.start for x in ws))
        spk.rate = speaking_rate([x.text for x in ws], [x.end - x.start for x in ws])
    if noise_snr is not None:
        from ..audio import mix_noise

        clip_audio = mix_noise(clip_audio, float(noise_snr), rng if rng is not None else np.random.default_rng(0))
    clip_audio = np.clip(clip_audio, -1.0, 1.0).astype(np.float32)
    return Clip(plan.clip_id, clip_audio, clip_audio.size / SAMPLE_RATE, speakers, turns, plan.scenario, plan.roles)


__all__ = ["SentencePlan", "TurnPlan", "ClipPlan", "Sentence", "Turn", "Speaker", "Clip", "plan_clip",
           "render_clip", "SAMPLE_RATE"]
