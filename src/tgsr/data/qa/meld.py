"""Stage-2 questions from MELD's train or dev split (official CSVs and the MELD.Raw clip layout).

Three kinds of question, all multiple choice over a fixed cyclic label order (``RotatedOptions``):

* ``emotion``: which of the 7 emotions (MELD's label order) one utterance clip expresses;
* ``sentiment``: which of 3 sentiments (negative, neutral, positive);
* ``dialogue``: over a whole dialogue's audio, the utterance clips concatenated in order with
  ``gap`` seconds of silence between them, each utterance padded with silence to a whole
  10 ms (so each utterance's start and end are known exactly and lie on the 10 ms grid that
  citations are written on), which emotion the utterance named by its speaker ("... the second time Ross
  speaks") or by a quote expresses. Its ``evidence`` is that utterance's span in the
  concatenated clip, so the verified grounding reward (``grounding_iou``) works on real speech.
  Dialogues longer than ``max_seconds`` are cut, between utterances, into parts that fit.

MELD's test split is tgsr's evaluation benchmark and is refused: no test dialogue ever reaches
a training file. Only ``<split>_sent_emo.csv`` is read, and a clip is taken only from a folder
whose name gives that split (``train_splits/``, ``dev_splits_complete/``, ``MELD.Raw/train/``
...): the same dialogue ids exist in every split, so a clip in an unnamed folder could be a
test clip, and its row is reported instead.

Options are the label set in one fixed cyclic order (MELD's label-index order for emotions,
the order tgsr's MELD benchmark lists them), started where the balanced letter schedule needs
the answer: the order of the labels never changes and every letter is the answer equally often.

With word timings of the utterance clips (``tgsr data align`` on ``tgsr data import meld``), each
question also gets a grounded rationale citing where the utterance is spoken and its plain twin.

Resumable: decoding and concatenating audio (the slow part) is recorded per dialogue in
``<out stem>.dialogues.jsonl`` after its audio is written; a rerun skips recorded dialogues and
rebuilds ``qa.jsonl`` from the records, so an interrupted run ends with the same files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import AudioError, TgsrError
from ...eval.benchmarks.meld import EMOTIONS
from ...records import QAExample, append_jsonl, iter_jsonl_dicts, repair_torn_tail
from ..lexicon import ORDINALS
from ..questions import Claim, cite
from .common import (
    QaSummary,
    RotatedOptions,
    WordIndex,
    clip_limit,
    error_row,
    finish,
    from_record_error,
    grounded_pair,
    quoted,
    seeded_rng,
    spoken_span,
)

SENTIMENTS = ("negative", "neutral", "positive")
KINDS = ("emotion", "sentiment", "dialogue")
TRAIN_SPLITS = ("train", "dev")
EMOTION_QUESTION = "Which emotion does the speaker express in this utterance?"
SENTIMENT_QUESTION = "Is the sentiment of this utterance negative, neutral or positive?"
# how a rationale says the label (the question's answer stays the bare label)
SAID_WITH = {"neutral": "in a neutral tone", "surprise": "with surprise", "fear": "with fear",
             "sadness": "with sadness", "joy": "with joy", "disgust": "with disgust", "anger": "with anger"}


@dataclass
class MeldOptions:
    split: str = "train"
    kinds: tuple[str, ...] = KINDS
    max_seconds: float = 30.0        # longest dialogue part (Qwen2-Audio and AF3 encoders take 30 s windows)
    gap: float = 0.3                 # silence between concatenated utterances (s)
    quote_words: int = 12            # longer utterances are quoted by their first words and "..."
    seed: int = 0

    def audio_key(self) -> dict:
        """The options that decide the concatenated audio (a resumed run must use the same)."""
        return {"max_seconds": self.max_seconds, "gap": self.gap}


def state_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".dialogues.jsonl")


# ---------------------------------------------------------------- reading the split

def _plan(root: Path, split: str, errors: list[dict]) -> tuple[list[str], dict[str, list], int]:
    """Dialogue keys in CSV order, their utterance items (utterance order), and the row count."""
    from ..importers.meld import import_meld

    csvs = sorted(p for p in root.rglob(f"{split}_sent_emo.csv") if not p.name.startswith("._"))
    if not csvs:
        raise TgsrError(f"{root}: no {split}_sent_emo.csv found (expected MELD's official CSVs)")
    result = import_meld(root, check_audio=False, csv_files=csvs, split_folders=True)
    for e in result.errors:
        errors.append(error_row(e["reason"], path=e.get("path"), line=e.get("line"), item=e.get("clip"),
                                audio=e.get("audio"), stage="import"))
    order: list[str] = []
    groups: dict[str, list] = {}
    for it in result.items:
        m = it.meta
        emotion, sentiment = str(m.get("emotion") or "").strip().lower(), str(m.get("sentiment") or "").strip().lower()
        bad = ("Emotion", m.get("emotion"), EMOTIONS) if emotion not in EMOTIONS else \
              ("Sentiment", m.get("sentiment"), SENTIMENTS) if sentiment not in SENTIMENTS else None
        if bad:
            errors.append(error_row(f"{bad[1]!r} is not one of {list(bad[2])}", path=m.get("csv"), line=m.get("line"),
                                    field=bad[0], item=it.id, stage="labels"))
            continue
        key = f"meld-{split}-dia{m['dialogue_id']}"
        if key not in groups:
            order.append(key)
            groups[key] = []
        groups[key].append(it)
    for items in groups.values():
        items.sort(key=lambda it: it.meta["utterance_id"])
    rows = len(result.items) + sum(1 for e in result.errors if e.get("line") is not None)
    return order, groups, rows


# ---------------------------------------------------------------- audio (resumable, per dialogue)

def _parts(durations: list[float], opts: MeldOptions) -> list[list[int]]:
    """Consecutive utterance indices, greedily packed into parts of at most ``max_seconds``."""
    parts: list[list[int]] = []
    current: list[int] = []
    length = 0.0
    for i, d in enumerate(durations):
        extra = d + (opts.gap if current else 0.0)
        if current and length + extra > opts.max_seconds:
            parts.append(current)
            current, length, extra = [], 0.0, d
        current.append(i)
        length += extra
    if current:
        parts.append(current)
    return parts


GRID = 160  # samples in 10 ms at 16 kHz: utterances and gaps are padded to whole grid steps


def _on_grid(n: int) -> int:
    return n + (-n) % GRID


def _build_dialogue(key: str, items: list, out_dir: Path, opts: MeldOptions) -> dict:
    """Decode a dialogue's clips, write its concatenated parts, return its state record."""
    from ...audio import SAMPLE_RATE, load_audio, save_audio

    utts, audios, failed = [], [], []
    for it in items:
        try:
            audio = load_audio(it.audio)
            if audio.size == 0:
                raise AudioError(it.audio, "no samples")
        except AudioError as e:
            failed.append(error_row(e.reason, path=it.meta.get("csv"), line=it.meta.get("line"), item=it.id,
                                    audio=it.audio, stage="audio"))
            continue
        audios.append(audio)
        utts.append({"id": it.id, "utterance_id": it.meta["utterance_id"], "speaker": it.speaker or "",
                     "text": it.transcript or "", "emotion": it.meta["emotion"].strip().lower(),
                     "sentiment": it.meta["sentiment"].strip().lower(), "audio": it.audio,
                     "duration": round(audio.size / SAMPLE_RATE, 3), "csv": it.meta.get("csv"),
                     "line": it.meta.get("line")})
    parts = []
    gap = np.zeros(_on_grid(int(round(opts.gap * SAMPLE_RATE))), dtype=np.float32)
    for k, members in enumerate(_parts([u["duration"] for u in utts], opts)):
        if len(members) < 2:
            continue  # one utterance is no dialogue: its utterance-level questions use its own clip
        pieces, spans, t = [], [], 0
        for j, i in enumerate(members):
            if j:
                pieces.append(gap)
                t += gap.size
            spans.append({"utt": i, "start": round(t / SAMPLE_RATE, 3),
                          "end": round((t + audios[i].size) / SAMPLE_RATE, 3)})
            padded = _on_grid(audios[i].size)
            pieces += [audios[i], np.zeros(padded - audios[i].size, dtype=np.float32)]
            t += padded
        clip_id = f"{key}-p{k}"
        rel = f"audio/{clip_id}.wav"
        tmp = out_dir / f"audio/{clip_id}.part.wav"
        save_audio(tmp, np.concatenate(pieces))
        tmp.replace(out_dir / rel)  # whole files only: a crash mid-write leaves no half clip behind
        parts.append({"clip_id": clip_id, "audio": rel, "duration": round(t / SAMPLE_RATE, 3), "members": spans})
    return {"dialogue": key, "split": opts.split, "options": opts.audio_key(), "utterances": utts,
            "failed": failed, "parts": parts}


