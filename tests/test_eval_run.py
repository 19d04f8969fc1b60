"""The evaluation loop end to end with a tiny model: batching, errors, resume, listening controls, CLI."""

import json
from pathlib import Path

import numpy as np
import pytest

from tgsr.audio import save_audio
from tgsr.cli import main
from tgsr.errors import TgsrError
from tgsr.eval.benchmarks import BENCHMARKS
from tgsr.eval.run import PREDICTIONS, RunConfig, finalize, run_eval, swap_partners
from tgsr.records import StaExample, write_jsonl

MMAU = "mmau/mmau-test-mini.json"


def standin_audio(examples, *, skip=(), corrupt=(), seed=0):
    """Noise-and-tone WAVs of 1-3 s at each example's audio path (stand-ins for the real clips)."""
    rng = np.random.default_rng(seed)
    for i, ex in enumerate(examples):
        if i in skip:
            continue
        if i in corrupt:
            Path(ex.audio).parent.mkdir(parents=True, exist_ok=True)
            Path(ex.audio).write_bytes(b"RIFF not really a wav")
            continue
        n = 16000 * (1 + i % 3) + 800 * i
        t = np.arange(n) / 16000
        save_audio(ex.audio, (0.2 * np.sin(2 * np.pi * (200 + 40 * i) * t) + 0.05 * rng.standard_normal(n))
                   .astype(np.float32))


@pytest.fixture(scope="module")
def lm(tiny_omni_dir):
    from tgsr.models import load_model

    return load_model(tiny_omni_dir)


class Recorder:
    """Wraps a loaded model; records what each batch hears and can fail on demand."""

    def __init__(self, lm, fail_when=None, interrupt_after=None):
        self.lm, self.fail_when, self.interrupt_after = lm, fail_when, interrupt_after
        self.batches: list[list[np.ndarray]] = []

    def build_inputs(self, audios, conversations, **kw):
        self.batches.append([np.asarray(a) for a in audios])
        if self.interrupt_after is not None and len(self.batches) > self.interrupt_after:
            raise KeyboardInterrupt  # a kill mid-run
        if self.fail_when and any(self.fail_when(c) for c in conversations):
            raise RuntimeError("model failure on this item")
        self._last = len(audios)
        return self.lm.build_inputs(audios, conversations, **kw)

    def generate(self, inputs, **kw):
        return self.lm.generate(inputs, **kw)


@pytest.fixture()
def mmau_root(tmp_path, benchmarks_dir):
    root = tmp_path / "mmau_data"
    exs = BENCHMARKS["mmau-mini-speech"].load(root, benchmarks_dir / MMAU)[:10]
    standin_audio(exs, skip={3}, corrupt={6})
    return root, benchmarks_dir / MMAU, exs


def _cfg(tiny, root, meta, out, **kw):
    base = dict(model=str(tiny), benchmark="mmau-mini-speech", out=str(out), data_root=str(root), meta=str(meta),
                limit=10, batch_size=4, max_new_tokens=8)
    return RunConfig(**{**base, **kw})


def _lines(out):
    return [json.loads(line) for line in (Path(out) / PREDICTIONS).read_text().splitlines()]


def test_mmau_end_to_end_with_standin_audio(lm, tiny_omni_dir, mmau_root, tmp_path):
    root, meta, exs = mmau_root
    out = tmp_path / "run"
    m = run_eval(_cfg(tiny_omni_dir, root, meta, out), lm=lm, progress=False)
    rows = _lines(out)
    assert sorted(r["id"] for r in rows) == sorted(e.id for e in exs)
    errors = {r["id"]: r["error"] for r in rows if r["error"]}
    assert set(errors) == {exs[3].id, exs[6].id}
    assert "file not found" in errors[exs[3].id] and "unreadable" in errors[exs[6].id]
    assert all(isinstance(r["completion"], str) for r in rows if not r["error"])
    t = m["tgsr"]
    assert t["items"] == 10 and t["errors"] == 2 and t["missing"] == 0
    assert t["correct"] + t["unparseable"] <= 8
    assert sum(v["total"] for v in t["by"]["sub-category"].values()) == 10
    assert m["official"]["counted"] == 8 and m["official"]["skipped_no_prediction"] == 2
    export = json.loads((out / "mmau_model_output.json").read_text())
    assert [r["id"] for r in export] == [e.id for e in exs]          # benchmark order, full records
    assert sum("model_output" in r for r in export) == 8
    assert m["throughput"]["items_generated"] == 8
    # scoring the export with `tgsr eval score` reproduces the run's official number
    res = tmp_path / "res.json"
    assert main(["eval", "score", "--benchmark", "mmau-mini-speech", "--predictions",
                 str(out / "mmau_model_output.json"), "--json", str(res)]) == 0
    assert json.loads(res.read_text())["official"] == m["official"]


