"""Shared pieces of the importers: the result type, a cheap audio probe, the writer."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import AudioError
from ...records import FirstSeen, ManifestItem, write_jsonl

_CONTAINERS = {".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4a", ".aac"}


@dataclass
class ImportResult:
    items: list[ManifestItem] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    # Clips kept but not stored as 16 kHz mono (e.g. stereo 44.1 kHz): they are converted when
    # read, and reported so nobody is surprised; skipping good speech would lose data.
    converted: list[dict] = field(default_factory=list)
    # clip ids kept so far: a repeated id is an error row (the first is kept), never a second clip
    seen: FirstSeen = field(default_factory=FirstSeen, repr=False)

    def error(self, reason: str, *, path: str | Path | None = None, line: int | None = None,
              clip: str | None = None, audio: str | Path | None = None) -> None:
        self.errors.append({"path": None if path is None else str(path), "line": line, "clip": clip,
                            "audio": None if audio is None else str(audio), "reason": reason})

    def add(self, item: ManifestItem, *, check_audio: bool = True, path: str | Path | None = None,
            line: int | None = None) -> None:
        """Keep ``item`` if its audio looks usable and its id is new, else record why not."""
        fmt = None
        if check_audio:
            try:
                fmt = probe_audio(item.audio)
            except AudioError as e:
                self.error(e.reason, path=path, line=line, clip=item.id, audio=item.audio)
                return
        duplicate = self.seen.check(item.id, path if path is not None else "<import>", line)
        if duplicate is not None:
            self.error(duplicate.reason, path=path, line=line, clip=item.id, audio=item.audio)
            return
        if fmt is not None and fmt != (16000, 1):
            self.converted.append({"clip": item.id, "audio": str(item.audio),
                                   "sample_rate": fmt[0], "channels": fmt[1]})
        self.items.append(item)


def probe_audio(path: str | Path) -> tuple[int, int] | None:
    """Raise ``AudioError`` for audio that is missing, empty or has an unreadable header.

    Returns (sample rate, channels) from the header, or None for containers (mp4 ...).

    Only headers are read (cheap enough for a whole corpus); decoding problems inside a
    file are caught later, per clip, by ``tgsr data align``.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "file not found")
    if path.stat().st_size == 0:
        raise AudioError(path, "file is empty (0 bytes)")
    if path.suffix.lower() in _CONTAINERS:
        ffprobe = shutil.which("ffprobe")
        if ffprobe:
            proc = subprocess.run([ffprobe, "-v", "error", "-select_streams", "a", "-show_entries",
                                   "stream=codec_type", "-of", "csv=p=0", str(path)], capture_output=True)
            if proc.returncode != 0 or b"audio" not in proc.stdout:
                raise AudioError(path, "no readable audio stream")
        return None
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as e:
        raise AudioError(path, f"unreadable audio: {e}") from None
    if info.frames == 0:
        raise AudioError(path, "no audio samples")
    return int(info.samplerate), int(info.channels)


def write_import(result: ImportResult, out: str | Path, errors_out: str | Path | None = None) -> Path:
    """Write the manifest and the errors file (always, so a clean run leaves an empty one)."""
    out = Path(out)
    write_jsonl(out, result.items)
    errors_out = Path(errors_out) if errors_out else default_errors_path(out)
    write_jsonl(errors_out, result.errors)
    return errors_out


def default_errors_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".errors.jsonl")


__all__ = ["ImportResult", "probe_audio", "write_import", "default_errors_path"]