def _load_state(path: Path, opts: MeldOptions) -> dict[str, dict]:
    repair_torn_tail(path)
    state: dict[str, dict] = {}
    for line, obj in iter_jsonl_dicts(path) if path.exists() else ():
        if not isinstance(obj, dict) or not isinstance(obj.get("dialogue"), str):
            continue  # unreadable progress lines are simply redone
        if obj.get("options") != opts.audio_key() or obj.get("split") != opts.split:
            raise TgsrError(f"{path}:{line}: made with other options ({obj.get('split')}, {obj.get('options')}); "
                            f"rerun with those, or remove {path} and the audio folder to start again")
        state[obj["dialogue"]] = obj
    return state


# ---------------------------------------------------------------- questions (from the records, fast)

def _utterance_questions(u: dict, words: WordIndex, opts: MeldOptions, options: dict) -> list[QAExample]:
    """Emotion and sentiment of one utterance clip; the evidence is where it is spoken (the
    aligned words' span when word timings exist, else the whole clip, which MELD cut to it)."""
    out = []
    clip = words.get(u["id"], u["audio"])
    span = spoken_span(clip.words, 0.0, u["duration"]) if clip else None
    evidence = span or (0.0, clip_limit(u["duration"]))
    for kind, question, label in (("emotion", EMOTION_QUESTION, u["emotion"]),
                                  ("sentiment", SENTIMENT_QUESTION, u["sentiment"])):
        if kind not in opts.kinds:
            continue
        choices, letter = options[kind].arrange(label)
        grounded = plain = ""
        if span:
            said = f"said {SAID_WITH[label]}" if kind == "emotion" else f"{label} in sentiment"
            grounded, plain = grounded_pair(
                [Claim(f'{u["speaker"] or "the speaker"} says "{quoted(u["text"])}"', span),
                 Claim(f"That line is {said}")], choices, letter, kind)
        out.append(QAExample(
            id=f"{u['id']}-{kind}", audio=u["audio"], question=question, choices=choices, answer=letter,
            answer_text=label, duration=u["duration"], evidence=[evidence], task=f"meld_{kind}",
            category=label, source="meld", split=opts.split, rationale=grounded, rationale_plain=plain,
            meta={"utterance": u["id"], "speaker": u["speaker"], "text": u["text"], "csv": u["csv"],
                  "line": u["line"], "breakdown": {kind: label}}))
    return out