def test_resume_after_a_kill_has_no_duplicates_and_no_losses(lm, tiny_omni_dir, mmau_root, tmp_path):
    root, meta, exs = mmau_root
    out = tmp_path / "run"
    killer = Recorder(lm, interrupt_after=1)  # dies while building its second batch
    with pytest.raises(KeyboardInterrupt):
        run_eval(_cfg(tiny_omni_dir, root, meta, out), lm=killer, progress=False)
    first = _lines(out)
    assert 0 < len(first) < 10
    with open(out / PREDICTIONS, "a") as fh:         # and a torn half-line from a crash mid-write
        fh.write('{"id": "torn", "completion": "Final ans')
    m = run_eval(_cfg(tiny_omni_dir, root, meta, out), lm=lm, progress=False)
    rows = _lines(out)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == 10 and set(ids) == {e.id for e in exs}
    assert rows[: len(first)] == first                 # nothing rewritten
    assert m["tgsr"]["items"] == 10 and m["tgsr"]["missing"] == 0
    # a finished run resumes to a no-op without loading the model
    m2 = run_eval(_cfg(tiny_omni_dir, root, meta, out), lm=None, progress=False)
    assert m2["tgsr"] == m["tgsr"] and len(_lines(out)) == 10


def test_resume_refuses_other_settings(lm, tiny_omni_dir, mmau_root, tmp_path):
    root, meta, _ = mmau_root
    out = tmp_path / "run"
    run_eval(_cfg(tiny_omni_dir, root, meta, out, limit=2), lm=lm, progress=False)
    with pytest.raises(TgsrError, match="prompt"):
        run_eval(_cfg(tiny_omni_dir, root, meta, out, prompt="cot"), lm=lm, progress=False)
    # a larger limit extends the same run
    m = run_eval(_cfg(tiny_omni_dir, root, meta, out, limit=5), lm=lm, progress=False)
    assert m["tgsr"]["items"] == 5 and len(_lines(out)) == 5


def test_a_wrong_model_path_fails_fast_and_leaves_the_folder_reusable(lm, tiny_omni_dir, mmau_root, tmp_path):
    # Regression: a mistyped --model retried the hub for ~20 s, and run.json was already written,
    # so the corrected command was refused as "a run with other settings".
    root, meta, _ = mmau_root
    out = tmp_path / "run"
    typo = tmp_path / "ckpt-typo"
    with pytest.raises(TgsrError, match="model folder not found"):
        run_eval(_cfg(typo, root, meta, out, limit=2), lm=None, progress=False)
    m = run_eval(_cfg(tiny_omni_dir, root, meta, out, limit=2), lm=lm, progress=False)
    assert m["tgsr"]["items"] == 2 and len(_lines(out)) == 2
    assert json.loads((out / "run.json").read_text())["model"] == str(tiny_omni_dir)


def test_score_names_malformed_prediction_lines(lm, tiny_omni_dir, mmau_root, tmp_path, capsys):
    # Regression: `tgsr eval score` counted an unreadable line as "missing" without saying which line.
    root, meta, _ = mmau_root
    out = tmp_path / "run"
    run_eval(_cfg(tiny_omni_dir, root, meta, out, limit=3), lm=lm, progress=False)
    lines = (out / PREDICTIONS).read_text().splitlines()
    lines[1] = "not json"
    (out / PREDICTIONS).write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert main(["eval", "score", "--benchmark", "mmau-mini-speech", "--predictions", str(out)]) == 0
    text = capsys.readouterr().out
    assert "missing 1" in text and "malformed prediction lines skipped: 1" in text
    assert f"{out / PREDICTIONS}:2: invalid JSON" in text


