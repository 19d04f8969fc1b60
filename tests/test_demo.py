"""The demo pipeline: stage cache, listening check, and one tiny end-to-end run.

The end-to-end test runs every stage of ``tgsr demo`` with a configuration far smaller than
``--quick`` (an xs model, a few steps per stage): it checks that the pipeline connects,
writes results.json and report.html, and that a second run resumes from the cache. The
numbers it produces mean nothing; the ``--quick`` and full runs are run by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tgsr.demo import DEMO_RECIPES, DemoConfig, StageRunner, listening_check, run_demo
from tgsr.records import Prediction, write_jsonl


def _quiet(_msg: str) -> None:
    pass


def test_stage_cache_reuses_finished_stages_and_tracks_inputs(tmp_path):
    calls = []

    def work(tag):
        def fn(d: Path) -> dict:
            calls.append(tag)
            (d / "out.txt").write_text(tag)
            return {"tag": tag}
        return fn

    r1 = StageRunner(tmp_path, echo=_quiet)
    a = r1.run("a", {"x": 1}, work("a1"))
    b = r1.run("b", {"y": 1}, work("b1"), a)
    assert calls == ["a1", "b1"] and (b.dir / "stage.json").exists()

    r2 = StageRunner(tmp_path, echo=_quiet)
    a2 = r2.run("a", {"x": 1}, work("a2"))
    b2 = r2.run("b", {"y": 1}, work("b2"), a2)
    assert calls == ["a1", "b1"] and a2.cached and b2.cached and b2.summary == {"tag": "b1"}

    # a changed setting re-runs the stage and everything that reads it
    a3 = r2.run("a", {"x": 2}, work("a3"))
    b3 = r2.run("b", {"y": 1}, work("b3"), a3)
    assert calls == ["a1", "b1", "a3", "b3"] and b3.hash != b.hash


def test_interrupted_stage_is_wiped_unless_resumable(tmp_path):
    runner = StageRunner(tmp_path, echo=_quiet)

    def crash(d: Path) -> dict:
        (d / "partial.txt").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        runner.run("train", {}, crash)
    with pytest.raises(RuntimeError):
        runner.run("eval", {}, crash, resumable=True)
    seen = {}

    def look(d: Path) -> dict:
        seen[d.name.split("-")[0]] = (d / "partial.txt").exists()
        return {}

    runner.run("train", {}, look)
    runner.run("eval", {}, look, resumable=True)
    assert seen == {"train": False, "eval": True}


def test_listening_gate_p_values_match_scipy():
    from scipy.stats import binomtest

    from tgsr.analysis.listening import listening_gate

    own = [i % 5 < 2 for i in range(60)]          # 0.40
    swapped = [i % 10 == 0 for i in range(60)]    # 0.10, nested in own
    g = listening_gate(own, swapped, 0.25, alpha=0.05)
    assert g["p_above_chance"] == pytest.approx(binomtest(24, 60, 0.25, alternative="greater").pvalue)
    assert g["p_above_swapped"] == pytest.approx(binomtest(18, 18, 0.5, alternative="greater").pvalue)
    assert g["passed"] and g["only_own_correct"] == 18 and g["only_swapped_correct"] == 0
    with pytest.raises(Exception, match="swapped"):
        listening_gate(own, swapped[:-1], 0.25)


def _run(tmp_path: Path, name: str, correct: list[bool]) -> object:
    from tgsr.demo import Stage

    d = tmp_path / name
    write_jsonl(d / "predictions.jsonl", [Prediction(id=f"q{i}", completion="x", correct=c, gold_letter="a",
                                                     meta={"choices": ["w", "x", "y", "z"]})
                                          for i, c in enumerate(correct)])
    n = len(correct)
    return Stage(name, d, name, {"tgsr": {"items": n, "accuracy": 100.0 * sum(correct) / n}, "chance": 0.25},
                 0.0, False)


def test_listening_check_passes_only_above_chance_and_swapped(tmp_path):
    n = 40
    own = _run(tmp_path, "own", [i < 24 for i in range(n)])            # 0.60
    swapped = _run(tmp_path, "swapped", [i < 10 for i in range(n)])    # 0.25, nested in own
    c = listening_check(own, swapped, alpha=0.05)
    assert c["passed"] and c["only_own_correct"] == 14 and c["only_swapped_correct"] == 0
    assert c["p_above_chance"] < 1e-4 and c["p_above_swapped"] < 1e-3

    # well above chance, but the swapped-audio control is just as good: a text prior, not listening
    prior = _run(tmp_path, "prior", [i < 24 for i in range(n)])
    c = listening_check(own, prior, alpha=0.05)
    assert not c["passed"] and c["p_above_swapped"] == 1.0

    # at chance
    chance = _run(tmp_path, "chance", [i % 4 == 0 for i in range(n)])
    nothing = _run(tmp_path, "nothing", [False] * n)
    c = listening_check(chance, nothing, alpha=0.05)
    assert not c["passed"] and c["p_above_chance"] > 0.05


def test_ordinal_turn_rows_name_every_turn_as_the_corpus_does(synth_corpus):
    """The demo's STA rows: every turn, named by speaker ordinal exactly as the corpus's own
    turn-level STA rows name it (where those use an ordinal), with the same times."""
    from tgsr.demo import ordinal_turn_rows
    from tgsr.records import ClipWords, StaExample, read_jsonl

    for split in ("train", "test"):
        words = read_jsonl(synth_corpus / split / "words.jsonl", ClipWords).records
        rows = [r for c in words for r in ordinal_turn_rows(c)]
        assert len(rows) == sum(len(c.utterances) for c in words)
        assert all("speaker's" in r.phrase and "voice" not in r.phrase and r.granularity == "turn" for r in rows)
        mine = {(r.clip_id, r.phrase): (r.start, r.end) for r in rows}
        assert len(mine) == len(rows)  # no two turns of a clip share a name
        theirs = [x for x in read_jsonl(synth_corpus / split / "sta.jsonl", StaExample).records
                  if x.granularity == "turn" and "speaker's" in x.phrase]
        assert theirs
        for x in theirs:
            assert mine[(x.clip_id, x.phrase)] == (x.start, x.end)


def test_options_in_natural_order():
    import random

    from tgsr.data.questions import start_range_options
    from tgsr.demo import option_order_key

    ranges = start_range_options()
    assert ranges[0].startswith("before") and ranges[-1].startswith("after")
    for seed in range(5):
        shuffled = ranges[:]
        random.Random(seed).shuffle(shuffled)
        assert sorted(shuffled, key=option_order_key) == ranges
    times = ["at 12.5 seconds", "at 3.2 seconds", "at 1.0 seconds", "at 9.8 seconds"]
    assert sorted(times, key=option_order_key) == ["at 1.0 seconds", "at 3.2 seconds", "at 9.8 seconds",
                                                   "at 12.5 seconds"]
    turns = ["the third turn", "the first turn", "the fourth turn", "the second turn"]
    assert [t.split()[1] for t in sorted(turns, key=option_order_key)] == ["first", "second", "third", "fourth"]


def test_result_tables_are_rows_by_column_name():
    from tgsr.demo.tables import AccuracyRow, StageRow, Table, TaskAccuracyRow
    from tgsr.report.html import table_html

    row = AccuracyRow(model="TGSR", recipe="r", prompt="grounded", own=0.5, n=1000, no_answer=0.0,
                      own_on_controls=0.45, swapped=0.25, silence=None, own_minus_swapped=0.2,
                      p_own_vs_swapped=0.01, n_controls=200, note="")
    t = Table("accuracy", "Accuracy", [row], AccuracyRow).to_dict()
    assert t["columns"] == ["model", "recipe", "prompt", "own", "n", "no answer", "own (control items)", "swapped",
                            "silence", "own - swapped", "McNemar p", "n controls", "note"] == AccuracyRow.headings()
    assert t["rows"] == [{"model": "TGSR", "recipe": "r", "prompt": "grounded", "own": 0.5, "n": 1000,
                          "no answer": 0.0, "own (control items)": 0.45, "swapped": 0.25, "silence": None,
                          "own - swapped": 0.2, "McNemar p": 0.01, "n controls": 200, "note": ""}]
    html = table_html(t)
    assert html.index(">0.500<") < html.index(">0.250<") < html.index("&ndash;")  # own, swapped, silence
    by = Table("by_task", "t", [TaskAccuracyRow("TGSR", {"turn_start": 0.4, "longest_turn": None})],
               TaskAccuracyRow).to_dict()
    assert by["columns"] == ["model", "turn_start", "longest_turn"]
    assert Table("stages", "Stages", [], StageRow).to_dict()["columns"] == ["stage", "folder", "seconds",
                                                                           "cached this run"]
    with pytest.raises(TypeError, match="a StageRow row in a table of AccuracyRow"):
        Table("accuracy", "Accuracy", [StageRow("a", "b", 1.0, False)], AccuracyRow).to_dict()


def _tiny_config() -> DemoConfig:
    cfg = DemoConfig(
        # test clips 80-82 hold at least 4 questions (the default range's first three hold 2)
        name="test", recipes=DEMO_RECIPES / "quick", n_train_clips=5, n_test_clips=3, first_test_clip=80,
        n_validation_clips=3,
        validation_items=4, model_size="xs",
        families=("longest_turn", "start_range", "turn_start"),
        eval_items=4, control_items=3, grpo_seeds=2, eval_batch_size=4, timestamp_items=3, attention_items=1,
        examples=1)
    # the quick recipes, smaller still (`tgsr train` overrides)
    return (cfg.with_overrides("base", "max_steps=2", "per_device_train_batch_size=4", "warmup_steps=1")
            .with_overrides("sta", "max_steps=1", "per_device_train_batch_size=4", "warmup_steps=0")
            .with_overrides("sft", "max_steps=1", "per_device_train_batch_size=4", "warmup_steps=0")
            .with_overrides("grpo", "max_steps=1", "num_generations=2", "per_device_train_batch_size=4",
                            "max_completion_length=12"))


@pytest.mark.slow
def test_demo_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "run"
    cfg = _tiny_config()

    # 1. With 4 test items no policy can pass the listening check (McNemar needs >= 5
    #    discordant items), so GRPO is not run and the report says so.
    first = run_demo(cfg, out, threads=1)
    skipped = [r for r in first["tables"][0]["rows"] if r["note"].startswith("not trained")]
    assert len(skipped) == 4 and all(r["own"] is None for r in skipped)
    # the gate scored the validation split, never test items
    assert all(c["n"] == 4 for c in first["checks"].values())
    gate_runs = sorted(out.glob("stages/eval-*-validation-own-*/predictions.jsonl"))
    assert len(gate_runs) == 2
    assert all(line.startswith('{"id": "validation-') for f in gate_runs for line in f.read_text().splitlines())
    assert any(n["text"].startswith("GRPO was not run") for n in first["notices"])
    assert all(not c["passed"] for c in first["checks"].values())
    # citation following of the GRPO start on validation (its gate) and test, every item counted
    cf = {t["id"]: t for t in first["tables"]}["citation_following"]["rows"]
    assert [(r["split"], r["items"]) for r in cf] == [("validation", 4), ("test", 3)]
    assert all(0 < r["probed"] <= r["items"] for r in cf), cf

    # 2. --grpo-anyway trains the four GRPO arms; everything before them is cached.
    results = run_demo(cfg, out, threads=1, grpo_anyway=True)
    log = capsys.readouterr().out
    assert "synthesise the corpus: cached" in log and "Stage 2: TGSR" in log
    saved = json.loads((out / "results.json").read_text())
    tables = {t["id"]: t for t in saved["tables"]}
    assert {"accuracy", "timestamps", "behaviours", "attention", "listening_check", "stages"} <= set(tables)
    acc_rows = tables["accuracy"]["rows"]
    assert len(acc_rows) == 8  # base, only STA, SFT plain, grounded SFT, four GRPO arms
    recipes = {r["model"]: r["recipe"] for r in acc_rows}
    assert recipes["Reasoning SFT w/o timestamps"].startswith("pi_0 ->")  # both SFTs from pi_0
    grpo_recipes = [v for k, v in recipes.items() if k.startswith(("TGSR", "GRPO"))]
    grpo_labels = [k for k in recipes if k.startswith(("TGSR", "GRPO"))]
    assert len(grpo_recipes) == 4 and all(v.endswith("KL to pi_0") for v in grpo_recipes)
    sta_model = str(next(out.glob("stages/sta-*")) / "model")
    for summary in out.glob("stages/grpo-*/stage.json"):
        assert json.loads(summary.read_text())["summary"]["reference_model"] == sta_model
    contrasts = tables["contrasts"]["rows"]
    assert len(contrasts) == 6 and all(r["n"] == 4 and 0 <= r["McNemar p"] <= 1 for r in contrasts), contrasts
    assert all(list(row) == tables["accuracy"]["columns"] for row in acc_rows)
    for key in ("own", "swapped", "silence", "own - swapped"):
        assert all(row[key] is not None for row in acc_rows)
    # own audio on every test item, the controls on the first three, paired
    assert all(row["n"] == 4 and row["n controls"] == 3 for row in acc_rows)
    assert all(row["own - swapped"] == pytest.approx(row["own (control items)"] - row["swapped"]) for row in acc_rows)
    # two training seeds per GRPO arm, each against its start policy on the same items
    seeds = tables["grpo_seeds"]["rows"]
    assert sorted((r["model"], r["training seed"]) for r in seeds) == sorted(
        (label, s) for label in grpo_labels for s in (0, 1))
    assert all(r["n"] == 4 for r in seeds) and len(list(out.glob("stages/grpo-*-seed1-*"))) == 4
    # citation following after GRPO: each grounded arm's every seed, on the same test items
    cf = tables["citation_following"]["rows"]
    assert len(cf) == 2 + 3 * 2 and all(r["items"] == 3 for r in cf if r["split"] == "test")
    assert sum(r["model"].startswith(("TGSR", "GRPO")) for r in cf) == 6
    # Table 4 on the same text: every model read the same reference rationales, which cite the gold span
    same = tables["attention_same_text"]["rows"]
    assert len(same) == 8 and all(r["items"] == 1 and r["items citing"] == 1 for r in same)
    assert all(r["cited-span ratio"] is not None and r["cited-span ratio"] > 0 for r in same)
    texts = {json.loads(f.read_text().splitlines()[0])["completion"]
             for f in out.glob("stages/attention-same-text-*/attention_items.jsonl")}
    assert len(texts) == 1 and "From " in next(iter(texts))
    assert any("--grpo-anyway" in n["text"] for n in saved["notices"])
    assert saved["examples"] and len(saved["examples"][0]["traces"]) == 3
    html = (out / "report.html").read_text()
    assert 'id="table-accuracy"' in html and "data:image/png;base64," in html
    assert "own - swapped" in log

    # 3. A third run finds every stage done and rebuilds the same tables.
    again = run_demo(cfg, out, threads=1, grpo_anyway=True)
    log = capsys.readouterr().out
    assert " ...\n" not in log.split("report:")[0] and log.count(": cached") >= 20
    assert again["tables"][0]["rows"] == results["tables"][0]["rows"] == acc_rows


def test_tgsr_ask_prints_answer_and_writes_viewer(tmp_path, capsys):
    import argparse

    import numpy as np

    from tgsr.audio import save_audio
    from tgsr.cli import CommandTree
    from tgsr.commands import demo as demo_commands
    from tgsr.models.tiny import build_tiny

    model = build_tiny("qwen2.5-omni", "xs", tmp_path / "tiny", seed=0)
    t = np.arange(16000 * 3) / 16000
    save_audio(tmp_path / "clip.wav", (0.2 * np.sin(2 * np.pi * 180 * t)).astype(np.float32))
    parser = argparse.ArgumentParser(prog="tgsr")
    demo_commands.register(CommandTree(parser))
    args = parser.parse_args(["ask", str(model), str(tmp_path / "clip.wav"), "Which voice speaks first?",
                              "--choice", "the deep male voice", "--choice", "the high female voice",
                              "--max-new-tokens", "12", "--html", str(tmp_path / "view" / "a.html")])
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert "cited spans:" in out and "answer:" in out and "viewer:" in out
    page = (tmp_path / "view" / "a.html").read_text()
    assert "Which voice speaks first?" in page and 'src="data:audio/wav;base64,' in page

    bad = parser.parse_args(["ask", str(tmp_path / "nope"), str(tmp_path / "clip.wav"), "q", "--choice", "a",
                             "--choice", "b"])
    from tgsr.errors import TgsrError

    with pytest.raises(TgsrError, match="model folder not found"):
        bad.handler(bad)
    one = parser.parse_args(["ask", str(model), str(tmp_path / "clip.wav"), "q", "--choice", "a"])
    assert one.handler(one) == 2


def test_adopting_a_base_checks_its_corpus_seed(tmp_path):
    from tgsr.demo import _check_base_seed, adopt_base
    from tgsr.errors import TgsrError

    src = tmp_path / "base"
    (src / "checkpoint-5").mkdir(parents=True)
    (src / "model.safetensors").write_bytes(b"weights")
    (src / "PROVENANCE.json").write_text(json.dumps({"corpus_seed": 3, "made_by": "tgsr demo --base-only"}))
    _check_base_seed(src, 3)
    with pytest.raises(TgsrError, match="seed 3"):
        _check_base_seed(src, 0)
    d = tmp_path / "stage"
    d.mkdir()
    info = adopt_base(d, src)
    assert (d / "model" / "model.safetensors").read_bytes() == b"weights"
    assert not (d / "model" / "checkpoint-5").exists()
    assert info["provenance"]["made_by"] == "tgsr demo --base-only"
    with pytest.raises(TgsrError, match="not a base model folder"):
        adopt_base(tmp_path / "stage2", tmp_path / "nothing")


def test_demo_config_refuses_splits_and_sizes_that_would_mislead():
    full = DemoConfig.full()
    # the gate's validation dialogues never overlap the scored test dialogues
    assert full.first_validation_clip + full.n_validation_clips <= full.first_test_clip
    assert full.eval_items >= 1000 and full.control_items < full.eval_items
    with pytest.raises(ValueError, match="overlap the test clips"):
        DemoConfig(name="x", first_test_clip=200, n_test_clips=600, first_validation_clip=700)
    with pytest.raises(ValueError, match="control_items must be between 1 and eval_items"):
        DemoConfig(name="x", eval_items=100, control_items=200)
    with pytest.raises(ValueError, match="grpo_seeds must be at least 1"):
        DemoConfig(name="x", grpo_seeds=0)
    with pytest.raises(ValueError, match="sta_replay must be at least 1"):
        DemoConfig(name="x", sta_replay=0)


def test_default_threads_does_not_count_the_demo_as_another_job(monkeypatch):
    import os

    from tgsr.demo import default_threads

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.0, 1.0, 1.0))
    assert default_threads() == 1                 # at the start: the load is another job's
    assert default_threads(own_load=1.0) == 2     # between stages: the load was the demo's own stage
    monkeypatch.setattr(os, "getloadavg", lambda: (3.0, 3.0, 3.0))
    assert default_threads(own_load=2.0) == 1     # another job keeps one core busy


def _option_at(start: float, choices: list[str], task: str) -> str:
    """The option a listener who reads the cited start would pick: the nearest time (options are
    >= 0.3 s apart; a citation is floored to 10 ms, an option rounded to 100 ms), or its range."""
    from tgsr.data.questions import START_EDGES, start_range_options

    if task == "turn_start":
        return min(choices, key=lambda c: abs(float(c.split()[1]) - start))
    return start_range_options()[sum(start > e for e in START_EDGES)]


def test_timing_counterfactuals_imply_the_option_their_citation_starts_in(synth_corpus):
    from tgsr.analysis.citation_following import citation_probes
    from tgsr.data.questions import timing_counterfactuals
    from tgsr.demo.steps import first_claim, in_natural_order
    from tgsr.records import QAExample, read_jsonl
    from tgsr.spans import find_spans

    qa = [in_natural_order(x) for split in ("train", "test")
          for x in read_jsonl(synth_corpus / split / "qa.jsonl", QAExample).records]
    timing = [x for x in qa if x.task in ("turn_start", "start_range")]
    assert {x.task for x in timing} == {"turn_start", "start_range"}
    assert timing_counterfactuals("longest_turn", ["the first turn"] * 4, "a", [(0.0, 1.0)], 5.0) is None
    for x in timing:
        x.rationale = first_claim(x.rationale)
        x.meta = {**x.meta, **timing_counterfactuals(x.task, x.choices, x.answer, x.evidence, x.duration)}
        cfs = x.meta["counterfactuals"]
        assert 1 <= len(cfs) <= 3 and x.answer not in {c["answer"] for c in cfs}
        for c in cfs:
            a, b = c["span"]
            assert 0 <= a < b <= x.duration
            assert _option_at(a, x.choices, x.task) == x.choices["abcd".index(c["answer"])]
    probes, skipped = citation_probes(timing)
    assert not skipped and len(probes) == len(timing)
    # a listener that answers from the cited start follows every counterfactual, and the gold
    # prefix gives it the gold answer
    for p in probes:
        gold_start = find_spans(p.gold_prefix)[0].start
        cf_start = find_spans(p.counterfactual_prefix)[0].start
        assert _option_at(gold_start, p.choices, p.task) == p.choices["abcd".index(p.gold)]
        assert _option_at(cf_start, p.choices, p.task) == p.choices["abcd".index(p.counterfactual_answer)]
