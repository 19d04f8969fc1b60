"""MELD weighted F1 through the run scorer, and `tgsr eval table` with MELD and STA columns."""

import json

import pytest

from tgsr.cli import main
from tgsr.eval.benchmarks import BENCHMARKS
from tgsr.eval.run import PREDICTIONS, RUN_INFO, RunConfig, base_prediction, finalize
from tgsr.records import StaExample, write_jsonl


def _run_folder(path, benchmark, preds, n_items, label):
    path.mkdir(parents=True)
    cfg = RunConfig(model="m", benchmark=benchmark, out=str(path), label=label)
    (path / RUN_INFO).write_text(json.dumps({**cfg.__dict__, "n_items": n_items}))
    write_jsonl(path / PREDICTIONS, preds)
    return finalize(path)


def test_meld_scores_and_table(benchmarks_dir, tmp_path, capsys):
    exs = BENCHMARKS["meld"].load(tmp_path, benchmarks_dir / "meld/test_sent_emo.csv")[:20]
    preds = []
    for i, ex in enumerate(exs):
        p = base_prediction(ex, "own")
        # always answer "neutral": right exactly on the neutral items; one unparseable answer
        p.completion = "Final answer: (a) neutral" if i else "hmm"
        preds.append(p)
    m = _run_folder(tmp_path / "meld", "meld", preds, 21, "always neutral")
    gold = [ex.choices[ex.answer_index] for ex in exs]
    n_neutral = sum(g == "neutral" for g in gold[1:])
    assert m["tgsr"]["correct"] == n_neutral and m["tgsr"]["items"] == 21 and m["tgsr"]["missing"] == 1
    assert m["tgsr"]["unparseable"] == 1
    wf1 = m["weighted_f1"]
    p_neu = n_neutral / 19
    r_neu = n_neutral / gold.count("neutral")
    f_neu = 2 * p_neu * r_neu / (p_neu + r_neu)
    assert wf1["f1"] == pytest.approx(f_neu * gold.count("neutral") / 20)
    assert wf1["missing_items"] == 1

    sta = []
    for i in range(4):
        ex = StaExample(id=f"s{i}", audio="/x.wav", phrase="p", start=1.0, end=2.0)
        p = base_prediction(ex, "own")
        p.completion = "The segment p starts at 1.00 seconds and ends at 2.00 seconds." if i < 3 else "?"
        sta.append(p)
    s = _run_folder(tmp_path / "sta", "sta", sta, 4, "always neutral")["sta"]
    assert s["mean_iou"] == pytest.approx(0.75) and s["sed"]["f1"] == pytest.approx(6 / 7)

    assert main(["eval", "table", str(tmp_path / "meld"), str(tmp_path / "sta"), "--out", str(tmp_path / "t")]) == 0
    md = (tmp_path / "t.md").read_text().splitlines()
    assert md[0] == "| Model | MELD | MELD wF1 | Avg | STA IoU | IoU≥0.7 | SED-F1 |"
    acc = 100 * n_neutral / 21
    assert md[2].startswith(f"| always neutral | {acc:.1f}† | {100 * wf1['f1']:.1f} | {acc:.1f} | 75.0 | 75.0 | 85.7 |")
    row = (tmp_path / "t.csv").read_text().splitlines()
    assert "meld_weighted_f1" in row[0] and "sta_sed_f1" in row[0]


def test_table_refuses_unfinished_runs(tmp_path):
    (tmp_path / "r").mkdir()
    assert main(["eval", "table", str(tmp_path / "r")]) == 1
