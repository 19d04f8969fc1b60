"""Multiple-choice question families about one rendered dialogue, with evidence and rationales.

Each family function returns a :class:`Draft` (question, gold option text, three distractors
drawn from the gold's own pool, the cited evidence) or ``None`` when the clip cannot support
that question unambiguously. The letter of the gold option is decided afterwards by a
balanced schedule, so letters carry no information either.

Families (``FAMILIES``) and what answering them needs:

* acoustic (voices and timing alone): ``speaker_count``, ``turn_first``, ``turn_last``,
  ``turn_longest``, ``turn_start``, ``fastest``, ``highest_pitch``, and two families answered
  by turn timing alone (no voice identity, options in a fixed order): ``longest_turn`` (which
  turn, first to fourth, is the longest) and ``start_range`` (in which of four fixed time
  ranges the second speaker starts);
* lexical (the words): ``content``, ``who_said``, ``order``, ``intent``, ``relationship``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..prompts import final_answer_line
from ..records import LETTERS
from ..spans import format_span
from .dialogue import Clip, Sentence, Turn
from .lexicon import INTENTS, NUMBER_WORDS, ORDINALS, SCENARIOS, VOICE_TYPES

N_OPTIONS = 4
# answers decided from measurements are only asked when the contrast is clear
CLEAR_RATIO = 1.15
LONGEST_RATIO = 1.2
# time options differ by at least this much (s); small, so that the distractors' values follow
# the answers' distribution closely
MIN_TIME_GAP = 0.3
# ``start_range``: the edges (s) of its four options, the quartiles of when the second speaker
# starts in a 500-dialogue training split (seed 0, at most 4 turns; measured 2.57 / 3.24 / 3.88),
# so that each option is the answer about equally often; starts closer than START_MARGIN to an
# edge are not asked about (the answer would hinge on a few tens of milliseconds)
START_EDGES = (2.6, 3.2, 3.9)
START_MARGIN = 0.1


@dataclass
class Claim:
    """One reasoning step; ``span`` is the audio it cites (None for a conclusion)."""

    text: str
    span: tuple[float, float] | None = None


@dataclass
class Draft:
    task: str
    question: str
    answer: str
    distractors: list[str]
    claims: list[Claim]
    meta: dict = field(default_factory=dict)


def ordinal(k: int) -> str:
    return ORDINALS[k]


def speaker_name(k: int) -> str:
    return f"the {ORDINALS[k]} speaker"


def voice_name(clip: Clip, k: int) -> str:
    return f"the {VOICE_TYPES[clip.speakers[k].config.vtype]}"


def cite(start: float, end: float, duration: float) -> tuple[float, float]:
    """A span on the 10 ms grid that contains [start, end] (citations print 2 decimals)."""
    start, end = round(start, 3), round(end, 3)  # the precision words.jsonl stores
    a = math.floor(start * 100 + 1e-6) / 100
    b = math.ceil(end * 100 - 1e-6) / 100
    return round(max(0.0, a), 2), round(min(b, math.floor(duration * 100 + 1e-6) / 100), 2)  # 4.31 * 100 < 431


def _says(clip: Clip, s: Sentence, who: str) -> Claim:
    return Claim(f'{who} says "{s.text}"', cite(s.start, s.end, clip.duration))


def _pick(rng: np.random.Generator, pool: list[str], exclude: set[str], k: int = N_OPTIONS - 1) -> list[str]:
    cands = sorted(set(pool) - exclude)
    idx = rng.permutation(len(cands))[:k]
    return [cands[int(i)] for i in idx]


def _voice_distractors(clip: Clip, gold_vtype: int) -> list[str]:
    return [f"the {v}" for i, v in enumerate(VOICE_TYPES) if i != gold_vtype]


def _mentions(clip: Clip) -> dict[str, list[tuple[Turn, Sentence]]]:
    """Every sentence that says each keyword (matched in the text, wherever it comes from)."""
    items = sorted({s.item for t in clip.turns for s in t.sentences if s.item})
    out: dict[str, list[tuple[Turn, Sentence]]] = {}
    for item in items:
        pattern = re.compile(rf"\b{re.escape(item)}\b", re.IGNORECASE)
        out[item] = [(t, s) for t in clip.turns for s in t.sentences if pattern.search(s.text)]
    return out


def _first_turn(clip: Clip, k: int) -> Turn:
    return clip.turns[clip.speakers[k].turns[0]]


def _turn_claim(clip: Clip, t: Turn, text: str) -> Claim:
    return Claim(text, cite(t.start, t.end, clip.duration))


# ---------------------------------------------------------------- acoustic families

def q_speaker_count(clip: Clip, rng, pools) -> Draft:
    n = len(clip.speakers)
    claims = [_turn_claim(clip, _first_turn(clip, k), f"a {ordinal(k)} voice starts talking, {voice_name(clip, k)}")
              for k in range(n)]
    claims.append(Claim(f"No other voice appears, so there are {NUMBER_WORDS[n]} different speakers"))
    return Draft("speaker_count", "How many different speakers are there in the conversation?",
                 NUMBER_WORDS[n], [w for w in NUMBER_WORDS[2:6] if w != NUMBER_WORDS[n]], claims)


def q_turn_first(clip: Clip, rng, pools) -> Draft:
    t = clip.turns[0]
    name = voice_name(clip, t.speaker)
    return Draft("turn_first", "Which voice speaks first?", name,
                 _voice_distractors(clip, clip.speakers[t.speaker].config.vtype),
                 [_turn_claim(clip, t, f"{name} opens the conversation"),
                  Claim(f"Nobody speaks before that, so {name} speaks first")])


def q_turn_last(clip: Clip, rng, pools) -> Draft:
    t = clip.turns[-1]
    name = voice_name(clip, t.speaker)
    return Draft("turn_last", "Which voice speaks last?", name,
                 _voice_distractors(clip, clip.speakers[t.speaker].config.vtype),
                 [_turn_claim(clip, t, f"{name} takes the final turn"),
                  Claim(f"Nobody speaks after that, so {name} speaks last")])


def q_turn_longest(clip: Clip, rng, pools) -> Draft | None:
    order = sorted(range(len(clip.speakers)), key=lambda k: -clip.speakers[k].talk_time)
    top, second = clip.speakers[order[0]], clip.speakers[order[1]]
    if top.talk_time < LONGEST_RATIO * second.talk_time:
        return None
    name = voice_name(clip, top.index)
    turns = [clip.turns[i] for i in top.turns]
    claims = [_turn_claim(clip, t, f"{name} talks") for t in turns[:4]]
    claims.append(Claim(f"In total {name} talks for about {top.talk_time:.1f} seconds, "
                        f"longer than any other voice"))
    return Draft("turn_longest", "Which voice talks for the longest time in total?", name,
                 _voice_distractors(clip, top.config.vtype), claims,
                 {"talk_time": {s.id: round(s.talk_time, 3) for s in clip.speakers}})


def _time_option(t: float) -> str:
    return f"at {t:.1f} seconds"


def first_start_pool(clips: list[Clip]) -> dict[int, list[float]]:
    """For each speaker ordinal k, when speaker k first starts talking, over all clips of a split."""
    pool: dict[int, list[float]] = {}
    for c in clips:
        for k in range(1, len(c.speakers)):
            pool.setdefault(k, []).append(round(_first_turn(c, k).start, 1))
    return pool


def q_turn_start(clip: Clip, rng, pools) -> Draft | None:
    n = len(clip.speakers)
    k = int(rng.integers(1, n))
    t = _first_turn(clip, k)
    gold = round(t.start, 1)
    # distractors: when the k-th speaker starts in other clips of the split, so the options
    # of a question are exchangeable and their values say nothing about which one is right
    # (sampled from the multiset, so that distractor values follow the answers' distribution)
    cands = [v for v in pools["first_starts"].get(k, []) if abs(v - gold) >= MIN_TIME_GAP and v < clip.duration - 0.3]
    chosen: list[float] = []
    for i in rng.permutation(len(cands)):
        c = cands[int(i)]
        if all(abs(c - x) >= MIN_TIME_GAP for x in chosen):
            chosen.append(c)
        if len(chosen) == N_OPTIONS - 1:
            break
    if len(chosen) < N_OPTIONS - 1:
        return None
    return Draft("turn_start", f"When does the {ordinal(k)} speaker start talking for the first time?",
                 _time_option(gold), [_time_option(c) for c in chosen],
                 [_turn_claim(clip, t, f"a new voice, {speaker_name(k)}, takes its first turn"),
                  Claim(f"So {speaker_name(k)} starts talking {_time_option(gold)}")],
                 {"speaker": clip.speakers[k].id})


def q_fastest(clip: Clip, rng, pools) -> Draft | None:
    order = sorted(range(len(clip.speakers)), key=lambda k: -clip.speakers[k].rate)
    top, second = clip.speakers[order[0]], clip.speakers[order[1]]
    if top.rate < CLEAR_RATIO * second.rate:
        return None
    name = voice_name(clip, top.index)
    t = clip.turns[top.turns[0]]
    return Draft("fastest", "Which voice speaks the fastest?", name, _voice_distractors(clip, top.config.vtype),
                 [_turn_claim(clip, t, f"{name} speaks quickly"),
                  Claim(f"The other voices speak more slowly, so {name} is the fastest")],
                 {"rate": {s.id: round(s.rate, 2) for s in clip.speakers}})


def q_highest_pitch(clip: Clip, rng, pools) -> Draft | None:
    n = len(clip.speakers)
    order = sorted(range(n), key=lambda k: -clip.speakers[k].f0)
    top, second = clip.speakers[order[0]], clip.speakers[order[1]]
    if second.f0 <= 0 or top.f0 < CLEAR_RATIO * second.f0:
        return None
    # the options are always the first to fourth speaker; the highest voice is more often an
    # early speaker (every clip has a first and a second), so ask only while this ordinal is
    # not ahead of the others: answers stay uniform over the four options
    used = pools["pitch_counts"]
    if used[top.index] >= min(used[k] for k in range(N_OPTIONS)) + 2:
        return None
    used[top.index] += 1
    t = clip.turns[top.turns[0]]
    return Draft("highest_pitch", "Which speaker has the highest-pitched voice?", speaker_name(top.index),
                 [speaker_name(k) for k in range(N_OPTIONS) if k != top.index],
                 [_turn_claim(clip, t, f"{speaker_name(top.index)} speaks with a high voice"),
                  Claim(f"The other voices are lower, so {speaker_name(top.index)} has the highest-pitched voice")],
                 {"f0": {s.id: round(s.f0, 1) for s in clip.speakers}})


def q_longest_turn(clip: Clip, rng, pools) -> Draft | None:
    """Which turn (first to fourth, by position) is the longest? Turn timing alone answers it."""
    turns = clip.turns[:N_OPTIONS]
    if len(clip.turns) > N_OPTIONS or len(turns) < 2:
        return None
    order = sorted(range(len(turns)), key=lambda i: -(turns[i].end - turns[i].start))
    top, second = turns[order[0]], turns[order[1]]
    if top.end - top.start < LONGEST_RATIO * (second.end - second.start):
        return None
    # the options are always the first to fourth turn: keep every position the answer about
    # equally often (skip a clip whose longest position is ahead of the others)
    used = pools["longest_counts"]
    if used[order[0]] >= min(used[k] for k in range(N_OPTIONS)) + 2:
        return None
    used[order[0]] += 1
    name = f"the {ordinal(order[0])} turn"
    return Draft("longest_turn", "Which turn is the longest?", name,
                 [f"the {ordinal(k)} turn" for k in range(N_OPTIONS) if k != order[0]],
                 [_turn_claim(clip, top, f"{name} is the longest one"),
                  Claim(f"Every other turn is shorter, so {name} is the longest")],
                 {"turn_seconds": [round(t.end - t.start, 3) for t in turns]})


def start_range_options(edges: tuple[float, ...] = START_EDGES) -> list[str]:
    """The four time ranges of ``start_range``, earliest first (phrased so that no option reads
    as a cited span: "between X and Y" would)."""
    out = [f"before {edges[0]:.1f} seconds"]
    out += [f"after {a:.1f} but before {b:.1f} seconds" for a, b in zip(edges, edges[1:])]
    return out + [f"after {edges[-1]:.1f} seconds"]


def q_start_range(clip: Clip, rng, pools) -> Draft | None:
    """In which fixed time range does the second speaker start talking? The start of the
    cited turn is the answer: cite the turn, then pick its range."""
    t = _first_turn(clip, 1)
    if min(abs(t.start - e) for e in START_EDGES) < START_MARGIN:
        return None
    k = sum(t.start > e for e in START_EDGES)
    used = pools["range_counts"]
    if used[k] >= min(used[i] for i in range(N_OPTIONS)) + 2:
        return None
    used[k] += 1
    options = start_range_options()
    return Draft("start_range", "When does the second speaker start talking?", options[k],
                 [o for i, o in enumerate(options) if i != k],
                 [_turn_claim(clip, t, f"a new voice, {speaker_name(1)}, takes its first turn"),
                  Claim(f"So {speaker_name(1)} starts talking {options[k]}")],
                 {"start": round(t.start, 3)})


# ---------------------------------------------------------------- lexical families

def q_content(clip: Clip, rng, pools) -> Draft | None:
    counts = _mentions(clip)
    cands = [(t, s) for t in clip.turns for s in t.sentences if s.place and len(counts.get(s.item, [])) == 1]
    if not cands:
        return None
    t, s = cands[int(rng.integers(len(cands)))]
    who = speaker_name(t.speaker)
    gold = f"in the {s.place}"
    return Draft("content", f"Where does {who} say the {s.item} is?", gold,
                 [f"in the {p}" for p in _pick(rng, list(pools["places"]), {s.place})],
                 [_says(clip, s, who), Claim(f"So the {s.item} is {gold}")], {"item": s.item})


def q_who_said(clip: Clip, rng, pools) -> Draft | None:
    counts = _mentions(clip)
    cands = [item for item, ms in counts.items() if len(ms) == 1]
    if not cands:
        return None
    item = sorted(cands)[int(rng.integers(len(cands)))]
    t, s = counts[item][0]
    name = voice_name(clip, t.speaker)
    return Draft("who_said", f"Which voice mentions the {item}?", name,
                 _voice_distractors(clip, clip.speakers[t.speaker].config.vtype),
                 [_says(clip, s, name), Claim(f"So the {item} is mentioned by {name}")], {"item": item})


def q_order(clip: Clip, rng, pools) -> Draft | None:
    counts = _mentions(clip)
    seq = [(t, s) for t in clip.turns for s in t.sentences if s.item]
    pairs = [(a, b) for a, b in zip(seq, seq[1:])
             if len(counts[a[1].item]) == 1 and len(counts[b[1].item]) == 1 and a[1].item != b[1].item]
    if not pairs:
        return None
    (ta, sa), (tb, sb) = pairs[int(rng.integers(len(pairs)))]
    # the asked-about item is a distractor only when the lexicon is too small for three others
    exclude = {sa.item, sb.item} if len(set(pools["items"])) >= N_OPTIONS + 1 else {sb.item}
    return Draft("order", f"Which thing is mentioned right after the {sa.item}?", f"the {sb.item}",
                 [f"the {x}" for x in _pick(rng, list(pools["items"]), exclude)],
                 [_says(clip, sa, speaker_name(ta.speaker)), _says(clip, sb, speaker_name(tb.speaker)),
                  Claim(f"So the {sb.item} is mentioned right after the {sa.item}")],
                 {"item": sa.item})


def q_intent(clip: Clip, rng, pools) -> Draft | None:
    cands = []
    for k, spk in enumerate(clip.speakers):
        for j, ti in enumerate(spk.turns):
            t = clip.turns[ti]
            if len(t.sentences) == 1 and t.sentences[0].intent:
                cands.append((k, j, t))
    if not cands:
        return None
    # every intent label must be the answer about equally often ("giving information" is said
    # more often than the others): prefer the least-asked intent, skip one that is ahead
    used = pools["intent_counts"]
    floor = min(used[label] for label in INTENTS)
    cands = [c for c in cands if used[c[2].sentences[0].intent] < floor + 2]
    if not cands:
        return None
    least = min(used[c[2].sentences[0].intent] for c in cands)
    cands = [c for c in cands if used[c[2].sentences[0].intent] == least]
    k, j, t = cands[int(rng.integers(len(cands)))]
    s = t.sentences[0]
    used[s.intent] += 1
    who = speaker_name(k)
    labels = list(INTENTS)
    return Draft("intent", f"What is {who} doing in their {ordinal(j)} turn?", s.intent,
                 _pick(rng, labels, {s.intent}),
                 [_says(clip, s, who), Claim(f"That is {s.intent}")])


def q_relationship(clip: Clip, rng, pools) -> Draft | None:
    lines = []
    for k in (0, 1):
        for ti in clip.speakers[k].turns:
            role_s = [s for s in clip.turns[ti].sentences if s.role is not None]
            if role_s:
                lines.append((k, role_s[0]))
                break
    if len(lines) < 2:
        return None
    claims = [_says(clip, s, speaker_name(k)) for k, s in lines]
    claims.append(Claim(f"They sound like {clip.scenario}"))
    return Draft("relationship", "What is the most likely relationship between the first two speakers?",
                 clip.scenario, _pick(rng, list(SCENARIOS), {clip.scenario}), claims)


FAMILIES: dict[str, tuple[str, Callable]] = {
    "speaker_count": ("acoustic", q_speaker_count),
    "turn_first": ("acoustic", q_turn_first),
    "turn_last": ("acoustic", q_turn_last),
    "turn_longest": ("acoustic", q_turn_longest),
    "turn_start": ("acoustic", q_turn_start),
    "fastest": ("acoustic", q_fastest),
    "highest_pitch": ("acoustic", q_highest_pitch),
    "content": ("lexical", q_content),
    "who_said": ("lexical", q_who_said),
    "order": ("lexical", q_order),
    "intent": ("lexical", q_intent),
    "relationship": ("lexical", q_relationship),
    # added after the others, so that adding them changed no earlier family's questions
    "longest_turn": ("acoustic", q_longest_turn),
    "start_range": ("acoustic", q_start_range),
}


class LetterSchedule:
    """Gold letters in shuffled blocks of a, b, c, d: exactly balanced every four questions."""

    def __init__(self, rng: np.random.Generator, n_options: int = N_OPTIONS):
        self._rng, self._n, self._block = rng, n_options, []

    def next(self) -> int:
        if not self._block:
            self._block = [int(i) for i in self._rng.permutation(self._n)]
        return self._block.pop()


def arrange(draft: Draft, gold_index: int, rng: np.random.Generator) -> list[str]:
    """The option list with the gold answer at ``gold_index`` and distractors shuffled around it."""
    if len(draft.distractors) != N_OPTIONS - 1 or draft.answer in draft.distractors:
        raise ValueError(f"{draft.task}: need {N_OPTIONS - 1} distractors different from the answer")
    others = [draft.distractors[int(i)] for i in rng.permutation(len(draft.distractors))]
    return others[:gold_index] + [draft.answer] + others[gold_index:]


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def rationales(draft: Draft, choices: list[str], letter: str) -> tuple[str, str]:
    """(grounded, plain): the same reasoning with and without timestamp citations."""
    grounded, plain = [], []
    for c in draft.claims:
        text = c.text if c.text.endswith(('."', '?"', '!"')) else c.text + "."  # a quote ends the sentence
        plain.append(_capital(text))
        grounded.append(f"{format_span(*c.span)}, {text}" if c.span else _capital(text))
    final = final_answer_line(letter, choices)
    return "\n".join(grounded + [final]), "\n".join(plain + [final])


def evidence(draft: Draft) -> list[tuple[float, float]]:
    return [c.span for c in draft.claims if c.span is not None]


def timing_counterfactuals(task: str, choices: list[str], answer: str, evidence: list,
                           duration: float) -> dict | None:
    """``{"pointer": 0, "counterfactuals": [...]}`` for a ``turn_start`` or ``start_range``
    question (``tgsr.analysis.citation_following`` reads them from ``QAExample.meta``), or None
    for other families.

    In these families the answer is the start of the cited turn, so the citation is the pointer:
    a counterfactual citation has the cited turn's length and starts at another option's time
    (``turn_start``) or in the middle of another option's range (``start_range``), and implies
    that option. An answer that reads its citation follows it; one that ignores it does not.
    ``choices`` and the gold letter ``answer`` are the question's final ones."""
    if task not in ("turn_start", "start_range") or not evidence:
        return None
    start, end = (float(x) for x in evidence[0])
    length = end - start
    if task == "turn_start":
        starts = {c: float(re.fullmatch(r"at (\d+(?:\.\d+)?) seconds", c).group(1)) for c in choices}
    else:
        edges = (START_EDGES[0] - 0.6, *START_EDGES, START_EDGES[-1] + 0.6)
        ranges = start_range_options()
        starts = {c: (edges[ranges.index(c)] + edges[ranges.index(c) + 1]) / 2 for c in choices}
    gold = choices[LETTERS.index(answer)]
    out = []
    for letter, c in zip(LETTERS, choices):
        if c == gold or starts[c] + 0.1 >= duration:
            continue
        out.append({"span": list(cite(starts[c], min(starts[c] + length, duration), duration)), "answer": letter})
    return {"pointer": 0, "counterfactuals": out} if out else None


__all__ = ["FAMILIES", "first_start_pool", "start_range_options", "START_EDGES", "Claim", "Draft", "LetterSchedule",
           "arrange", "rationales", "evidence",
           "timing_counterfactuals", "cite", "speaker_name", "voice_name", "N_OPTIONS", "LETTERS"]
