"""report.html and the single-example viewer, without a browser: structure, escaping, errors."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from tgsr.audio import save_audio
from tgsr.errors import TgsrError
from tgsr.report import load_results, render_report, write_report, write_viewer
from tgsr.report.html import format_cell
from tgsr.report.viewer import EMBED_AUDIO_MAX_BYTES, audio_src, highlight_citations


def _run_parser():
    from tgsr.cli import CommandTree
    from tgsr.commands import demo

    parser = argparse.ArgumentParser(prog="tgsr")
    demo.register(CommandTree(parser))
    return parser


def test_format_cell():
    assert format_cell(0.12345) == "0.123"
    assert format_cell(7) == "7"
    assert format_cell(None) == format_cell(float("nan")) == "&ndash;"
    assert format_cell(True) == "yes"
    assert format_cell("<b>") == "&lt;b&gt;"


def test_highlight_escapes_text_around_and_inside_citations():
    text = "<i>x</i> From 1.00s to 2.50s & then from 4 to 3 seconds"
    out = highlight_citations(text, "player-0")
    assert "<i>" not in out and "&lt;i&gt;x&lt;/i&gt;" in out and "&amp; then" in out
    assert 'data-start="1.00" data-end="2.50"' in out
    assert 'class="cite invalid"' in out  # start >= end is shown, marked invalid
    assert highlight_citations(None, None).startswith("<span")


def test_audio_embedded_when_short_and_linked_when_long(tmp_path):
    save_audio(tmp_path / "a.wav", np.zeros(1600, np.float32))
    assert audio_src(tmp_path / "a.wav", tmp_path).startswith("data:audio/wav;base64,")
    assert audio_src(tmp_path / "a.wav", tmp_path, embed_max_bytes=10) == "a.wav"
    assert EMBED_AUDIO_MAX_BYTES > 100_000


def _results():
    return {"title": "t", "setting": {"k": "v"},
            "tables": [{"id": "accuracy", "columns": ["model", "own"], "rows": [["m<1>", 0.5]]}],
            "curves": [{"title": "c", "series": {"a": {"x": [0, 1], "y": [0.0, 1.0]}, "empty": {"y": []}}}],
            "figures": [{"title": "missing", "path": "plots/nope.png"}],
            "examples": [{"id": "e", "audio": "audio/missing.wav", "question": "q", "choices": ["x", "y"],
                          "answer": "a", "traces": [{"label": "l", "completion": "Final answer: (a) x",
                                                     "pred_letter": "a", "correct": True}]}]}


def test_report_survives_missing_audio_and_figures(tmp_path):
    page = render_report(_results(), tmp_path)
    assert 'id="table-accuracy"' in page and "m&lt;1&gt;" in page
    assert "figure missing: plots/nope.png" in page
    assert "audio unavailable" in page and "file not found" in page
    assert page.count("data:image/png;base64,") == 1  # the curve; no waveform without audio


def test_tgsr_report_regenerates_from_saved_results(tmp_path, capsys):
    (tmp_path / "results.json").write_text(json.dumps(_results()))
    args = _run_parser().parse_args(["report", str(tmp_path)])
    assert args.handler(args) == 0
    html_text = (tmp_path / "report.html").read_text()
    assert "m&lt;1&gt;" in html_text
    assert str(tmp_path / "report.html") in capsys.readouterr().out


def test_report_errors_name_the_file(tmp_path):
    with pytest.raises(TgsrError, match="no saved results"):
        load_results(tmp_path)
    (tmp_path / "results.json").write_text('{"title": "x",\n "tables": [}')
    with pytest.raises(TgsrError, match=r"results.json:2: invalid JSON"):
        write_report(tmp_path)
    (tmp_path / "results.json").write_text("[1, 2]")
    with pytest.raises(TgsrError, match="expected a JSON object"):
        load_results(tmp_path)
    with pytest.raises(TgsrError, match="not a folder"):
        load_results(tmp_path / "nope")


def test_viewer_page_is_self_contained(tmp_path):
    save_audio(tmp_path / "clip.wav", (0.1 * np.sin(np.arange(16000) / 5)).astype(np.float32))
    ex = {"id": "clip", "audio": str(tmp_path / "clip.wav"), "question": "Who?", "choices": ["a", "b"],
          "traces": [{"label": "answer", "completion": "From 0.10s to 0.50s someone.\nFinal answer: (b) b",
                      "pred_letter": "b", "correct": None}]}
    out = write_viewer(tmp_path / "sub" / "view.html", ex)
    page = out.read_text()
    assert 'src="data:audio/wav;base64,' in page and "data:image/png;base64," in page
    assert 'data-player="player-0" data-start="0.10" data-end="0.50"' in page
    assert "not scored" in page