def test_a_failing_item_does_not_sink_its_batch(lm, tiny_omni_dir, mmau_root, tmp_path):
    root, meta, exs = mmau_root
    from tgsr.eval.run import conversation_for

    bad = conversation_for(exs[1], "grounded")
    assert sum(conversation_for(e, "grounded") == bad for e in exs) == 1
    rec = Recorder(lm, fail_when=lambda conv: conv == bad)
    m = run_eval(_cfg(tiny_omni_dir, root, meta, tmp_path / "run"), lm=rec, progress=False)
    errors = {r["id"]: r["error"] for r in _lines(tmp_path / "run") if r["error"]}
    assert errors[exs[1].id].startswith("model: RuntimeError")
    assert set(errors) == {exs[1].id, exs[3].id, exs[6].id}
    assert m["tgsr"]["errors"] == 3 and len(_lines(tmp_path / "run")) == 10


def test_listening_controls(lm, tiny_omni_dir, mmau_root, tmp_path):
    root, meta, exs = mmau_root
    readable = [e for i, e in enumerate(exs) if i not in (3, 6)]
    partners = swap_partners(exs)
    assert set(partners) == {e.id for e in readable}
    assert all(partners[e.id].id != e.id for e in readable)
    assert swap_partners(list(reversed(exs))).keys() == partners.keys()
    assert {k: v.id for k, v in swap_partners(list(reversed(exs))).items()} == {k: v.id for k, v in partners.items()}
    from tgsr.audio import duration_of

    durs = sorted((duration_of(e.audio), e.id) for e in readable)
    assert partners[durs[0][1]].id == durs[1][1]       # each clip hears its successor in length
    assert partners[durs[-1][1]].id == durs[-2][1]     # the longest its predecessor

    for cond in ("swapped", "silence"):
        rec = Recorder(lm)
        run_eval(_cfg(tiny_omni_dir, root, meta, tmp_path / cond, audio_condition=cond), lm=rec, progress=False)
        rows = {r["id"]: r for r in _lines(tmp_path / cond)}
        heard = [a for batch in rec.batches for a in batch]
        assert all(r["condition"] == cond for r in rows.values())
        if cond == "silence":
            assert all(not a.any() for a in heard)
            assert rows[exs[0].id]["meta"]["silence_seconds"] == pytest.approx(duration_of(exs[0].audio), abs=1e-3)
        else:
            assert all(rows[e.id]["meta"]["swapped_with"] == partners[e.id].id for e in readable)
        assert rows[exs[3].id]["error"]


def test_cli_run_and_table(tiny_omni_dir, mmau_root, tmp_path, capsys):
    root, meta, _ = mmau_root
    common = ["--model", str(tiny_omni_dir), "--benchmark", "mmau-mini-speech", "--data-root", str(root),
              "--meta", str(meta), "--limit", "4", "--batch-size", "4", "--max-new-tokens", "6", "--quiet"]
    assert main(["eval", "run", *common, "--out", str(tmp_path / "a"), "--label", "tiny grounded"]) == 0
    assert main(["eval", "run", *common, "--out", str(tmp_path / "b"), "--prompt", "cot"]) == 0
    out = capsys.readouterr().out
    assert "tgsr accuracy" in out and "official-rule accuracy [mmau string_match]" in out
    assert main(["eval", "score", "--benchmark", "mmau-mini-speech", "--predictions", str(tmp_path / "a")]) == 0
    assert main(["eval", "table", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "t")]) == 0
    md = (tmp_path / "t.md").read_text()
    assert "| Model | MMAU-mini speech | Avg |" in md
    assert "| tiny grounded |" in md and f"| {Path(tiny_omni_dir).name} [cot] |" in md
    csv_text = (tmp_path / "t.csv").read_text().splitlines()
    assert csv_text[0].startswith("model,mmau-mini-speech_tgsr,mmau-mini-speech_official")
    assert len(csv_text) == 3
    # two runs with the same label on one benchmark are refused
    assert main(["eval", "table", str(tmp_path / "a"), str(tmp_path / "a")]) == 1