def _quote(text: str, n: int) -> str:
    w = quoted(text).split()
    return " ".join(w) if len(w) <= n else " ".join(w[:n]) + " ..."


def _dialogue_questions(rec: dict, part: dict, words: WordIndex, opts: MeldOptions, options: dict,
                        out_dir: Path) -> list[QAExample]:
    utts = rec["utterances"]
    members = part["members"]
    speakers = [utts[m["utt"]]["speaker"] for m in members]
    quotes = [_quote(utts[m["utt"]]["text"], opts.quote_words).lower() for m in members]
    out = []
    for j, m in enumerate(members):
        u = utts[m["utt"]]
        qid = f"{part['clip_id']}-utt{u['utterance_id']}-emotion"
        rng = seeded_rng(opts.seed, qid)
        nth = speakers[:j + 1].count(u["speaker"]) - 1
        by_speaker = bool(u["speaker"]) and nth < len(ORDINALS)
        by_quote = bool(quotes[j]) and quotes.count(quotes[j]) == 1
        if not (by_speaker or by_quote):
            continue
        form = "speaker" if by_speaker and (not by_quote or rng.random() < 0.5) else "quote"
        if form == "speaker":
            times = speakers.count(u["speaker"])
            question = (f"Which emotion does {u['speaker']} express in this conversation?" if times == 1 else
                        f"Which emotion does {u['speaker']} express the {ORDINALS[nth]} time they speak?")
        else:
            question = f'Which emotion does the speaker express when saying "{_quote(u["text"], opts.quote_words)}"?'
        choices, letter = options["dialogue"].arrange(u["emotion"])
        evidence = cite(m["start"], m["end"], part["duration"])
        grounded = plain = ""
        clip = words.get(u["id"], u["audio"])
        span = spoken_span(clip.words, m["start"], part["duration"]) if clip else None
        if span:
            grounded, plain = grounded_pair(
                [Claim(f'{u["speaker"] or "a speaker"} says "{quoted(u["text"])}"', span),
                 Claim(f"That line is said {SAID_WITH[u['emotion']]}")], choices, letter, "dialogue")
        out.append(QAExample(
            id=qid, audio=str((out_dir / part["audio"]).resolve()), question=question, choices=choices,
            answer=letter, answer_text=u["emotion"], duration=part["duration"], evidence=[evidence],
            task="meld_dialogue", category=u["emotion"], source="meld", split=opts.split, rationale=grounded,
            rationale_plain=plain,
            meta={"dialogue": rec["dialogue"], "utterance": u["id"], "speaker": u["speaker"], "text": u["text"],
                  "csv": u["csv"], "line": u["line"], "form": form, "span": [m["start"], m["end"]],
                  "breakdown": {"emotion": u["emotion"], "form": form}}))
    return out


