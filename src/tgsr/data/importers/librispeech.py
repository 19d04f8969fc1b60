"""LibriSpeech: ``<root>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` plus ``.flac`` clips.

Each transcript line is ``<utterance-id> <TEXT IN CAPITALS>``. Transcripts are lower-cased
(the corpus normalises them to capitals without punctuation).
"""

from __future__ import annotations

from pathlib import Path

from ...records import ManifestItem
from .base import ImportResult


def import_librispeech(root: str | Path, *, check_audio: bool = True, **_) -> ImportResult:
    root = Path(root)
    result = ImportResult()
    trans_files = sorted(root.rglob("*.trans.txt"))
    if not trans_files:
        result.error("no *.trans.txt files found (expected <speaker>/<chapter>/ folders)", path=root)
        return result
    for trans in trans_files:
        listed = set()
        with open(trans, encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                parts = line.strip().split(maxsplit=1)
                utt_id = parts[0]
                if len(parts) < 2:
                    result.error("line has an id but no transcript", path=trans, line=lineno, clip=utt_id)
                    continue
                listed.add(utt_id)
                audio = _find_audio(trans.parent, utt_id)
                speaker = utt_id.split("-")[0]
                item = ManifestItem(id=utt_id, audio=str(audio.resolve()), transcript=parts[1].lower(),
                                    speaker=speaker, language="en", source="librispeech",
                                    meta={"chapter": utt_id.split("-")[1] if "-" in utt_id else ""})
                result.add(item, check_audio=check_audio, path=trans, line=lineno)
        for clip in sorted(trans.parent.glob("*.flac")):
            if clip.stem not in listed:
                result.error("audio has no transcript line", path=trans, clip=clip.stem, audio=clip)
    return result


def _find_audio(folder: Path, utt_id: str) -> Path:
    for ext in (".flac", ".wav"):
        p = folder / f"{utt_id}{ext}"
        if p.exists():
            return p
    return folder / f"{utt_id}.flac"
