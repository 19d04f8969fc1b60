"""``tgsr.train.datasets.sta_and_sft_rows``: Stage 1's rows and supervised QA rows in one set."""

from __future__ import annotations

import json

from tgsr.train.datasets import sft_rows, sta_and_sft_rows, sta_rows


def test_sta_and_sft_rows_hold_both_sets_and_every_error(toy_corpus):
    sta_file, qa_file = toy_corpus / "train" / "sta.jsonl", toy_corpus / "train" / "qa.jsonl"
    mixed = sta_and_sft_rows(str(sta_file), str(qa_file), "rationale_plain", "direct")
    sta, sft = sta_rows(str(sta_file)), sft_rows(str(qa_file), "rationale_plain", "direct")
    assert mixed.rows == sta.rows + sft.rows and len(sta.rows) and len(sft.rows)
    assert "Final answer:" in mixed.rows[-1]["target"] and "starts at" in mixed.rows[0]["target"]
    # a malformed line in either file is reported, not dropped silently
    bad = qa_file.with_name("qa_with_bad_lines.jsonl")  # beside it: its audio paths are relative
    bad.write_text(qa_file.read_text() + "{not json\n" + json.dumps({"id": "x"}) + "\n")
    try:
        with_errors = sta_and_sft_rows(str(sta_file), str(bad), "rationale_plain", "direct")
    finally:
        bad.unlink()
    assert len(with_errors.rows) == len(mixed.rows) and len(with_errors.errors) == 2
    assert len(sta_and_sft_rows(str(sta_file), str(qa_file), limit=2).rows) == 4  # the limit is per file


def test_replay_repeats_the_qa_rows_and_refuses_less_than_once(toy_corpus):
    import pytest

    from tgsr.errors import TgsrError

    sta_file, qa_file = toy_corpus / "train" / "sta.jsonl", toy_corpus / "train" / "qa.jsonl"
    sta, sft = sta_rows(str(sta_file)), sft_rows(str(qa_file), "rationale_plain", "direct")
    assert sta_and_sft_rows(str(sta_file), str(qa_file), replay=3).rows == sta.rows + sft.rows * 3
    with pytest.raises(TgsrError, match="replay"):
        sta_and_sft_rows(str(sta_file), str(qa_file), replay=0)
