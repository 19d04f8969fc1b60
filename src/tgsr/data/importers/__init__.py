"""Corpus importers: read a corpus in its native layout and write ``manifest.jsonl``.

Each importer yields :class:`tgsr.records.ManifestItem` for the clips it can use and an
error row (file, line, clip, reason) for each one it cannot (missing or unreadable audio,
a malformed row). Errors never stop an import; they go to an errors file.
"""

from __future__ import annotations

from .base import ImportResult, probe_audio, write_import

IMPORTERS = ("librispeech", "meld", "covost2", "manifest")


def run_importer(kind: str, root: str, **options) -> ImportResult:
    if kind == "librispeech":
        from .librispeech import import_librispeech as fn
    elif kind == "meld":
        from .meld import import_meld as fn
    elif kind == "covost2":
        from .covost2 import import_covost2 as fn
    elif kind == "manifest":
        from .manifest import import_manifest as fn
    else:
        raise ValueError(f"unknown corpus {kind!r}; expected one of {', '.join(IMPORTERS)}")
    return fn(root, **options)


__all__ = ["IMPORTERS", "ImportResult", "run_importer", "probe_audio", "write_import"]
