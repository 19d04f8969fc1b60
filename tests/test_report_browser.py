"""The report in a real browser: headless Chromium renders it, we read back the live DOM.

The page is rendered from hand-made results whose model text, questions, choices, table
cells and notices carry hostile HTML. If any of it were inserted unescaped, the browser
would run it (the payloads mark the DOM) or create elements for it; the test checks neither
happened, that the tables show the expected cells, and that the screenshot was written.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from tgsr.audio import save_audio
from tgsr.report import write_report

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                  "--hide-scrollbars", "--mute-audio"]

SCRIPT_PAYLOAD = "<script>document.documentElement.setAttribute('data-pwned','script')</script>"
IMG_PAYLOAD = "<img src=x onerror=\"document.documentElement.setAttribute('data-pwned','img')\">"
ATTR_PAYLOAD = "\" onmouseover=\"alert(1)\" data-x=\""
ALERT = "<script>alert(1)</script>"


def _chromium() -> str | None:
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        path = shutil.which(name) or (name if os.path.isabs(name) and os.path.exists(name) else None)
        if path:
            return path
    return None


class DomSummary(HTMLParser):
    """Elements and attributes of the rendered DOM, and the text of each table's cells."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "table":
            self._table = a.get("data-table") or a.get("id") or f"t{len(self.tables)}"
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _results(audio_rel: str) -> dict:
    return {
        "title": f"Hostile report {ALERT}",
        "summary": IMG_PAYLOAD,
        "setting": {"corpus": SCRIPT_PAYLOAD, "steps": 12},
        "notices": [{"level": "fail", "text": f"check failed {ALERT}"}],
        "tables": [
            {"id": "accuracy", "title": "Accuracy <b>bold?</b>", "caption": IMG_PAYLOAD,
             "columns": ["model", "own", "swapped", "silence"],
             "rows": [["TGSR " + SCRIPT_PAYLOAD, 0.625, 0.3125, None],
                      {"model": "base", "own": 0.5, "swapped": 0.25, "silence": 0.25}]},
            {"id": "timestamps", "title": "Timestamps", "columns": ["model", "IoU", "n"],
             "rows": [["only STA", 0.71234, 32]]},
        ],
        "curves": [{"title": "reward", "series": {"GRPO " + ALERT: {"x": [1, 2, 3], "y": [0.2, 0.4, 0.5]}}}],
        "examples": [{
            "id": "ex-1" + ATTR_PAYLOAD, "audio": audio_rel, "task": "turn_first",
            "question": "Who speaks first? " + SCRIPT_PAYLOAD, "choices": ["the man " + IMG_PAYLOAD, "the woman"],
            "answer": "a", "evidence": [[0.0, 1.5]],
            "traces": [
                {"label": "vanilla " + ALERT, "pred_letter": "b", "correct": False,
                 "completion": f"{SCRIPT_PAYLOAD} {IMG_PAYLOAD}\nFinal answer: (b) the woman"},
                {"label": "grounded", "model": ATTR_PAYLOAD,
                 "completion": f"From 0.00s to 1.40s the first voice {ALERT} speaks.\nFinal answer: (a) the man",
                 "pred_letter": "a", "correct": True},
            ],
        }],
    }


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    run_dir = tmp_path_factory.mktemp("report_run")
    sr = 16_000
    t = np.arange(int(sr * 3.0)) / sr
    save_audio(run_dir / "audio" / "clip.wav", (0.3 * np.sin(2 * np.pi * 200 * t) * (t < 1.5)).astype(np.float32))
    report = write_report(run_dir, _results("audio/clip.wav"))
    shot = run_dir / "screenshot.png"
    profile = tmp_path_factory.mktemp("chromium_profile")
    base = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1280,1800"]
    url = report.resolve().as_uri()
    try:
        dom = subprocess.run(base + ["--virtual-time-budget=3000", "--dump-dom", url],
                             capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        # an injected alert() blocks the headless page: escaping failed
        pytest.fail("the page hung in Chromium: an injected script (alert) probably ran")
    assert dom.returncode == 0, dom.stderr[-2000:]
    subprocess.run(base + [f"--screenshot={shot}", url], capture_output=True, text=True, timeout=90)
    artifacts = os.environ.get("TGSR_TEST_ARTIFACTS")
    if artifacts and shot.exists():
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / "report_screenshot.png")
    parsed = DomSummary()
    parsed.feed(dom.stdout)
    return {"dom": dom.stdout, "parsed": parsed, "shot": shot, "report": report}


def test_tables_render_with_formatted_cells(rendered):
    tables = rendered["parsed"].tables
    acc = tables["accuracy"]
    assert acc[0] == ["model", "own", "swapped", "silence"]
    assert acc[1][0] == "TGSR " + SCRIPT_PAYLOAD  # shown as text, not run
    assert acc[1][1:] == ["0.625", "0.312", "–"]
    assert acc[2] == ["base", "0.500", "0.250", "0.250"]
    assert tables["timestamps"][1] == ["only STA", "0.712", "32"]
    assert ["corpus", SCRIPT_PAYLOAD] in tables["setting"]


def test_model_text_is_escaped_and_inert(rendered):
    parsed = rendered["parsed"]
    html_attrs = next(a for tag, a in parsed.tags if tag == "html")
    assert "data-pwned" not in html_attrs, "an injected script or handler ran in the browser"
    scripts = [a for tag, a in parsed.tags if tag == "script"]
    assert len(scripts) == 1, "only the report's own script may exist"
    assert not any(tag == "img" and a.get("src") == "x" for tag, a in parsed.tags)
    assert not any("onerror" in a or "onmouseover" in a for _, a in parsed.tags)
    assert not any(tag in ("b", "i") for tag, _ in parsed.tags)
    text = "".join(parsed.text)
    assert SCRIPT_PAYLOAD in text and IMG_PAYLOAD in text and ALERT in text  # visible as text


def test_citations_highlighted_and_players_wired(rendered):
    parsed = rendered["parsed"]
    marks = [a for tag, a in parsed.tags if tag == "mark"]
    assert [(m.get("data-start"), m.get("data-end")) for m in marks] == [("0.00", "1.40")]
    players = {a["id"] for tag, a in parsed.tags if tag == "audio"}
    assert players and marks[0]["data-player"] in players
    buttons = [a for tag, a in parsed.tags if tag == "button" and "data-start" in a]
    assert {(b["data-start"], b["data-end"]) for b in buttons} == {("0.00", "1.50"), ("0.00", "1.40")}
    imgs = [a for tag, a in parsed.tags if tag == "img"]
    assert imgs and all(a["src"].startswith("data:image/png;base64,") for a in imgs)


def test_screenshot_saved(rendered):
    from matplotlib.image import imread

    shot = rendered["shot"]
    assert shot.exists()
    pixels = imread(shot)  # a decodable PNG of the window, with content drawn (not one flat colour)
    assert pixels.shape[:2] == (1800, 1280)
    assert pixels[..., :3].reshape(-1, 3).std(axis=0).max() > 0.05
