"""``tgsr data synth``: a spoken-dialogue corpus whose timings are known exactly.

``synthesize(out_dir, n_train, n_test, seed)`` writes, for each split::

    DIR/<split>/audio/<clip_id>.wav   16 kHz mono PCM16, at most ``max_seconds`` long
    DIR/<split>/words.jsonl           ClipWords: words and turns with start, end, speaker
    DIR/<split>/sta.jsonl             StaExample: Stage-1 targets, phrase level and turn level
    DIR/<split>/qa.jsonl              QAExample: 4-option questions with evidence and rationales
    DIR/<split>/voices.jsonl          the voice configuration of every speaker of every clip
    DIR/<split>/failures.jsonl        clips that could not be made (only when there are any)
    DIR/manifest.json                 options, counts, letter balance and the text-only check

Determinism: every clip draws from its own generator seeded by (seed, split, index), espeak
runs on a freshly loaded library per utterance, floats are rounded before they are written
and nothing depends on the wall clock, so the same options give byte-identical files.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..audio import save_audio
from ..errors import TgsrError
from ..records import LETTERS, ClipWords, QAExample, StaExample, Utterance, Word, read_jsonl, write_jsonl
from .dialogue import Clip, plan_clip, render_clip
from .lexicon import ORDINALS, lexicon
from .questions import FAMILIES, LetterSchedule, arrange, evidence, first_start_pool, rationales
from .text_baseline import text_only_baseline
from .tts import SynthesisError, get_engine, tokenize
from .voices import engine_configs, split_configs

SPLITS = ("train", "test")
SOURCE = "tgsr-synth"
_SPLIT_IDS = {"train": 0, "test": 1}


@dataclass
class SynthOptions:
    engines: tuple[str, ...] = ("espeak",)
    noise_snr: float | None = None
    vocab_size: int | None = None
    families: tuple[str, ...] = tuple(FAMILIES)
    phrases_per_clip: int = 3
    phrase_words: tuple[int, int] = (2, 4)
    turns_per_clip: int = 2
    max_turns: int = 8
    max_seconds: float = 30.0

    def to_dict(self) -> dict:
        return {"engines": list(self.engines), "noise_snr": self.noise_snr, "vocab_size": self.vocab_size,
                "families": list(self.families), "phrases_per_clip": self.phrases_per_clip,
                "phrase_words": list(self.phrase_words), "turns_per_clip": self.turns_per_clip,
                "max_turns": self.max_turns, "max_seconds": self.max_seconds}


@dataclass
class SynthSummary:
    out_dir: str
    clips: dict[str, int] = field(default_factory=dict)
    audio_seconds: dict[str, float] = field(default_factory=dict)
    qa: dict[str, int] = field(default_factory=dict)
    sta: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    text_baseline: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)


def _r(x: float) -> float:
    """Times are written in seconds with 3 decimals (1 ms): exact for every engine used."""
    return round(float(x), 3)


def _clip_rng(seed: int, split: str, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), _SPLIT_IDS[split], int(index), int(stream)])


# ---------------------------------------------------------------- records of one clip

def clip_words(clip: Clip, audio_path: str, backend: str) -> ClipWords:
    words = [Word(w.text, _r(w.start), _r(w.end), speaker=w.speaker) for w in clip.words]
    utts = [Utterance(t.text, _r(t.start), _r(t.end), speaker=clip.speakers[t.speaker].id) for t in clip.turns]
    return ClipWords(clip_id=clip.clip_id, audio=audio_path, duration=_r(clip.duration), words=words,
                     utterances=utts, source=SOURCE, backend=backend)


def turn_referent(clip: Clip, turn_index: int, by_voice: bool) -> str:
    """A speaker turn named without its words: "the second speaker's turn", "the deep male voice's first turn"."""
    t = clip.turns[turn_index]
    spk = clip.speakers[t.speaker]
    from .lexicon import VOICE_TYPES

    owner = f"the {VOICE_TYPES[spk.config.vtype]}" if by_voice else ordinal_speaker(t.speaker)
    return turn_name(owner, len(spk.turns), spk.turns.index(turn_index))


def ordinal_speaker(index: int) -> str:
    """Speaker ``index`` (0-based, in order of first appearance) named by position: "the second speaker"."""
    return f"the {ORDINALS[index]} speaker"


def turn_name(owner: str, speaker_turns: int, nth: int) -> str:
    """A speaker's ``nth`` turn (0-based): "<owner>'s turn" when it is their only one, else "<owner>'s second turn"."""
    return f"{owner}'s turn" if speaker_turns == 1 else f"{owner}'s {ORDINALS[nth]} turn"


