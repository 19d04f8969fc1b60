"""The lab corpus: answers recomputed from the synthesis parameters and from the audio itself,
evidence and rationales, disjoint voices, and the checks that no clip statistic or text prior
answers a question (bag-of-frames probe and text-only baseline at chance, the probe's control
above it)."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest

from tgsr.audio import load_audio
from tgsr.data.lab import (
    LAB_FAMILIES,
    MARKER_BAND_HZ,
    SPLITS,
    lab_voice_pools,
    make_lab,
    make_scene,
    read_scenes,
)
from tgsr.errors import TgsrError
from tgsr.records import QAExample, read_jsonl
from tgsr.spans import find_spans

SR = 16_000
EVIDENCE_COUNT = {"after_marker": 2, "before_marker": 2, "after_turn": 2, "ordinal_beep": 1,
                  "compare_marker": 3, "read_at": 1}


def qa(corpus: Path, split: str) -> list[QAExample]:
    return read_jsonl(corpus / split / "qa.jsonl", QAExample).records


def expected_letter(ex: QAExample) -> str:
    """The gold letter recomputed from the recorded scene alone: events sorted by time, pitch
    names by rank among the clip's beeps (not through the generator's code)."""
    scene = ex.meta["scene"]
    events = sorted(scene["events"], key=lambda e: e["start"])
    beeps = [e for e in events if e["kind"] == "beep"]
    rank = {p: i for i, p in enumerate(sorted(e["pitch_hz"] for e in beeps))}
    marker = next(e for e in events if e["kind"] == "marker")
    after = min((e for e in beeps if e["start"] >= marker["end"]), key=lambda e: e["start"])
    before = max((e for e in beeps if e["end"] <= marker["start"]), key=lambda e: e["end"])
    fam = ex.meta["family"]
    if fam == "compare_marker":
        return "b" if after["pitch_hz"] > before["pitch_hz"] else "a"
    if fam == "after_marker":
        target = after
    elif fam == "before_marker":
        target = before
    elif fam == "ordinal_beep":
        words = ["first", "second", "third", "fourth"]
        target = beeps[next(i for i, w in enumerate(words) if f"the {w} beep" in ex.question)]
    elif fam == "after_turn":
        turn = scene["turns"][ex.meta["turn"]]
        target = min((e for e in beeps if e["start"] >= turn["end"]), key=lambda e: e["start"])
    elif fam == "read_at":
        (span,) = find_spans(ex.question)
        target = next(e for e in beeps if span.start <= e["start"] and e["end"] <= span.end)
    else:
        raise AssertionError(fam)
    return "abcd"[rank[target["pitch_hz"]]]


def implied(beep, rank, ref) -> str:
    """The letter a counterfactual beep implies: its pitch rank, or lower/higher than ``ref``."""
    if ref is None:
        return "abcd"[rank[beep["pitch_hz"]]]
    return "b" if beep["pitch_hz"] > ref["pitch_hz"] else "a"


def cite_lo(event) -> float:
    return math.floor(round(event["start"], 3) * 100 + 1e-6) / 100


def cite_hi(event) -> float:
    return math.ceil(round(event["end"], 3) * 100 - 1e-6) / 100


def peak_hz(audio: np.ndarray, start: float, end: float) -> float:
    seg = audio[int(start * SR):int(end * SR)]
    spec = np.abs(np.fft.rfft(seg * np.hanning(seg.size), 8 * seg.size))
    return float(np.fft.rfftfreq(8 * seg.size, 1 / SR)[np.argmax(spec)])


def test_every_answer_recomputed_from_the_scene(lab_corpus):
    seen = Counter()
    for split in SPLITS:
        for ex in qa(lab_corpus, split):
            assert ex.answer == expected_letter(ex), ex.id
            assert ex.answer_text == ex.choices[ex.answer_index]
            seen[ex.meta["family"]] += 1
    assert set(seen) == set(LAB_FAMILIES)


def test_the_audio_holds_the_recorded_events(lab_corpus):
    for split in ("validation", "test"):
        for scene in read_scenes(lab_corpus / split / "scenes.jsonl"):
            audio = load_audio(scene.audio)
            assert abs(audio.size / SR - scene.duration) < 2e-3
            events = scene.events
            assert [e.start for e in events] == sorted(e.start for e in events)
            assert all(a.end < b.start for a, b in zip(events, events[1:]))
            assert sorted(e.pitch_hz for e in scene.beeps) == [300.0, 600.0, 1200.0, 2400.0]
            for e in events:
                assert not any(e.start < t.end and t.start < e.end for t in scene.turns), scene.clip_id
                if e.kind == "beep":
                    assert abs(peak_hz(audio, e.start, e.end) - e.pitch_hz) < 0.02 * e.pitch_hz
                else:
                    seg = audio[int(e.start * SR):int(e.end * SR)]
                    power = np.abs(np.fft.rfft(seg)) ** 2
                    f = np.fft.rfftfreq(seg.size, 1 / SR)
                    band = power[(f >= MARKER_BAND_HZ[0]) & (f <= MARKER_BAND_HZ[1])].sum()
                    assert band > 0.95 * power.sum()


def test_evidence_and_rationales(lab_corpus):
    for ex in qa(lab_corpus, "train") + qa(lab_corpus, "test"):
        fam = ex.meta["family"]
        assert len(ex.evidence) == EVIDENCE_COUNT[fam], ex.id
        events = ex.meta["scene"]["events"]
        asked = events[ex.meta["asked_event"]]
        assert any(s <= asked["start"] and asked["end"] <= e for s, e in ex.evidence)
        cited = [(s.start, s.end) for s in find_spans(ex.rationale.split("Final answer")[0])]
        assert cited == [tuple(x) for x in ex.evidence]
        assert not find_spans(ex.rationale_plain)
        # the plain rationale is the grounded one without the times, sentence for sentence
        grounded = ex.rationale.split("\n")
        plain = ex.rationale_plain.split("\n")
        assert len(grounded) == len(plain) == len(ex.evidence) + 1
        for g, p in zip(grounded[:-1], plain[:-1]):
            rest = g.split(", ", 1)[1]
            assert p == rest[:1].upper() + rest[1:]
        assert grounded[-1] == plain[-1] == f"Final answer: ({ex.answer}) {ex.answer_text}"
        # counterfactual citations: another beep's span in the pointer's place, and what it implies
        # (in read_at too, where one contradicts the time the question states)
        s, e = ex.evidence[ex.meta["pointer"]]
        assert s <= asked["start"] and asked["end"] <= e
        beeps = [x for x in events if x["kind"] == "beep"]
        rank = {x["pitch_hz"]: i for i, x in enumerate(sorted(beeps, key=lambda x: x["pitch_hz"]))}
        ref = events[ex.meta["compared_event"]] if fam == "compare_marker" else None

        others = [x for x in beeps if x is not asked and x is not ref]
        expected = [[cite_lo(x), cite_hi(x), implied(x, rank, ref)] for x in others
                    if implied(x, rank, ref) != ex.answer]
        got = [[cf["span"][0], cf["span"][1], cf["answer"]] for cf in ex.meta["counterfactuals"]]
        assert got == expected, ex.id
        if ref is None:
            assert len(got) == 3


def test_sta_rows_name_every_event_and_turn_once(lab_corpus):
    from tgsr.records import StaExample

    sta = read_jsonl(lab_corpus / "test" / "sta.jsonl", StaExample).records
    by_clip = {}
    for x in sta:
        by_clip.setdefault(x.clip_id, []).append(x)
    scenes = read_scenes(lab_corpus / "test" / "scenes.jsonl")
    assert set(by_clip) == {s.clip_id for s in scenes}
    for scene in scenes:
        rows = {x.phrase: x for x in by_clip[scene.clip_id]}
        assert len(rows) == len(by_clip[scene.clip_id]) == 9 + len(scene.turns)  # names unique in the clip
        assert (rows["the noise burst"].start, rows["the noise burst"].end) == (scene.marker.start, scene.marker.end)
        beeps = sorted(scene.beeps, key=lambda e: e.start)
        for k, word in enumerate(["first", "second", "third", "fourth"]):
            assert (rows[f"the {word} beep"].start, rows[f"the {word} beep"].end) == (beeps[k].start, beeps[k].end)
        for name, hz in zip(["low", "mid-low", "mid-high", "high"], [300.0, 600.0, 1200.0, 2400.0]):
            e = next(b for b in beeps if b.pitch_hz == hz)
            assert (rows[f"the {name} beep"].start, rows[f"the {name} beep"].granularity) == (e.start, "event")
        for t in scene.turns:
            assert any(x.granularity == "turn" and (x.start, x.end) == (t.start, t.end) for x in rows.values())


def test_read_at_is_a_training_family_only(lab_corpus):
    assert any(ex.task == "read_at" for ex in qa(lab_corpus, "train"))
    assert not any(ex.task == "read_at" for s in ("validation", "test") for ex in qa(lab_corpus, s))


def test_read_at_questions_for_a_held_out_split(tmp_path):
    """``read_at_splits`` adds one read_at question per held-out scene in read_at.jsonl (gold recomputed
    from the scene, the span that of a beep) and leaves qa.jsonl as it is without it."""
    with_ra, without = tmp_path / "a", tmp_path / "b"
    make_lab(with_ra, {"validation": 3}, seed=4, read_at_splits=("validation",), progress=False)
    make_lab(without, {"validation": 3}, seed=4, progress=False)
    assert not (without / "validation" / "read_at.jsonl").exists()
    strip = lambda xs: [asdict(x) | {"audio": Path(x.audio).name} for x in xs]  # noqa: E731
    assert strip(qa(with_ra, "validation")) == strip(qa(without, "validation"))
    read_at = read_jsonl(with_ra / "validation" / "read_at.jsonl", QAExample).records
    assert len(read_at) == 3 and {x.task for x in read_at} == {"read_at"}
    assert len({x.audio for x in read_at}) == 3
    for ex in read_at:
        assert ex.answer == expected_letter(ex) and len(ex.evidence) == 1 and ex.meta["pointer"] == 0
        # a counterfactual citation per other beep, contradicting the question's time, naming that beep's pitch
        beeps = [e for e in ex.meta["scene"]["events"] if e["kind"] == "beep"]
        rank = {e["pitch_hz"]: i for i, e in enumerate(sorted(beeps, key=lambda e: e["pitch_hz"]))}
        asked = ex.meta["scene"]["events"][ex.meta["asked_event"]]
        assert [[cf["span"][0], cf["span"][1], cf["answer"]] for cf in ex.meta["counterfactuals"]] == [
            [cite_lo(e), cite_hi(e), "abcd"[rank[e["pitch_hz"]]]] for e in beeps if e is not asked]
    manifest = json.loads((with_ra / "manifest.json").read_text())
    assert manifest["splits"]["validation"]["read_at_questions"] == 3
    for bad in (("train",), ("test",)):
        with pytest.raises(TgsrError, match="read_at_splits"):
            make_lab(tmp_path / "c", {"train": 1, "validation": 1}, read_at_splits=bad, progress=False)


def test_voices_are_disjoint_across_splits(lab_corpus):
    from tgsr.data.tts import get_engine
    from tgsr.data.voices import engine_configs

    pools = lab_voice_pools(engine_configs(get_engine("espeak")), 0)
    keys = {s: {c.voice.key for c in pools[s]} for s in SPLITS}
    assert all(keys[s] for s in SPLITS)
    assert not (keys["train"] & keys["validation"]) and not (keys["train"] & keys["test"])
    assert not (keys["validation"] & keys["test"])
    used = {s: {v["key"] for sc in read_scenes(lab_corpus / s / "scenes.jsonl") for v in sc.voices} for s in SPLITS}
    assert all(used[s] <= keys[s] for s in SPLITS)
    manifest = json.loads((lab_corpus / "manifest.json").read_text())
    assert manifest["splits"]["test"]["clips"] == 50


def test_scenes_are_deterministic():
    from tgsr.data.lexicon import lexicon
    from tgsr.data.tts import get_engine
    from tgsr.data.voices import engine_configs

    engine = get_engine("espeak")
    pool = lab_voice_pools(engine_configs(engine), 3)["validation"]
    items, places = lexicon(None)
    a, xa = make_scene("validation", 7, 3, pool, {"espeak": engine}, items, places, max_turns=3)
    b, xb = make_scene("validation", 7, 3, pool, {"espeak": engine}, items, places, max_turns=3)
    c, _ = make_scene("validation", 8, 3, pool, {"espeak": engine}, items, places, max_turns=3)
    assert a == b and np.array_equal(xa, xb)
    assert c.events != a.events


def _within_chance(hits: int, n: int, p: float) -> bool:
    return binomtest(hits, n, p).pvalue > 0.001


@pytest.mark.parametrize("corpus, control_floor", [("lab_corpus", 0.9), ("tone_lab_corpus", 0.75)])
def test_no_clip_statistic_or_text_prior_answers(corpus, control_floor, request):
    """Also on the tone scenes, whose test tones have a timbre never heard in training (so the
    control, a probe fit on training sines, reads them less well)."""
    from tgsr.data.frame_probe import bag_of_frames_probe
    from tgsr.data.text_baseline import MostFrequentAnswerText

    lab_corpus = request.getfixturevalue(corpus)
    train, test = qa(lab_corpus, "train"), qa(lab_corpus, "test")
    assert len(test) >= 200
    clip = bag_of_frames_probe(train, test, "clip")
    control = bag_of_frames_probe(train, test, "evidence")
    four = [t for t in clip.per_task if t != "compare_marker"]
    h4, n4 = sum(clip.per_task[t]["hits"] for t in four), sum(clip.per_task[t]["n"] for t in four)
    cmp = clip.per_task["compare_marker"]
    assert _within_chance(h4, n4, 0.25), clip.to_dict()
    assert _within_chance(cmp["hits"], cmp["n"], 0.5), clip.to_dict()
    # the same probe reads the answer when given the audio at the evidence: the check can fail
    assert control.accuracy > control_floor and not _within_chance(control.hits, control.n, control.chance), \
        control.to_dict()
    model = MostFrequentAnswerText().fit(train)
    text_hits = Counter()
    for ex in test:
        text_hits[len(ex.choices), model.predict(ex) == ex.answer_index] += 1
    for k in (2, 4):
        assert _within_chance(text_hits[k, True], text_hits[k, True] + text_hits[k, False], 1 / k)


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(TgsrError, match="unknown lab splits"):
        make_lab(tmp_path, {"dev": 2}, progress=False)
    with pytest.raises(TgsrError, match="unknown lab families"):
        make_lab(tmp_path, {"train": 1}, families={"train": ("pitch",)}, progress=False)
    with pytest.raises(TgsrError, match="unknown scene kind"):
        make_lab(tmp_path, {"train": 1}, scenes="noise", progress=False)
    with pytest.raises(TgsrError, match="need speaker turns"):
        make_lab(tmp_path, {"train": 1}, scenes="tones", families={"train": ("after_turn",)}, progress=False)
    bad = tmp_path / "scenes.jsonl"
    bad.write_text('{"clip_id": "x"}\n')
    with pytest.raises(TgsrError, match=r"scenes.jsonl:1"):
        read_scenes(bad)


def test_tgsr_data_lab_command(tmp_path, capsys):
    from tgsr.cli import main

    out = tmp_path / "lab"
    assert main(["data", "lab", "--out", str(out), "--train", "8", "--validation", "2", "--test", "4",
                 "--probe", "test", "--read-at", "validation", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "train: 8 scenes, 48 questions" in text and "control: the probe" in text
    assert "(+2 read_at questions in validation/read_at.jsonl)" in text
    assert len(read_jsonl(out / "validation" / "read_at.jsonl", QAExample).records) == 2
    assert not (out / "test" / "read_at.jsonl").exists()
    probe = json.loads((out / "probe.json").read_text())
    assert probe["split"] == "test" and probe["clip"]["n"] == len(qa(out, "test")) == 20
    assert main(["data", "lab", "--out", str(tmp_path / "x"), "--train", "-1", "--no-progress"]) == 1
    assert "split sizes must be >= 0" in capsys.readouterr().err


# ================================================================ pure-tone scenes (tgsr.data.lab_tones)

def harmonic_ratio(audio: np.ndarray, start: float, end: float, hz: float) -> float:
    """Amplitude at 3 x ``hz`` over the amplitude at ``hz`` (Hann-windowed, zero-padded FFT)."""
    seg = audio[int(start * SR):int(end * SR)]
    spec = np.abs(np.fft.rfft(seg * np.hanning(seg.size), 8 * seg.size))
    f = np.fft.rfftfreq(8 * seg.size, 1 / SR)
    near = lambda x: spec[np.abs(f - x) < 0.02 * x].max()  # noqa: E731
    return float(near(3 * hz) / near(hz))


def test_tone_answers_recomputed_from_the_scene(tone_lab_corpus):
    seen = Counter()
    for split in SPLITS:
        for ex in qa(tone_lab_corpus, split):
            assert ex.answer == expected_letter(ex), ex.id
            assert ex.meta["scene_kind"] == "tones" and not ex.meta["scene"]["turns"]
            seen[ex.meta["family"]] += 1
    assert set(seen) == set(LAB_FAMILIES) - {"after_turn"}
    for ex in read_jsonl(tone_lab_corpus / "validation" / "read_at.jsonl", QAExample).records:
        assert ex.answer == expected_letter(ex), ex.id


def test_tone_audio_holds_the_recorded_events(tone_lab_corpus):
    from tgsr.data.lab_tones import EDGE_SECONDS, EVENT_SECONDS, GAP_SECONDS

    expected_ratio = {"sine": 0.0, "triangle": 1 / 9, "square": 1 / 3}
    for split in SPLITS:
        for scene in read_scenes(tone_lab_corpus / split / "scenes.jsonl")[:15]:
            audio = load_audio(scene.audio)
            assert scene.kind == "tones" and scene.duration == 6.0 and audio.size == 6 * SR
            events = scene.events
            kinds = [e.kind for e in events]
            assert kinds.count("marker") == 1 and kinds[0] == kinds[-1] == "beep"
            assert sorted(e.pitch_hz for e in scene.beeps) == [300.0, 600.0, 1200.0, 2400.0]
            assert events[0].start >= EDGE_SECONDS - 1e-3 and events[-1].end <= 6.0 - EDGE_SECONDS + 1e-3
            for a, b in zip(events, events[1:]):
                assert GAP_SECONDS[0] - 2e-3 <= b.start - a.end <= GAP_SECONDS[1] + 2e-3
            inside = np.zeros(audio.size, bool)
            for e in events:
                assert EVENT_SECONDS[0] - 2e-3 <= e.end - e.start <= EVENT_SECONDS[1] + 2e-3
                inside[int(e.start * SR) - 16:int(e.end * SR) + 16] = True  # times are stored to 1 ms
                if e.kind == "beep":
                    assert abs(peak_hz(audio, e.start, e.end) - e.pitch_hz) < 0.02 * e.pitch_hz
                    if 3 * e.pitch_hz <= 7500:  # the timbre heard is the one recorded
                        assert abs(harmonic_ratio(audio, e.start, e.end, e.pitch_hz)
                                   - expected_ratio[e.timbre]) < 0.03, (scene.clip_id, e)
                else:
                    seg = audio[int(e.start * SR):int(e.end * SR)]
                    power = np.abs(np.fft.rfft(seg)) ** 2
                    f = np.fft.rfftfreq(seg.size, 1 / SR)
                    assert power[(f >= MARKER_BAND_HZ[0]) & (f <= MARKER_BAND_HZ[1])].sum() > 0.95 * power.sum()
            assert not np.abs(audio[~inside]).max() > 0  # nothing else sounds


def test_tone_timbres_are_disjoint_across_splits(tone_lab_corpus):
    from tgsr.data.lab_tones import SPLIT_TIMBRES

    assert all(not set(SPLIT_TIMBRES[a]) & set(SPLIT_TIMBRES[b]) for a in SPLITS for b in SPLITS if a != b)
    manifest = json.loads((tone_lab_corpus / "manifest.json").read_text())
    assert manifest["scenes"] == "tones"
    for split in SPLITS:
        used = {e.timbre for sc in read_scenes(tone_lab_corpus / split / "scenes.jsonl") for e in sc.beeps}
        assert used == set(SPLIT_TIMBRES[split]) == set(manifest["splits"][split]["timbres"])


def test_read_at_every_beep(tone_lab_corpus):
    """Four read_at rows per scene, one per beep in time order, each pitch once."""
    for rows in (qa(tone_lab_corpus, "train"),
                 read_jsonl(tone_lab_corpus / "validation" / "read_at.jsonl", QAExample).records):
        by_clip = {}
        for ex in rows:
            if ex.task == "read_at":
                by_clip.setdefault(Path(ex.audio).name, []).append(ex)
        assert by_clip
        for exs in by_clip.values():
            assert [ex.id.rsplit("-", 1)[1] for ex in exs] == [f"read_at{k}" for k in range(4)]
            assert sorted(ex.answer for ex in exs) == ["a", "b", "c", "d"]
            events = exs[0].meta["scene"]["events"]
            beeps = [i for i, e in enumerate(events) if e["kind"] == "beep"]
            assert [ex.meta["asked_event"] for ex in exs] == beeps


def test_tone_scenes_are_deterministic():
    from tgsr.data.lab_tones import make_tone_scene

    a, xa = make_tone_scene("validation", 7, 3)
    b, xb = make_tone_scene("validation", 7, 3)
    c, _ = make_tone_scene("validation", 8, 3)
    assert a == b and np.array_equal(xa, xb) and c.events != a.events


def test_slotted_tone_layout():
    """One event per fifth of the clip, centred and moved by at most the jitter, never out of its
    slot; the pitches, the marker rule and the audio are the free layout's."""
    from tgsr.data.lab_tones import CLIP_SECONDS, EDGE_SECONDS, make_tone_scene

    slot = (CLIP_SECONDS - 2 * EDGE_SECONDS) / 5
    for jitter in (0.0, 0.1, 5.0):
        for i in range(12):
            scene, audio = make_tone_scene("train", i, 0, jitter)
            events = scene.events
            assert len(events) == 5 and events[0].kind == events[-1].kind == "beep"
            assert sorted(e.pitch_hz for e in scene.beeps) == [300.0, 600.0, 1200.0, 2400.0]
            for k, e in enumerate(events):
                lo, hi = EDGE_SECONDS + k * slot, EDGE_SECONDS + (k + 1) * slot
                assert lo - 2e-3 <= e.start and e.end <= hi + 2e-3, (jitter, i, k, e)
                shift = (e.start + e.end) / 2 - (lo + hi) / 2
                assert abs(shift) <= jitter + 2e-3
                if e.kind == "beep":
                    assert abs(peak_hz(audio, e.start, e.end) - e.pitch_hz) < 0.02 * e.pitch_hz
    assert make_tone_scene("train", 3, 0, 0.2)[0] == make_tone_scene("train", 3, 0, 0.2)[0]
    # the free layout is not changed by the option's existence
    assert make_tone_scene("train", 3, 0)[0] != make_tone_scene("train", 3, 0, 0.0)[0]
    with pytest.raises(ValueError, match="slot_jitter"):
        make_tone_scene("train", 0, 0, -0.1)


def test_tone_slots_need_tone_scenes(tmp_path):
    with pytest.raises(TgsrError, match="tone_slot_jitter"):
        make_lab(tmp_path / "lab", {"train": 1}, scenes="speech", tone_slot_jitter=0.0, progress=False)


def test_tgsr_data_lab_tones_command(tmp_path, capsys):
    from tgsr.cli import main

    out = tmp_path / "tones"
    assert main(["data", "lab", "--out", str(out), "--scenes", "tones", "--train", "8", "--validation", "2",
                 "--test", "4", "--read-at", "validation", "--read-at-every-beep", "--probe", "validation",
                 "--tone-slots", "0.2", "--no-progress"]) == 0
    text = capsys.readouterr().out
    # four test families and four read_at rows per training scene
    assert "train: 8 scenes, 64 questions" in text and "test: 4 scenes, 16 questions" in text
    assert "(+8 read_at questions in validation/read_at.jsonl)" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["scenes"] == "tones" and manifest["read_at_every_beep"] is True
    assert manifest["tone_slot_jitter"] == 0.2
    assert manifest["splits"]["validation"]["timbres"] == ["triangle"]
