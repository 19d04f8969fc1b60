"""`tgsr analyze ...` end to end on tiny models and the small synthetic corpus."""

import json

import pytest

from tgsr.cli import main


@pytest.fixture(scope="module")
def eval_runs(tiny_omni_dir, synth_corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("analyze_runs")
    runs = {}
    for cond in ("own", "swapped", "silence"):
        out = root / cond
        rc = main(["eval", "run", "--model", str(tiny_omni_dir), "--benchmark", "synthetic", "--data-root",
                   str(synth_corpus), "--out", str(out), "--limit", "4", "--max-new-tokens", "8",
                   "--audio-condition", cond, "--quiet"])
        assert rc == 0
        runs[cond] = out
    return runs


def test_analyze_attention_two_models_with_probe_queries(tiny_omni_dir, tiny_qwen2_audio_dir, synth_corpus, tmp_path,
                                                         capsys):
    out = tmp_path / "att"
    rc = main(["analyze", "attention", "--model", str(tiny_omni_dir), "--model", str(tiny_qwen2_audio_dir),
               "--label", "omni", "--label", "qwen2audio", "--data", str(synth_corpus / "test" / "qa.jsonl"),
               "--queries", "--limit", "1", "--max-new-tokens", "6", "--out", str(out), "--quiet"])
    assert rc == 0
    table = (out / "table4.md").read_text()
    assert "| omni |" in table and "| qwen2audio |" in table
    for name in ("block_distribution_mass", "audio_by_layer_mass", "block_distribution_per_token",
                 "audio_by_layer_per_token"):
        assert (out / f"{name}.png").stat().st_size > 1000
    s = json.loads((out / "attention_summaries.json").read_text())
    assert s["omni"]["n_sequences"] == 3 and s["omni"]["n_failed"] == 0          # 1 clip x 3 probe queries
    assert sum(s["omni"]["mass"]["all"]["mean"].values()) == pytest.approx(1.0, abs=1e-4)
    items = [json.loads(x) for x in (out / "omni" / "attention_items.jsonl").read_text().splitlines()]
    assert [i["query"] for i in items] == ["What is happening?", "What is the spoken text?", "What are they doing?"]
    assert all(i["max_block_sum_error"] < 1e-9 for i in items)


def test_analyze_behaviors_and_listening_on_eval_runs(eval_runs, tmp_path, capsys):
    out = tmp_path / "beh"
    rc = main(["analyze", "behaviors", "--predictions", str(eval_runs["own"]), "--predictions",
               str(eval_runs["silence"]), "--asr", "none", "--out", str(out), "--quiet"])
    assert rc == 0
    s = json.loads((out / "behaviors.json").read_text())
    assert len(s) == 2
    for run in s.values():
        assert run["n_predictions"] == 4
        for m in ("regions_explored", "audiology_verify", "consistency", "grounding_precision"):
            assert run[m]["n"] + run[m]["n_na"] == 4
        assert run["audiology_verify"]["na_reasons"].get("no ASR backend (--asr none)", 0) + \
            run["audiology_verify"]["na_reasons"].get("no citation", 0) >= 1
    assert (out / "behaviors.png").exists()
    # the summary is what the run's own completions give: regions and accuracy recomputed here
    from tgsr.analysis.behaviors import regions_explored
    from tgsr.answers import extract_choice

    preds = [json.loads(x) for x in (eval_runs["own"] / "predictions.jsonl").read_text().splitlines()]
    own = next(v for k, v in s.items() if "silence" not in k)
    regions = [regions_explored(p["completion"]) for p in preds]
    assert own["regions_explored"]["mean"] == pytest.approx(sum(regions) / 4)
    right = sum(extract_choice(p["completion"], p["meta"]["choices"]).letter == p["gold_letter"] for p in preds)
    assert own["accuracy"]["mean"] == pytest.approx(right / 4)
    items = [json.loads(x) for x in (eval_runs["own"] / "behaviors" / "behaviors_items.jsonl").read_text().splitlines()]
    assert sorted(i["id"] for i in items) == sorted(p["id"] for p in preds)
    rc = main(["analyze", "listening", *map(str, eval_runs.values()), "--out", str(tmp_path / "listen")])
    assert rc == 0
    data = json.loads((tmp_path / "listen.json").read_text())
    assert len(data["rows"]) == 1
    row = data["rows"][0]
    assert all(row[c] is not None for c in ("own", "swapped", "silence"))
    assert row["gap_own_swapped"] == pytest.approx(row["own"] - row["swapped"])


def test_analyze_faithfulness_cli(tiny_omni_dir, synth_corpus, tmp_path, capsys):
    rc = main(["analyze", "faithfulness", "--model", str(tiny_omni_dir), "--data",
               str(synth_corpus / "test" / "qa.jsonl"), "--limit", "2", "--max-new-tokens", "8",
               "--out", str(tmp_path / "f"), "--quiet"])
    assert rc == 0
    s = json.loads((tmp_path / "f" / "faithfulness.json").read_text())
    assert s["n_items"] == 2 and s["n_tested"] + s["n_no_citation"] + s["n_failed"] == 2
    # the rates are the items' own flips (an untrained model may cite nothing: then no rate at all)
    rows = [json.loads(x) for x in (tmp_path / "f" / "faithfulness_items.jsonl").read_text().splitlines()]
    tested = [r for r in rows if "flip_cited" in r]
    assert len(rows) == 2 and len(tested) == s["n_tested"]
    if tested:
        assert s["flip_rate_cited"] == pytest.approx(sum(r["flip_cited"] for r in tested) / len(tested))
        assert all(0 < r["masked_fraction"] < 1 for r in tested)
    else:
        assert s["flip_rate_cited"] is None and s["flip_rate_random"] is None
    assert "flip rate" in capsys.readouterr().out


def test_analyze_reports_bad_input(tmp_path, capsys):
    assert main(["analyze", "behaviors", "--predictions", str(tmp_path), "--asr", "none"]) == 1
    assert "predictions.jsonl: file not found" in capsys.readouterr().err
    assert main(["analyze", "attention", "--model", "x", "--data", "nope", "--out", str(tmp_path)]) == 1
    assert "neither a file nor a benchmark" in capsys.readouterr().err


def test_analyze_attention_on_the_completions_of_an_eval_run(eval_runs, tiny_omni_dir, tmp_path):
    from tgsr.records import Prediction, read_jsonl

    out = tmp_path / "att_run"
    rc = main(["analyze", "attention", "--model", str(tiny_omni_dir), "--label", "m", "--predictions",
               str(eval_runs["own"]), "--out", str(out), "--quiet"])
    assert rc == 0
    preds = {p.id: p for p in read_jsonl(eval_runs["own"] / "predictions.jsonl", Prediction, resolve_audio=False)}
    items = [json.loads(x) for x in (out / "m" / "attention_items.jsonl").read_text().splitlines()]
    assert len(items) == 4
    for it in items:
        assert it["completion"] == preds[it["id"]].completion        # the scored output, not a new one
    assert main(["analyze", "attention", "--model", str(tiny_omni_dir), "--predictions", str(eval_runs["silence"]),
                 "--out", str(tmp_path / "x")]) == 1


def test_analyze_attention_teacher_forced_rationales_have_all_phases(tiny_af3_dir, synth_corpus, tmp_path):
    out = tmp_path / "tf"
    rc = main(["analyze", "attention", "--model", str(tiny_af3_dir), "--label", "af3", "--data",
               str(synth_corpus / "test" / "qa.jsonl"), "--limit", "2", "--teacher-force", "rationale",
               "--out", str(out), "--quiet"])
    assert rc == 0
    s = json.loads((out / "attention_summaries.json").read_text())["af3"]
    n = {g: s["mass"][g]["n_tokens"] for g in ("all", "reasoning", "timestamp", "answer")}
    assert n["timestamp"] > 0 and n["answer"] > 0 and n["reasoning"] > 0
    assert n["all"] == n["reasoning"] + n["timestamp"] + n["answer"]
    assert main(["analyze", "attention", "--model", str(tiny_af3_dir),
                 "--data", str(synth_corpus / "test" / "qa.jsonl"), "--queries",
                 "--teacher-force", "rationale", "--out", str(tmp_path / "bad")]) == 1