def sta_examples(clip: Clip, audio_path: str, rng: np.random.Generator, opts: SynthOptions) -> list[StaExample]:
    out: list[StaExample] = []
    duration = _r(clip.duration)
    # phrase level (the paper's Stage 1): contiguous words inside one clause (no comma inside),
    # unique in the clip
    sentences = [s for t in clip.turns for s in t.sentences]
    texts = [" ".join(w.text for w in s.words) for s in sentences]
    clauses = []
    for s in sentences:
        start = 0
        for j, (_, _, end) in enumerate(tokenize(s.text)):
            if s.text[end - 1] in ",;:" or j == len(s.words) - 1:
                clauses.append(s.words[start:j + 1])
                start = j + 1
    lo, hi = opts.phrase_words
    seen: set[str] = set()
    for _ in range(opts.phrases_per_clip * 6):
        if len([x for x in out if x.granularity == "phrase"]) >= opts.phrases_per_clip:
            break
        clause = clauses[int(rng.integers(len(clauses)))]
        k = int(rng.integers(lo, hi + 1))
        if len(clause) < k:
            continue
        a = int(rng.integers(0, len(clause) - k + 1))
        ws = clause[a:a + k]
        phrase = " ".join(w.text for w in ws)
        if phrase in seen or sum(f" {phrase} " in f" {t} " for t in texts) != 1:
            continue  # ambiguous: the phrase is said more than once
        seen.add(phrase)
        out.append(StaExample(id=f"{clip.clip_id}-p{len(out)}", audio=audio_path, phrase=phrase,
                              start=_r(ws[0].start), end=_r(ws[-1].end), source=SOURCE, clip_id=clip.clip_id,
                              duration=duration, granularity="phrase"))
    # turn level: the referent names a turn by speaker ordinal or by voice
    order = [int(i) for i in rng.permutation(len(clip.turns))][:opts.turns_per_clip]
    for j, ti in enumerate(order):
        referent = turn_referent(clip, ti, by_voice=bool(rng.integers(2)))
        t = clip.turns[ti]
        out.append(StaExample(id=f"{clip.clip_id}-t{j}", audio=audio_path, phrase=referent, start=_r(t.start),
                              end=_r(t.end), source=SOURCE, clip_id=clip.clip_id, duration=duration,
                              granularity="turn"))
    return out


def qa_examples(clip: Clip, audio_path: str, split: str, rng: np.random.Generator, opts: SynthOptions,
                schedules: dict[str, LetterSchedule], pools: dict) -> list[QAExample]:
    out = []
    for task in opts.families:
        category, make = FAMILIES[task]
        draft = make(clip, rng, pools)
        if draft is None:
            continue
        gold = schedules[task].next()
        choices = arrange(draft, gold, rng)
        letter = LETTERS[gold]
        grounded, plain = rationales(draft, choices, letter)
        meta = {"n_speakers": len(clip.speakers), **draft.meta}
        out.append(QAExample(
            id=f"{clip.clip_id}-{task}", audio=audio_path, question=draft.question, choices=choices,
            answer=letter, duration=_r(clip.duration), answer_text=choices[gold],
            evidence=[(float(a), float(b)) for a, b in evidence(draft)], task=task, category=category,
            source=SOURCE, split=split, rationale=grounded, rationale_plain=plain, meta=meta))
    return out