# ---------------------------------------------------------------- the run

def build_meld_qa(root: str | Path, out: str | Path, opts: MeldOptions | None = None, *,
                  words: str | Path | None = None, errors_path: str | Path | None = None,
                  progress: bool = False) -> QaSummary:
    """Write ``out`` (QAExample lines) for one MELD split; see the module docstring."""
    from tqdm.auto import tqdm

    opts = opts or MeldOptions()
    if opts.split not in TRAIN_SPLITS:
        raise TgsrError(f"MELD split {opts.split!r} cannot be training data: use train or dev "
                        "(test is the evaluation benchmark, `tgsr eval run --benchmark meld`)")
    unknown = sorted(set(opts.kinds) - set(KINDS))
    if unknown or not opts.kinds:
        raise TgsrError(f"question kinds {unknown or '(none)'}: expected some of {', '.join(KINDS)}")
    if opts.max_seconds <= 0 or opts.gap < 0:
        raise TgsrError("need --max-seconds > 0 and --gap >= 0")
    root, out = Path(root), Path(out)
    out_dir = out.parent
    errors: list[dict] = []
    order, groups, rows = _plan(root, opts.split, errors)
    index = WordIndex.load(words)
    errors += [from_record_error(e, "words") for e in index.errors]

    spath = state_path(out)
    state = _load_state(spath, opts)
    done_before = sum(1 for k in order if k in state)
    pending = [k for k in order if k not in state]
    for key in tqdm(pending, desc="meld dialogues", unit="dialogue", disable=not progress):
        rec = _build_dialogue(key, groups[key], out_dir, opts)
        append_jsonl(spath, rec)  # after its audio is on disk: a crash redoes this dialogue only
        state[key] = rec

    options = {kind: RotatedOptions(EMOTIONS if kind != "sentiment" else SENTIMENTS, seeded_rng(opts.seed, kind))
               for kind in KINDS}
    examples: list[QAExample] = []
    parts = 0
    for key in order:
        rec = state[key]
        errors += rec["failed"]
        for u in rec["utterances"]:
            examples += _utterance_questions(u, index, opts, options)
        for part in rec["parts"]:
            parts += 1
            if "dialogue" in opts.kinds:
                examples += _dialogue_questions(rec, part, index, opts, options, out_dir)
    summary = QaSummary(source=f"meld {opts.split}", rows=rows)
    summary.notes = {"dialogues": len(order), "dialogue_parts": parts, "resumed_dialogues": done_before,
                     "utterances_with_words": sum(1 for k in order for u in state[k]["utterances"]
                                                  if index.get(u["id"], u["audio"]))}
    return finish(summary, examples, errors, out, errors_path)


__all__ = ["MeldOptions", "build_meld_qa", "KINDS", "SENTIMENTS", "TRAIN_SPLITS", "state_path"]