def test_sta_benchmark_end_to_end(lm, tiny_omni_dir, tmp_path):
    clips = tmp_path / "sta" / "audio"
    recs = []
    for i in range(5):
        path = clips / f"c{i}.wav"
        save_audio(path, (0.1 * np.random.default_rng(i).standard_normal(16000 * 2)).astype(np.float32))
        recs.append(StaExample(id=f"s{i}", audio=str(path), phrase=f"word number {i}", start=0.2 * i,
                               end=0.2 * i + 0.5, duration=2.0))
    write_jsonl(tmp_path / "sta" / "sta.jsonl", recs)
    m = run_eval(RunConfig(model=str(tiny_omni_dir), benchmark="sta", out=str(tmp_path / "run"),
                           data_root=str(tmp_path / "sta"), batch_size=4, max_new_tokens=8), lm=lm, progress=False)
    s = m["sta"]
    assert s["items"] == 5 and s["missing"] == 0 and s["errors"] == 0
    assert s["sed"]["tp"] + s["sed"]["fn"] == 5    # one reference event per item
    assert 0.0 <= s["mean_iou"] <= 1.0    # a fraction (exact values are checked below)
    # re-scoring a run folder with hand-written completions checks the STA numbers themselves
    rows = _lines(tmp_path / "run")
    answers = {"s0": "The segment starts at 0.00 seconds and ends at 0.50 seconds.",     # IoU 1
               "s1": "The segment starts at 0.30 seconds and ends at 0.70 seconds.",     # IoU 0.8, SED hit
               "s2": "The segment starts at 1.20 seconds and ends at 1.60 seconds.",     # IoU 0, miss + FP
               "s3": "no idea"}                                                           # no span
    for r in rows:
        r["completion"] = answers.get(r["id"], r["completion"])
        if r["id"] == "s4":
            r["completion"], r["error"] = None, "audio: file not found"
    write_jsonl(tmp_path / "run" / PREDICTIONS, rows)
    s = finalize(tmp_path / "run")["sta"]
    assert s["no_span"] == 1 and s["errors"] == 1
    assert s["mean_iou"] == pytest.approx((1.0 + 0.8) / 5)
    assert s["iou_at_0.7"] == pytest.approx(0.4)
    assert (s["sed"]["tp"], s["sed"]["fp"], s["sed"]["fn"]) == (2, 1, 3)


def test_synthetic_test_split_end_to_end(lm, tiny_omni_dir, synth_corpus, tmp_path):
    from tgsr.records import QAExample, read_jsonl

    items = read_jsonl(synth_corpus / "test" / "qa.jsonl", QAExample).records
    out = tmp_path / "run"
    m = run_eval(RunConfig(model=str(tiny_omni_dir), benchmark="synthetic", out=str(out),
                           data_root=str(synth_corpus), batch_size=8, max_new_tokens=8), lm=lm, progress=False)
    rows = _lines(out)
    assert sorted(r["id"] for r in rows) == sorted(q.id for q in items)
    t = m["tgsr"]
    assert t["items"] == len(items) and t["errors"] == 0 and t["missing"] == 0
    assert set(t["by"]["task"]) == {q.task for q in items}
    assert sum(v["total"] for v in t["by"]["category"].values()) == len(items)
    assert "official" not in m                       # no official format for the synthetic set
    # the same corpus's STA test set through the timestamp benchmark
    s = run_eval(RunConfig(model=str(tiny_omni_dir), benchmark="sta", out=str(tmp_path / "sta"),
                           data_root=str(synth_corpus), batch_size=8, max_new_tokens=8, limit=8),
                 lm=lm, progress=False)["sta"]
    assert s["items"] == min(8, len(read_jsonl(synth_corpus / "test" / "sta.jsonl", StaExample).records))
    assert s["errors"] == 0 and s["sed"]["tp"] + s["sed"]["fn"] == s["items"]