def voice_rows(clip: Clip) -> dict:
    from .lexicon import VOICE_TYPES

    return {"clip_id": clip.clip_id, "speakers": [
        {"speaker": s.id, "voice_type": VOICE_TYPES[s.config.vtype], "rate_level": s.config.rate_level,
         "f0_hz": round(s.f0, 1), "letters_per_second": round(s.rate, 2), "talk_time": _r(s.talk_time),
         **s.config.voice.to_dict()} for s in clip.speakers]}


# ---------------------------------------------------------------- the corpus

def _make_clip(split: str, index: int, seed: int, pool, engines, opts: SynthOptions, items, places) -> Clip:
    clip_id = f"{split}-{index:05d}"
    rng = _clip_rng(seed, split, index, 0)
    max_turns = opts.max_turns
    for _ in range(30):
        plan = plan_clip(rng, clip_id, pool=pool, items=items, places=places, max_turns=max_turns)
        clip = render_clip(plan, engines, noise_snr=opts.noise_snr, rng=_clip_rng(seed, split, index, 1))
        if clip.duration <= opts.max_seconds:
            return clip
        max_turns = max(2, max_turns - 1)
    raise SynthesisError(f"could not fit clip {clip_id} into {opts.max_seconds} s")


def _clean_split(folder: Path) -> None:
    for name in ("words.jsonl", "sta.jsonl", "qa.jsonl", "voices.jsonl", "failures.jsonl"):
        (folder / name).unlink(missing_ok=True)
    if (folder / "audio").is_dir():
        shutil.rmtree(folder / "audio")


