"""One duplicate policy: the first record of an id is kept,
every repeat is an error row (file:line, reason), counted."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tgsr.audio import save_audio
from tgsr.cli import main
from tgsr.errors import RecordError
from tgsr.records import ClipWords, DuplicateRecord, StaExample, Word, read_jsonl, write_jsonl


def _clip(tmp_path, cid: str) -> ClipWords:
    words = [Word(text=f"w{i}", start=i * 0.3, end=i * 0.3 + 0.25) for i in range(20)]
    return ClipWords(clip_id=cid, audio=str(tmp_path / f"{cid}.wav"), duration=6.5, words=words)


def test_read_jsonl_keeps_the_first_and_names_the_repeat(tmp_path):
    path = tmp_path / "sta.jsonl"
    rows = [StaExample(id=i, audio="x.wav", phrase="p", start=0.0, end=1.0) for i in ("a", "b", "a", "a")]
    write_jsonl(path, rows)
    res = read_jsonl(path, StaExample, on_error="skip", unique="id")
    assert [r.id for r in res] == ["a", "b"]
    assert [(e.line, type(e)) for e in res.errors] == [(3, DuplicateRecord), (4, DuplicateRecord)]
    assert str(res.errors[0]) == f"{path}:3: field 'id' duplicate id 'a': the first, at {path}:1, is kept"
    with pytest.raises(RecordError, match=r"sta.jsonl:3: .*duplicate id 'a'"):
        read_jsonl(path, StaExample, unique="id")
    assert len(read_jsonl(path, StaExample)) == 4       # without the option: every line, as written


def test_data_sta_with_a_repeated_clip_gives_each_phrase_once(tmp_path, capsys):
    """The issue's case: a clip repeated in words.jsonl gave 8 rows with 4 unique ids."""
    words = tmp_path / "words.jsonl"
    write_jsonl(words, [_clip(tmp_path, "a"), _clip(tmp_path, "b"), _clip(tmp_path, "a")])
    out = tmp_path / "sta.jsonl"
    assert main(["data", "sta", "--words", str(words), "--out", str(out), "--per-clip", "4"]) == 0
    ids = [r.id for r in read_jsonl(out, StaExample)]
    assert len(ids) == len(set(ids)) == 8 and sum(i.startswith("a-") for i in ids) == 4
    assert "1 repeated clip ids skipped" in capsys.readouterr().out
    errors = [json.loads(x) for x in (tmp_path / "sta.errors.jsonl").read_text().splitlines()]
    assert errors == [{"path": str(words), "line": 3, "field": "clip_id", "stage": "words",
                       "reason": f"duplicate clip_id 'a': the first, at {words}:1, is kept"}]


def test_training_rows_are_never_doubled(tmp_path):
    from tgsr.train.datasets import grpo_rows, sta_rows

    audio = tmp_path / "a.wav"
    save_audio(audio, np.zeros(16000, dtype=np.float32))
    sta = tmp_path / "sta.jsonl"
    write_jsonl(sta, [StaExample(id=i, audio=str(audio), phrase="p", start=0.0, end=0.5) for i in ("s0", "s1", "s0")])
    rows = sta_rows(str(sta))
    assert [r["id"] for r in rows.rows] == ["s0", "s1"]
    assert len(rows.errors) == 1 and rows.errors[0].line == 3 and "1 skipped" in rows.summary()
    qa = tmp_path / "qa.jsonl"
    q = {"audio": str(audio), "question": "Which?", "choices": ["x", "y"], "answer": "a"}
    qa.write_text("".join(json.dumps({"id": i, **q}) + "\n" for i in ("q0", "q0", "q1")))
    g = grpo_rows(str(qa))
    assert [r["id"] for r in g.rows] == ["q0", "q1"] and g.errors[0].line == 2


def test_import_and_align_record_repeated_ids_with_file_and_line(tmp_path):
    from tgsr.data.importers import run_importer

    wav = tmp_path / "c.wav"
    save_audio(wav, np.zeros(16000, dtype=np.float32))
    manifest = tmp_path / "in.jsonl"
    manifest.write_text("".join(json.dumps({"id": i, "audio": str(wav), "transcript": "hello"}) + "\n"
                                for i in ("c1", "c2", "c1")))
    result = run_importer("manifest", manifest)
    assert [it.id for it in result.items] == ["c1", "c2"]
    assert result.errors == [{"path": str(manifest), "line": 3, "clip": "c1", "audio": str(wav),
                              "reason": f"duplicate id 'c1': the first, at {manifest}:1, is kept"}]

    from tgsr.data.pipeline import align_manifest

    class Fixed:
        def align(self, audio, transcript):
            return [Word(text="hello", start=0.1, end=0.5)]

        def describe(self):
            return "fixed"

    summary = align_manifest(manifest, tmp_path / "words.jsonl", backend="none", aligner=Fixed(), progress=False)
    assert summary.aligned == 2 and summary.bad_records == 1
    row = json.loads((tmp_path / "words.errors.jsonl").read_text())
    assert row["stage"] == "manifest" and row["line"] == 3 and row["path"] == str(manifest)
    assert [json.loads(x)["clip_id"] for x in (tmp_path / "words.jsonl").read_text().splitlines()] == ["c1", "c2"]
