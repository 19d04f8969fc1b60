"""MELD test utterances as a 7-way emotion multiple choice (``test_sent_emo.csv``).

Options are the 7 emotions in MELD's label-index order. Audio is looked up as
``DATA_ROOT/diaX_uttY.{wav,flac,mp4}`` and under ``output_repeated_splits_test/`` (the
layout of ``MELD.Raw``); mp4 clips are decoded with ffmpeg by ``tgsr.audio``.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ...errors import RecordError
from ...records import LETTERS, FieldError, QAExample
from ._common import audio_under, check_unique_ids, find_meta

META_NAMES = ("test_sent_emo.csv", "data/MELD/test_sent_emo.csv")
EMOTIONS = ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")
QUESTION = "Which emotion does the speaker express in this utterance?"
_TIME = re.compile(r"^(\d+):(\d{2}):(\d{2})[,.](\d{1,3})$")
REQUIRED = ("Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID", "StartTime", "EndTime")


def parse_time(value: str) -> float:
    """``H:MM:SS,mmm`` with a one- or two-digit hour (both occur in MELD)."""
    m = _TIME.match(value.strip())
    if not m:
        raise ValueError(f"bad time {value!r}")
    h, mi, s, ms = m.groups()
    return int(h) * 3600 + int(mi) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000.0


def load(data_root: str | Path | None, meta: str | Path | None = None) -> list[QAExample]:
    path = find_meta(data_root, meta, META_NAMES, "meld")
    root = Path(data_root) if data_root is not None else path.parent
    out = []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise RecordError(path, 1, missing[0], "column missing from the header")
        for row in reader:
            line = reader.line_num
            emotion = (row["Emotion"] or "").strip().lower()
            if emotion not in EMOTIONS:
                raise RecordError(path, line, "Emotion", f"{row['Emotion']!r} is not one of {list(EMOTIONS)}")
            try:
                dia, utt = int(row["Dialogue_ID"]), int(row["Utterance_ID"])
            except ValueError:
                raise RecordError(path, line, "Dialogue_ID", "Dialogue_ID and Utterance_ID must be integers") from None
            try:
                start, end = parse_time(row["StartTime"]), parse_time(row["EndTime"])
            except ValueError as e:
                raise RecordError(path, line, "StartTime", str(e)) from None
            name = f"dia{dia}_utt{utt}"
            audio = audio_under(root, f"{name}.wav", f"{name}.flac", f"{name}.mp4",
                                f"output_repeated_splits_test/{name}.mp4", f"output_repeated_splits_test/{name}.wav")
            data = {
                "id": name, "audio": audio, "question": QUESTION, "choices": list(EMOTIONS),
                "answer": LETTERS[EMOTIONS.index(emotion)], "task": "emotion", "category": emotion,
                "source": "meld", "split": "test",
                "meta": {"breakdown": {"emotion": emotion}, "speaker": row["Speaker"],
                         "sentiment": row["Sentiment"], "utterance": row["Utterance"],
                         "start": start, "end": end},
            }
            try:
                out.append(QAExample.from_dict(data))
            except FieldError as e:
                raise RecordError(path, line, e.field, e.reason) from None
    check_unique_ids(path, out)
    return out