def synthesize(out_dir: str | Path, n_train: int = 200, n_test: int = 50, seed: int = 0, *,
               engines: Sequence[str] = ("espeak",), noise_snr: float | None = None, vocab_size: int | None = None,
               families: Sequence[str] | None = None, phrases_per_clip: int = 3,
               phrase_words: tuple[int, int] = (2, 4), turns_per_clip: int = 2, max_turns: int = 8,
               max_seconds: float = 30.0, first_test_clip: int = 0, progress: bool = True) -> SynthSummary:
    """Write the corpus to ``out_dir`` (see the module docstring) and return counts and checks.

    Clip ``i`` of a split depends only on the seed, the split and ``i``; ``first_test_clip`` makes
    the test split clips ``first_test_clip .. first_test_clip + n_test - 1``, so a test set can
    avoid clips that were already looked at (the same voices, fresh dialogues).
    """
    fams = tuple(families) if families else tuple(FAMILIES)
    unknown = [f for f in fams if f not in FAMILIES]
    if unknown:
        raise TgsrError(f"unknown question families {unknown}; choose from {', '.join(FAMILIES)}")
    if n_train < 0 or n_test < 0 or first_test_clip < 0:
        raise TgsrError("n_train, n_test and first_test_clip must be >= 0")
    if not (1 <= phrase_words[0] <= phrase_words[1]):
        raise TgsrError(f"phrase_words must be (min, max) with 1 <= min <= max, got {phrase_words}")
    if max_turns < 2:
        raise TgsrError(f"max_turns must be at least 2 (two speakers take turns), got {max_turns}")
    if max_seconds < 8:
        raise TgsrError(f"max_seconds must be at least 8 s to fit a dialogue, got {max_seconds}")
    try:
        items, places = lexicon(vocab_size)
    except ValueError as e:
        raise TgsrError(str(e)) from None
    opts = SynthOptions(tuple(engines), noise_snr, vocab_size, fams, phrases_per_clip, tuple(phrase_words),
                        turns_per_clip, max_turns, max_seconds)
    engine_objs = {name: get_engine(name) for name in dict.fromkeys(engines)}  # raises with install hint
    configs = [c for name in engine_objs for c in engine_configs(engine_objs[name])]
    by_split = split_configs(configs, seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = SynthSummary(out_dir=str(out))
    sizes = {"train": n_train, "test": n_test}
    from tqdm.auto import tqdm

    bar = tqdm(total=n_train + n_test, desc="synthesizing dialogues", unit="clip", disable=not progress)
    manifest_splits = {}
    backend = "+".join(engine_objs)
    for split in SPLITS:
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        _clean_split(folder)
        schedules = {t: LetterSchedule(np.random.default_rng([seed, _SPLIT_IDS[split], 99, i]))
                     for i, t in enumerate(FAMILIES)}
        words_rows, sta_rows, qa_rows, voice_out, failures = [], [], [], [], []
        clips: list[tuple[int, Clip, str]] = []
        seconds = 0.0
        # pass 1: render, write audio, words, voices and STA targets
        first = first_test_clip if split == "test" else 0
        for i in range(first, first + sizes[split]):
            try:
                clip = _make_clip(split, i, seed, by_split[split], engine_objs, opts, items, places)
            except SynthesisError as e:
                failures.append({"clip_id": f"{split}-{i:05d}", "error": str(e)})
                bar.update(1)
                continue
            # Absolute, so that write_jsonl stores it relative to the JSONL folder even when
            # --out is relative to the working directory.
            wav = (folder / "audio" / f"{clip.clip_id}.wav").resolve()
            save_audio(wav, clip.audio)
            clip.audio = np.zeros(0, np.float32)  # keep only the annotations in memory
            seconds += clip.duration
            used = "+".join(dict.fromkeys(s.config.voice.engine for s in clip.speakers))
            words_rows.append(clip_words(clip, str(wav), used))
            sta_rows.extend(sta_examples(clip, str(wav), _clip_rng(seed, split, i, 2), opts))
            voice_out.append(voice_rows(clip))
            clips.append((i, clip, str(wav)))
            bar.update(1)
        # pass 2: questions, with distractor pools and answer balancing over the whole split
        pools = {"items": items, "places": places, "first_starts": first_start_pool([c for _, c, _ in clips]),
                 "intent_counts": Counter(), "pitch_counts": Counter(),
                 "longest_counts": Counter(), "range_counts": Counter()}
        for i, clip, wav in clips:
            qa_rows.extend(qa_examples(clip, wav, split, _clip_rng(seed, split, i, 3), opts, schedules, pools))
        write_jsonl(folder / "words.jsonl", words_rows)
        write_jsonl(folder / "sta.jsonl", sta_rows)
        write_jsonl(folder / "qa.jsonl", qa_rows)
        write_jsonl(folder / "voices.jsonl", voice_out)
        if failures:
            write_jsonl(folder / "failures.jsonl", failures)
        summary.clips[split] = len(words_rows)
        summary.audio_seconds[split] = round(seconds, 3)
        summary.qa[split] = len(qa_rows)
        summary.sta[split] = len(sta_rows)
        summary.failures[split] = len(failures)
        manifest_splits[split] = {
            "clips": len(words_rows), "failed_clips": len(failures), "audio_seconds": round(seconds, 3),
            "sta": dict(sorted(Counter(x.granularity for x in sta_rows).items())),
            "qa": dict(sorted(Counter(x.task for x in qa_rows).items())),
            "gold_letters": dict(sorted(Counter(x.answer for x in qa_rows).items())),
            "voices": len({s["key"] for v in voice_out for s in v["speakers"]}),
        }
    bar.close()
    train_qa = read_jsonl(out / "train" / "qa.jsonl", QAExample).records
    test_qa = read_jsonl(out / "test" / "qa.jsonl", QAExample).records
    summary.text_baseline = text_only_baseline(train_qa, test_qa).to_dict() if test_qa else {}
    summary.manifest = {"source": SOURCE, "seed": seed, "n_train": n_train, "n_test": n_test,
                        "first_test_clip": first_test_clip,
                        "backend": backend, "options": opts.to_dict(),
                        "categories": {t: FAMILIES[t][0] for t in fams},
                        "lexicon": {"items": list(items), "places": list(places)},
                        "splits": manifest_splits, "text_only_baseline": summary.text_baseline}
    (out / "manifest.json").write_text(json.dumps(summary.manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return summary


__all__ = ["synthesize", "SynthOptions", "SynthSummary", "clip_words", "sta_examples", "qa_examples",
           "turn_referent", "ordinal_speaker", "turn_name", "SPLITS"]
