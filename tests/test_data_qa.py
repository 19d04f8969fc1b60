"""``tgsr data qa``: Stage-2 questions from MELD, CoTA and manifests (fixtures made here)."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tgsr.audio import SAMPLE_RATE, load_audio, save_audio
from tgsr.cli import main
from tgsr.data.qa.cota import build_cota_qa
from tgsr.data.qa.meld import MeldOptions, build_meld_qa, state_path
from tgsr.errors import TgsrError
from tgsr.eval.benchmarks.meld import EMOTIONS
from tgsr.records import LETTERS, QAExample, read_jsonl, write_jsonl
from tgsr.spans import find_spans, format_span

TRAIN_DIALOGUES = ("0", "1", "2", "3")
SENTIMENTS = ("negative", "neutral", "positive")


def _tone(seconds: float, freq: float) -> np.ndarray:
    t = np.arange(int(round(seconds * SAMPLE_RATE))) / SAMPLE_RATE
    return (0.2 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _csv_rows(meld_dir: Path, split: str, dialogues) -> list[dict]:
    with open(meld_dir / f"{split}_sent_emo.csv", encoding="utf-8", newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["Dialogue_ID"] in dialogues]


@pytest.fixture
def meld_root(tmp_path, benchmarks_dir):
    """The real CSV rows of four train, one dev and two test dialogues, each utterance a tone of
    its own length and pitch. Test clips also lie flat at the root (the benchmark's layout),
    and one train utterance has no train clip: only a root-level test clip shares its name."""
    meld = benchmarks_dir / "meld"
    root = tmp_path / "MELD.Raw"
    rng = np.random.default_rng(0)
    splits = {"train": (TRAIN_DIALOGUES, "train_splits"), "dev": (("0",), "dev_splits_complete"),
              "test": (("0", "1"), "output_repeated_splits_test")}
    for split, (dialogues, folder) in splits.items():
        rows = _csv_rows(meld, split, dialogues)
        (root / folder).mkdir(parents=True)
        with open(root / f"{split}_sent_emo.csv", "w", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        for r in rows:
            name = f"dia{r['Dialogue_ID']}_utt{r['Utterance_ID']}.wav"
            audio = _tone(float(rng.uniform(0.3, 0.9)), float(rng.uniform(150, 400)))
            save_audio(root / folder / name, audio)
            if split == "test":
                save_audio(root / name, audio)
    (root / "train_splits" / "dia1_utt1.wav").unlink()  # the root has a test dia1_utt1.wav
    return root


def _label_of(ex: QAExample) -> tuple[str, str]:
    with open(ex.meta["csv"], encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        for row in reader:
            if reader.line_num == ex.meta["line"]:
                return row["Emotion"].strip().lower(), row["Sentiment"].strip().lower()
    raise AssertionError(f"no line {ex.meta['line']} in {ex.meta['csv']}")


def test_meld_answers_are_labels_options_fixed_letters_balanced(meld_root, tmp_path):
    out = tmp_path / "qa" / "qa.jsonl"
    summary = build_meld_qa(meld_root, out)
    examples = read_jsonl(out, QAExample).records
    by_task = Counter(ex.task for ex in examples)
    assert set(by_task) == {"meld_emotion", "meld_sentiment", "meld_dialogue"}
    assert summary.questions == len(examples) == sum(by_task.values())
    rows = len(_csv_rows(meld_root, "train", TRAIN_DIALOGUES))
    assert summary.rows == rows and by_task["meld_emotion"] == by_task["meld_sentiment"] == rows - 1
    for ex in examples:
        emotion, sentiment = _label_of(ex)
        gold = sentiment if ex.task == "meld_sentiment" else emotion
        assert ex.choices[ex.answer_index] == gold == ex.answer_text
        labels = SENTIMENTS if ex.task == "meld_sentiment" else EMOTIONS
        start = labels.index(ex.choices[0])  # the fixed cyclic order, started anywhere
        assert ex.choices == [labels[(start + i) % len(labels)] for i in range(len(labels))]
    for task in by_task:
        letters = Counter(ex.answer for ex in examples if ex.task == task)
        n = len(SENTIMENTS if task == "meld_sentiment" else EMOTIONS)
        counts = [letters.get(LETTERS[i], 0) for i in range(n)]
        assert max(counts) - min(counts) <= 1, (task, counts)  # neutral is ~half of MELD, letters are not
    assert summary.letters["meld_dialogue"] == Counter(ex.answer for ex in examples if ex.task == "meld_dialogue")


def test_meld_dialogue_evidence_is_the_asked_utterance(meld_root, tmp_path):
    out = tmp_path / "qa.jsonl"
    build_meld_qa(meld_root, out, MeldOptions(max_seconds=5.0))
    dialogue = [ex for ex in read_jsonl(out, QAExample).records if ex.task == "meld_dialogue"]
    assert len({ex.audio for ex in dialogue}) > len(TRAIN_DIALOGUES)  # 5 s parts: dialogues were cut
    forms = Counter(ex.meta["form"] for ex in dialogue)
    assert forms["speaker"] and forms["quote"]
    clips: dict[str, np.ndarray] = {}
    for ex in dialogue:
        clip = clips.setdefault(ex.audio, load_audio(ex.audio))
        assert ex.duration == pytest.approx(clip.size / SAMPLE_RATE, abs=1e-3) and ex.duration <= 5.0
        (s, e), = ex.evidence
        us, ue = ex.meta["span"]
        assert 0 <= s <= us < ue <= e <= ex.duration  # inside the clip, covering the utterance
        assert s == us and e - ue < 0.01  # starts on the 10 ms grid; ends at its padding's end
        original = load_audio(Path(meld_root, "train_splits", Path(ex.meta["utterance"].split("-")[-1] + ".wav")))
        got = clip[int(round(s * SAMPLE_RATE)):int(round(s * SAMPLE_RATE)) + original.size]
        assert np.allclose(got, original, atol=1e-4)  # the evidence span holds the asked utterance's audio
        if ex.meta["form"] == "quote":
            assert ex.meta["text"].split()[0].replace('"', "'") in ex.question
        else:
            assert ex.meta["speaker"] in ex.question


def test_meld_never_outputs_test_dialogues(meld_root, tmp_path):
    out = tmp_path / "qa.jsonl"
    summary = build_meld_qa(meld_root, out)
    test_clips = {p.resolve() for p in meld_root.glob("*.wav")} | \
                 {p.resolve() for p in (meld_root / "output_repeated_splits_test").glob("*.wav")}
    examples = read_jsonl(out, QAExample).records
    for ex in examples:
        assert Path(ex.audio).resolve() not in test_clips and ex.split == "train"
        assert "test" not in ex.id and Path(ex.meta["csv"]).name == "train_sent_emo.csv"
    for rec in _rows(state_path(out)):
        assert all("output_repeated_splits_test" not in u["audio"] and Path(u["audio"]).parent.name == "train_splits"
                   for u in rec["utterances"])
    # the utterance whose only same-named clip is a test clip is reported by file and line
    line = next(i for i, r in enumerate(_csv_rows(meld_root, "train", TRAIN_DIALOGUES), start=2)
                if r["Dialogue_ID"] == "1" and r["Utterance_ID"] == "1")
    errors = _rows(Path(summary.errors_path))
    assert [(Path(e["path"]).name, e["line"]) for e in errors] == [("train_sent_emo.csv", line)]
    assert "folder naming the train split" in errors[0]["reason"]
    with pytest.raises(TgsrError, match="test is the evaluation benchmark"):
        build_meld_qa(meld_root, tmp_path / "t.jsonl", MeldOptions(split="test"))
    dev = build_meld_qa(meld_root, tmp_path / "dev.jsonl", MeldOptions(split="dev"))
    assert dev.questions and all(ex.split == "dev" for ex in read_jsonl(tmp_path / "dev.jsonl", QAExample).records)


def test_meld_resumes_per_dialogue_with_the_same_files(meld_root, tmp_path):
    full, part = tmp_path / "full" / "qa.jsonl", tmp_path / "part" / "qa.jsonl"
    build_meld_qa(meld_root, full)
    build_meld_qa(meld_root, part)
    state = state_path(part).read_text().splitlines(keepends=True)
    state_path(part).write_text(state[0] + state[1][:40])  # killed while writing the second dialogue
    part.unlink()
    summary = build_meld_qa(meld_root, part)
    assert summary.notes["resumed_dialogues"] == 1
    strip = [{k: v for k, v in r.items() if k != "audio"} for r in _rows(full)]
    assert [{k: v for k, v in r.items() if k != "audio"} for r in _rows(part)] == strip
    assert len(state_path(part).read_text().splitlines()) == len(TRAIN_DIALOGUES)
    with pytest.raises(TgsrError, match="other options"):
        build_meld_qa(meld_root, part, MeldOptions(gap=0.5))


def test_meld_grounded_rationale_cites_the_aligned_utterance(meld_root, tmp_path):
    """Word timings of the utterance clips (as ``tgsr data align`` writes them) give each
    question a rationale citing where the asked utterance is spoken, and a plain twin."""
    words = []
    for r in _csv_rows(meld_root, "train", TRAIN_DIALOGUES):
        name = f"dia{r['Dialogue_ID']}_utt{r['Utterance_ID']}"
        path = meld_root / "train_splits" / f"{name}.wav"
        if not path.exists():
            continue
        dur = sf.info(path).duration
        ws = r["Utterance"].split()[:3]
        step = (dur - 0.1) / len(ws)
        words.append({"clip_id": f"meld-train-{name}", "audio": str(path), "duration": dur,
                      "words": [{"text": w, "start": round(0.05 + i * step, 3), "end": round(0.05 + (i + 1) * step, 3)}
                                for i, w in enumerate(ws)]})
    write_jsonl(tmp_path / "words.jsonl", words)
    out = tmp_path / "qa.jsonl"
    assert main(["data", "qa", "meld", "--root", str(meld_root), "--out", str(out),
                 "--words", str(tmp_path / "words.jsonl")]) == 0
    examples = read_jsonl(out, QAExample).records
    by_id = {w["clip_id"]: w for w in words}
    assert all(ex.rationale and ex.rationale_plain for ex in examples)
    for ex in examples:
        w = by_id[ex.meta["utterance"]]["words"]
        offset = ex.meta["span"][0] if ex.task == "meld_dialogue" else 0.0
        cited = find_spans(ex.rationale)
        assert len(cited) == 1
        assert cited[0].start == pytest.approx(offset + w[0]["start"], abs=0.01)
        assert cited[0].end == pytest.approx(offset + w[-1]["end"], abs=0.01)
        assert format_span(cited[0].start, cited[0].end) in ex.rationale
        if ex.task == "meld_dialogue":
            (s, e), = ex.evidence
            assert s <= cited[0].start and cited[0].end <= e  # inside the asked utterance
        assert find_spans(ex.rationale_plain) == []
        assert ex.rationale.splitlines()[-1] == ex.rationale_plain.splitlines()[-1]
        assert ex.rationale_plain.splitlines()[-1].startswith(f"Final answer: ({ex.answer})")


# ---------------------------------------------------------------- CoTA

COTA_USER = ("<audio>\nWhich of the following scenarios best fits the context of the audio? "
             "(a) A heartfelt apology after a misunderstanding. (b) A doctor reassuring a patient about their "
             "health. (c) An exasperated response during a disagreement. (d) A friendly suggestion to move on.")
COTA_ASSISTANT = (
    "<THINK>\n<PLANNING>\nI need to listen to the tone of both speakers and compare it with each scenario."
    "</PLANNING>\n<CAPTION>\nTwo speakers argue; the second says \"Look, forget about it, okay?\" sharply."
    "</CAPTION>\n<REASONING>\n(a) is not apologetic. (b) lacks reassurance. (c) fits the exasperation. "
    "(d) is not friendly.</REASONING>\n<SUMMARY>\nThe exchange is an exasperated response during a "
    "disagreement.</SUMMARY>\n</THINK>\n<RESPONSE>\nThe tone is dismissive and annoyed. The answer is C.</RESPONSE>")


def _wav_bytes(seconds: float) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, _tone(seconds, 220.0), 16000, format="WAV")
    return buf.getvalue()


def test_cota_rows_in_the_published_layout(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    src = tmp_path / "multi_speaker"
    (src / "wavs").mkdir(parents=True)
    save_audio(src / "wavs" / "0001.wav", _tone(1.2, 200.0))
    rows = [
        {"id": "0001", "audio": "wavs/0001.wav", "user": COTA_USER, "assistant": COTA_ASSISTANT},
        {"id": "0002", "audio": "wavs/0001.wav", "user": "<audio>\nDescribe the conversation.",  # open-ended
         "assistant": "<THINK><SUMMARY>Two people talk.</SUMMARY></THINK><RESPONSE>Two people talk.</RESPONSE>"},
        {"id": "0003", "audio": "wavs/missing.wav", "user": COTA_USER, "assistant": COTA_ASSISTANT},
    ]
    (src / "multi_speaker.json").write_text(json.dumps(rows, indent=1))
    answer_a = COTA_ASSISTANT.replace("The answer is C", "The answer is A")
    swift = {"messages": [{"role": "user", "content": COTA_USER}, {"role": "assistant", "content": answer_a}],
             "audios": ["wavs/0001.wav"], "id": "0004"}
    (src / "swift.jsonl").write_text(json.dumps(swift) + "\n{broken\n")
    table = pa.table({"id": ["0005"], "audio": [{"bytes": _wav_bytes(0.8), "path": "0005.wav"}],
                      "user": [COTA_USER], "assistant": [COTA_ASSISTANT.replace("The answer is C", "The answer is D")]})
    pq.write_table(table, src / "train-00000.parquet")

    out = tmp_path / "out" / "qa.jsonl"
    summary = build_cota_qa(src, out)
    got = {ex.id: ex for ex in read_jsonl(out, QAExample).records}
    assert sorted(got) == ["cota-multi_speaker-0001", "cota-multi_speaker-0005", "cota-swift-0004"]
    first = got["cota-multi_speaker-0001"]
    assert first.question == "Which of the following scenarios best fits the context of the audio?"
    assert first.choices[2] == "An exasperated response during a disagreement." and len(first.choices) == 4
    assert first.answer == "c" and first.duration == pytest.approx(1.2, abs=1e-3)
    assert not first.evidence and not first.rationale  # CoTA carries no times
    plain = first.rationale_plain.splitlines()
    assert plain[0].startswith("I need to listen") and "<" not in first.rationale_plain
    assert plain[-1] == f"Final answer: (c) {first.choices[2]}"
    assert got["cota-swift-0004"].answer == "a"
    assert got["cota-multi_speaker-0005"].answer == "d" and Path(got["cota-multi_speaker-0005"].audio).is_file()
    errors = _rows(Path(summary.errors_path))
    located = sorted((Path(e["path"]).name, e["line"], e["field"]) for e in errors)
    assert located == [("multi_speaker.json", 2, "user"), ("multi_speaker.json", 3, "audio"),
                       ("swift.jsonl", 2, None)]
    assert summary.rows == 6 and summary.questions == 3 and summary.problems == 3


# ---------------------------------------------------------------- manifests

def test_manifest_bad_rows_are_located_and_the_rest_kept(tmp_path):
    save_audio(tmp_path / "a.wav", _tone(2.0, 300.0))
    rows = [{"id": "q1", "audio": "a.wav", "question": "Who speaks first?", "choices": ["Ann", "Bob"], "answer": "b",
             "evidence": [[0.2, 0.9]]},
            {"id": "q2", "audio": "a.wav", "question": "Who speaks first?", "choices": ["Ann", "Bob"], "answer": "Cid"},
            {"id": "q3", "audio": "a.wav", "question": "How many?", "choices": ["one", "two", "three"], "answer": 2}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with open(tmp_path / "m.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ID", "Audio", "Question", "Choices", "Answer", "Evidence"])
        w.writerow(["c1", "a.wav", "Is it loud?", "yes | no", "(A)", "[[0.5, 1.5]]"])
        w.writerow(["c2", "a.wav", "Is it loud?", "yes | no", "a", "[[0.5, 9.0]]"])  # past the 2 s clip
        w.writerow(["c3", "nope.wav", "Is it loud?", '["yes", "no"]', "no", ""])
    words = [{"clip_id": "q1", "audio": str(tmp_path / "a.wav"), "duration": 2.0,
              "words": [{"text": "hello", "start": 0.25, "end": 0.5}, {"text": "there", "start": 0.55, "end": 0.85},
                        {"text": "later", "start": 1.6, "end": 1.9}]}]
    write_jsonl(tmp_path / "words.jsonl", words)
    out = tmp_path / "out" / "qa.jsonl"
    assert main(["data", "qa", "manifest", "--root", str(tmp_path), "--out", str(out),
                 "--words", str(tmp_path / "words.jsonl")]) == 0
    got = {ex.id: ex for ex in read_jsonl(out, QAExample).records}
    assert sorted(got) == ["c1", "q1", "q3"]
    assert got["q1"].answer == "b" and got["q3"].answer == "c" and got["c1"].answer == "a"
    assert got["c1"].evidence == [(0.5, 1.5)] and got["q1"].duration == pytest.approx(2.0)
    assert find_spans(got["q1"].rationale)[0].start == pytest.approx(0.2)
    assert '"hello there"' in got["q1"].rationale and "later" not in got["q1"].rationale
    assert find_spans(got["q1"].rationale_plain) == [] and not got["q3"].rationale  # no evidence, no rationale
    errors = _rows(out.with_name("qa.errors.jsonl"))
    located = sorted((Path(e["path"]).name, e["line"], e["field"]) for e in errors)
    assert located == [("m.csv", 3, "evidence[0]"), ("m.csv", 4, "audio"), ("m.jsonl", 2, "answer")]
    # a rerun reads the same inputs only (never its own output folder's files) and writes the same files
    before = out.read_text()
    assert main(["data", "qa", "manifest", "--root", str(tmp_path), "--out", str(out)]) == 0
    assert [r["id"] for r in _rows(out)] == [r["id"] for r in map(json.loads, before.splitlines())]


# ---------------------------------------------------------------- into GRPO

def test_grpo_grounding_iou_on_meld_dialogue_questions(meld_root, tiny_omni_dir, tmp_path):
    """``tgsr data qa meld`` output trains as is: ``tgsr train grpo`` with the verified grounding
    reward (``tgsr.ablation=grounding_iou``) scores citations against the dialogue evidence."""
    pytest.importorskip("trl")
    from tgsr.rewards import REWARD_STATS, get_reward
    from tgsr.train.datasets import grpo_rows

    qa = tmp_path / "data" / "qa.jsonl"
    assert main(["data", "qa", "meld", "--root", str(meld_root), "--out", str(qa), "--kinds", "dialogue",
                 "--max-seconds", "4"]) == 0
    rows = grpo_rows(str(qa), "grounded").rows
    assert rows and all(r["task"] == "meld_dialogue" and len(r["choices"]) == 7 for r in rows)
    # the rows carry what the grounding reward needs: citing the evidence scores 1, elsewhere 0
    r = rows[0]
    (s, e), = r["evidence"]
    right = f"{format_span(s, e)}, the line is said.\nFinal answer: ({r['answer']}) {r['choices'][0]}"
    wrong = f"{format_span(e, min(e + 0.5, r['duration']))}, silence.\nFinal answer: (a) x"
    grounding = get_reward("grounding_iou")
    assert grounding([right, wrong], **{k: [r[k], r[k]] for k in ("evidence", "duration")}) == [1.0, 0.0]

    before = REWARD_STATS.snapshot()
    out = tmp_path / "grpo"
    recipe = Path(__file__).resolve().parent.parent / "recipes" / "tiny-cpu" / "grpo.yaml"
    assert main(["train", "grpo", "--config", str(recipe), f"tgsr.model={tiny_omni_dir}",
                 f"tgsr.ref_model={tiny_omni_dir}", f"tgsr.train_file={qa}", "tgsr.ablation=grounding_iou",
                 "tgsr.max_train_samples=8", "per_device_train_batch_size=4", "num_generations=2",
                 "max_completion_length=12", "max_steps=2", "logging_steps=1", "save_strategy=no",
                 "disable_tqdm=true", f"output_dir={out}"]) == 0
    summary = json.loads((out / "tgsr_summary.json").read_text())
    assert summary["global_step"] == 2 and summary["train_rows"] == 8 and summary["skipped_rows"] == 0
    assert summary["rewards"] == ["answer", "compaction", "grounding_iou"]
    after = REWARD_STATS.snapshot()
    for problem in ("no_evidence", "missing_duration"):  # every completion was scored against real evidence
        key = f"grounding_iou/{problem}"
        assert after.get(key, 0) == before.get(key, 0)


# ---------------------------------------------------------------- the real-data recipe

REAL_DATA = Path(__file__).resolve().parent.parent / "recipes" / "qwen2.5-omni-7b" / "real-data.sh"


def _recipe_calls(tmp_path: Path, **sources: str) -> list[list[str]]:
    """The tgsr command lines the recipe runs, recorded instead of run."""
    import os
    import subprocess
    import sys

    tmp_path.mkdir(parents=True, exist_ok=True)
    log = tmp_path / "calls.jsonl"
    recorder = tmp_path / "record.py"
    recorder.write_text("import json, os, sys\n"
                        "open(os.environ['TGSR_LOG'], 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
    cmd = f"{sys.executable} {recorder}"
    env = {**os.environ, "TGSR": cmd, "TRAIN": cmd, "TGSR_LOG": str(log), "DATA": str(tmp_path / "data"), **sources}
    subprocess.run(["bash", str(REAL_DATA)], env=env, check=True, cwd=REAL_DATA.parents[2])
    return [json.loads(line) for line in log.read_text().splitlines()]


def _option(call: list[str], name: str) -> str:
    return call[call.index(name) + 1]


def _override(call: list[str], key: str) -> str:
    return next(a.split("=", 1)[1] for a in call if a.startswith(key + "="))


def test_real_data_recipe_chains_valid_commands(tmp_path):
    """Every command the recipe runs parses (data commands by the CLI, training overrides by the
    recipe loader), and each step reads what the step before it wrote."""
    from tgsr.cli import build_parser
    from tgsr.train.config import load_config

    calls = _recipe_calls(tmp_path, LIBRISPEECH="/c/ls", LIBRISPEECH_DEV="/c/ls-dev", MELD="/c/meld",
                          COVOST="/c/covost", COTA="/c/cota", YT8M_QA="/c/yt8m.jsonl")
    parser = build_parser()
    for call in calls:
        parser.parse_args(call)  # exits (fails the test) on an unknown command or option
        if call[0] == "train":
            load_config(call[1], _option(call, "--config"), [a for a in call[2:] if "=" in a] + ["bf16=false"])
    steps = [" ".join(c[:3]) if c[1] == "qa" else " ".join(c[:2]) for c in calls]
    stage1 = ["data import", "data align", "data sta"]
    assert steps == (["data qa meld", "data qa cota", "data qa manifest"] + stage1 * 5 + ["data merge"] + stage1
                     + ["train sta", "data qa meld", "data merge", "train grpo"])
    by = {}
    for c in calls:
        by.setdefault(" ".join(c[:2]), []).append(c)
    for imp, align, sta in zip(by["data import"], by["data align"], by["data sta"]):
        assert _option(align, "--manifest") == _option(imp, "--out")
        assert _option(sta, "--words") == _option(align, "--out")
    meld_import = next(c for c in by["data import"] if c[2] == "meld")
    assert _option(meld_import, "--splits") == "train,dev"  # the MELD test split never reaches Stage 1
    merge_sta, merge_qa = by["data merge"]
    assert merge_sta[merge_sta.index("--out") + 2:] == [_option(c, "--out") for c in by["data sta"][:5]]
    train_sta, train_grpo = by["train sta"][0], by["train grpo"][0]
    assert _override(train_sta, "tgsr.train_file") == _option(merge_sta, "--out")
    assert _override(train_sta, "tgsr.eval_file") == _option(by["data sta"][5], "--out")
    qa_outs = [_option(c, "--out") for c in calls if c[1] == "qa"][:3]
    assert merge_qa[merge_qa.index("--out") + 2:] == qa_outs
    final_meld = [c for c in calls if c[:3] == ["data", "qa", "meld"]][-1]
    assert _option(final_meld, "--words") == _option(by["data align"][1], "--out")  # MELD's own word timings
    assert _override(train_grpo, "tgsr.train_file") == _option(merge_qa, "--out")
    assert _override(train_grpo, "tgsr.model") == _override(train_sta, "output_dir")
    # only the needed sources: the optional ones are skipped when unset
    few = _recipe_calls(tmp_path / "few", LIBRISPEECH="/c/ls", MELD="/c/meld")
    assert [c[2] for c in few if c[:2] == ["data", "import"]] == ["librispeech", "meld"]
    assert _override(next(c for c in few if c[:2] == ["train", "sta"]), "tgsr.eval_file") == "null"


# ---------------------------------------------------------------- one training file from several corpora

def test_meld_import_of_training_splits_leaves_the_test_split_out(meld_root, tmp_path):
    out = tmp_path / "manifest.jsonl"
    assert main(["data", "import", "meld", "--root", str(meld_root), "--splits", "train,dev", "--out", str(out)]) == 0
    items = _rows(out)
    assert items and {it["meta"]["split"] for it in items} == {"train", "dev"}
    assert all("output_repeated_splits_test" not in it["audio"] and Path(it["audio"]).parent != meld_root
               for it in items)
    assert [e["clip"] for e in _rows(tmp_path / "manifest.errors.jsonl")] == ["meld-train-dia1_utt1"]
    assert main(["data", "import", "meld", "--root", str(meld_root), "--splits", "valid", "--out", str(out)]) == 1


def test_merge_resolves_audio_and_reports_problems(tmp_path):
    from tgsr.data.merge import merge_records

    for name in ("meld", "cota"):
        save_audio(tmp_path / name / "audio" / "x.wav", _tone(0.5, 200.0))
    q = {"question": "Which?", "choices": ["a1", "b1"], "answer": "a", "audio": "audio/x.wav", "duration": 0.5}
    (tmp_path / "meld" / "qa.jsonl").write_text(
        json.dumps({"id": "m1", **q}) + "\n" + json.dumps({"id": "m2", "split": "test", **q}) + "\n")
    (tmp_path / "cota" / "qa.jsonl").write_text(
        json.dumps({"id": "c1", **q}) + "\n{not json\n" + json.dumps({"id": "m1", **q}) + "\n")
    out = tmp_path / "train" / "qa.jsonl"
    summary = merge_records([tmp_path / "meld" / "qa.jsonl", tmp_path / "cota" / "qa.jsonl"], out, "qa")
    got = read_jsonl(out, QAExample).records
    assert [ex.id for ex in got] == ["m1", "c1"] and summary.records == 2
    assert [Path(ex.audio) for ex in got] == [(tmp_path / n / "audio" / "x.wav").resolve() for n in ("meld", "cota")]
    errors = _rows(Path(summary.errors_path))
    located = sorted((Path(e["path"]).parent.name, e["line"], e["field"]) for e in errors)
    assert located == [("cota", 2, None), ("cota", 3, "id"), ("meld", 2, "split")]
