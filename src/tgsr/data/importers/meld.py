"""MELD: the official ``{train,dev,test}_sent_emo.csv`` files and ``dia<D>_utt<U>`` clips.

Quirks handled:
- StartTime/EndTime are episode times like ``00:20:57,256`` and sometimes ``0:10:44,769``
  (one-digit hours); they are kept in ``meta`` (the clips are already cut).
- Clips are ``.mp4`` in the official release (``train_splits/``, ``dev_splits_complete/``,
  ``output_repeated_splits_test/``) or ``.wav`` once extracted; the same dialogue/utterance
  ids exist in every split, so clips are matched within the split's own folder.
- The release contains macOS ``._dia*`` resource-fork files; they are ignored.
- Curly apostrophes and quotes in the text are turned into ASCII ones.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Sequence

from ...records import ManifestItem
from .base import ImportResult

_TIME = re.compile(r"^\s*(\d{1,2}):(\d{1,2}):(\d{1,2})[,.](\d{1,3})\s*$")
_CLIP = re.compile(r"^dia(\d+)_utt(\d+)$")
_SPLITS = ("train", "dev", "test")
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2014": "-", "\u2013": "-",
                         "\u0092": "'", "\u0085": "..."})
_REQUIRED = ("Utterance", "Speaker", "Dialogue_ID", "Utterance_ID", "StartTime", "EndTime")


def parse_time(value: str) -> float:
    """``H:MM:SS,mmm`` (one- or two-digit hours, comma or dot) -> seconds."""
    m = _TIME.match(value or "")
    if not m:
        raise ValueError(f"bad time {value!r} (expected H:MM:SS,mmm)")
    h, mi, s, ms = m.groups()
    return int(h) * 3600 + int(mi) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000.0


def _split_of(path: Path) -> str | None:
    for part in reversed(path.parent.parts):
        low = part.lower()
        for split in _SPLITS:
            if split in low:
                return split
    return None


def _index_clips(root: Path) -> dict[tuple[str | None, str], Path]:
    """(split or None, 'dia<D>_utt<U>') -> clip path; wav preferred over mp4."""
    index: dict[tuple[str | None, str], Path] = {}
    for p in sorted(root.rglob("dia*_utt*.*")):
        if p.name.startswith("._") or not _CLIP.match(p.stem) or p.suffix.lower() not in (".mp4", ".wav", ".flac"):
            continue
        key = (_split_of(p.relative_to(root)), p.stem)
        if key not in index or p.suffix.lower() == ".wav":
            index[key] = p
    return index


def import_meld(root: str | Path, *, check_audio: bool = True, csv_files: list[str | Path] | None = None,
                split_folders: bool = False, splits: Sequence[str] | None = None, **_) -> ImportResult:
    """``split_folders``: take a clip only from a folder whose name gives its CSV's split. The same
    dialogue ids exist in every split, so a clip in an unnamed folder might be another split's
    (``tgsr data qa meld`` sets it: no test clip may reach training data). ``splits``: read only
    these splits' CSVs (``("train", "dev")`` keeps the test split, tgsr's benchmark, out of
    training data), with ``split_folders`` on."""
    root = Path(root)
    result = ImportResult()
    files = [Path(f) for f in csv_files] if csv_files else sorted(root.rglob("*_sent_emo.csv"))
    files = [f for f in files if not f.name.startswith("._")]
    if splits is not None:
        unknown = sorted(set(splits) - set(_SPLITS))
        if unknown:
            raise ValueError(f"unknown MELD split(s) {unknown}; expected some of {', '.join(_SPLITS)}")
        files = [f for f in files if f.name.lower().startswith(tuple(f"{s}_" for s in splits))]
        split_folders = True
    if not files:
        result.error("no *_sent_emo.csv files found", path=root)
        return result
    clips = _index_clips(root)
    for csv_path in files:
        split = next((s for s in _SPLITS if csv_path.name.lower().startswith(s)), None)
        with open(csv_path, encoding="utf-8-sig", errors="replace", newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                result.error(f"missing columns {missing}", path=csv_path, line=1)
                continue
            for row in reader:
                line = reader.line_num
                try:
                    dia, utt = int(row["Dialogue_ID"]), int(row["Utterance_ID"])
                    start, end = parse_time(row["StartTime"]), parse_time(row["EndTime"])
                except (TypeError, ValueError) as e:
                    result.error(f"bad row: {e}", path=csv_path, line=line)
                    continue
                stem = f"dia{dia}_utt{utt}"
                clip_id = f"meld-{split or csv_path.stem}-{stem}"
                audio = clips.get((split, stem)) or (None if split_folders else clips.get((None, stem)))
                if audio is None:
                    where = f" in a folder naming the {split} split" if split_folders else f" for split {split}"
                    result.error(f"no clip {stem}.mp4/.wav{where}", path=csv_path, line=line, clip=clip_id)
                    continue
                text = (row["Utterance"] or "").translate(_QUOTES).strip()
                meta = {"dialogue_id": dia, "utterance_id": utt, "emotion": row.get("Emotion"),
                        "sentiment": row.get("Sentiment"), "season": row.get("Season"), "episode": row.get("Episode"),
                        "episode_start": round(start, 3), "episode_end": round(end, 3), "split": split,
                        "csv": str(csv_path), "line": line}  # where the row is, for located errors later
                item = ManifestItem(id=clip_id, audio=str(audio.resolve()), transcript=text or None,
                                    speaker=(row["Speaker"] or "").strip() or None, language="en", source="meld",
                                    meta=meta)
                result.add(item, check_audio=check_audio, path=csv_path, line=line)
    return result
