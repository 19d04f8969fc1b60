"""CoVoST 2: tab-separated files (``path``, ``sentence``, optional ``translation``) plus clips.

Clips (Common Voice ``.mp3``) are looked up under ``<root>/clips/`` and then next to the TSV.
The TSVs are unquoted (sentences contain quote characters), so they are read without quoting.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from ...records import ManifestItem
from .base import ImportResult


def import_covost2(root: str | Path, *, check_audio: bool = True, tsv_files: list[str | Path] | None = None,
                   **_) -> ImportResult:
    root = Path(root)
    result = ImportResult()
    files = [Path(f) for f in tsv_files] if tsv_files else sorted(root.rglob("*.tsv"))
    if not files:
        result.error("no .tsv files found", path=root)
        return result
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    seen: set[str] = set()
    for tsv in files:
        with open(tsv, encoding="utf-8", errors="replace", newline="") as fh:
            reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = next(reader, None)
            if not header or "path" not in header or "sentence" not in header:
                result.error("expected a header with 'path' and 'sentence' columns", path=tsv, line=1)
                continue
            col = {name: i for i, name in enumerate(header)}
            for row in reader:
                line = reader.line_num
                if not any(row):
                    continue
                if len(row) < len(header):
                    result.error(f"expected {len(header)} columns, got {len(row)}", path=tsv, line=line)
                    continue
                rel = row[col["path"]].strip()
                clip_id = f"covost2-{Path(rel).stem}"
                if clip_id in seen:  # the same clip is listed in several language-pair TSVs
                    continue
                audio = _find_clip(root, tsv.parent, rel)
                meta = {"tsv": tsv.name}
                if "translation" in col:
                    meta["translation"] = row[col["translation"]]
                speaker = row[col["client_id"]] if "client_id" in col else None
                item = ManifestItem(id=clip_id, audio=str(audio.resolve()),
                                    transcript=row[col["sentence"]].strip() or None,
                                    speaker=speaker or None, source="covost2", meta=meta)
                before = len(result.items)
                result.add(item, check_audio=check_audio, path=tsv, line=line)
                if len(result.items) > before:
                    seen.add(clip_id)
    return result


def _find_clip(root: Path, tsv_dir: Path, rel: str) -> Path:
    for base in (root / "clips", tsv_dir / "clips", root, tsv_dir):
        p = base / rel
        if p.exists():
            return p
    return root / "clips" / rel
