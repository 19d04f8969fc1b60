"""The synthetic corpus: records, exact timings, balanced and correct questions, disjoint splits."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tgsr.audio import load_audio
from tgsr.data.lexicon import VOICE_TYPES, lexicon
from tgsr.data.text_baseline import MostFrequentAnswerText, text_only_baseline
from tgsr.prompts import final_answer_line, sta_answer
from tgsr.records import ClipWords, QAExample, StaExample, read_jsonl
from tgsr.spans import find_spans

SPLITS = ("train", "test")


def load(corpus: Path, split: str):
    words = {c.clip_id: c for c in read_jsonl(corpus / split / "words.jsonl", ClipWords)}
    sta = read_jsonl(corpus / split / "sta.jsonl", StaExample).records
    qa = read_jsonl(corpus / split / "qa.jsonl", QAExample).records
    voices = {json.loads(line)["clip_id"]: json.loads(line)["speakers"]
              for line in (corpus / split / "voices.jsonl").read_text().splitlines()}
    return words, sta, qa, voices


def clip_of(words: dict, ex) -> ClipWords:
    return words[Path(ex.audio).stem]


def test_files_and_records_are_complete(synth_corpus):
    manifest = json.loads((synth_corpus / "manifest.json").read_text())
    for split, n in (("train", 24), ("test", 8)):
        words, sta, qa, voices = load(synth_corpus, split)
        assert len(words) == n == manifest["splits"][split]["clips"]
        assert not (synth_corpus / split / "failures.jsonl").exists()
        assert {e.granularity for e in sta} == {"phrase", "turn"}
        assert len(qa) >= 9 * n  # most families can be asked about most clips
        assert set(voices) == set(words)


def test_clips_are_16k_mono_pcm16_with_2_to_4_speakers_taking_turns(synth_corpus):
    for split in SPLITS:
        words, _, _, voices = load(synth_corpus, split)
        for clip in words.values():
            info = sf.info(clip.audio)
            assert (info.samplerate, info.channels, info.subtype) == (16_000, 1, "PCM_16")
            assert abs(info.frames / 16_000 - clip.duration) < 1e-3 and clip.duration <= 30.0
            speakers = [u.speaker for u in clip.utterances]
            assert 2 <= len(set(speakers)) <= 4
            assert all(a != b for a, b in zip(speakers, speakers[1:]))  # turns alternate
            for a, b in zip(clip.utterances, clip.utterances[1:]):
                assert b.start - a.end >= 0.29  # a pause between turns
            # numbered by order of first appearance
            assert list(dict.fromkeys(speakers)) == [f"spk{k + 1}" for k in range(len(set(speakers)))]
            # distinct voices in a clip: different voice types and configurations
            vs = voices[clip.clip_id]
            assert len({v["voice_type"] for v in vs}) == len(vs) == len({v["key"] for v in vs})
            # words belong to their utterance and are in order
            for u in clip.utterances:
                inside = [w for w in clip.words if u.start <= w.start and w.end <= u.end]
                assert " ".join(w.text for w in inside) == re.sub(r"[^\w' ]", "", u.text)
                assert {w.speaker for w in inside} == {u.speaker}
            times = [(w.start, w.end) for w in clip.words]
            assert all(s < e for s, e in times) and all(e1 <= s2 + 1e-9 for (_, e1), (s2, _) in zip(times, times[1:]))


def test_turn_starts_agree_with_speech_energy_onsets(synth_corpus):
    """Every turn follows silence: its first word starts within 30 ms of where energy rises."""
    words, _, _, _ = load(synth_corpus, "test")
    frame = 0.005
    for clip in words.values():
        audio = load_audio(clip.audio)
        hop = int(frame * 16_000)
        n = audio.size // hop
        env = np.sqrt((audio[: n * hop].astype(np.float64).reshape(n, hop) ** 2).mean(axis=1))
        prev_end = 0.0
        for u in clip.utterances:
            # -40 dB re the turn's loudest frame (turns are normalised separately)
            thr = 0.01 * env[int(u.start / frame):int(u.end / frame)].max()
            a = int(round((prev_end + 0.1) / frame))
            loud = np.nonzero(env[a:] >= thr)[0]
            onset = (a + int(loud[0])) * frame
            assert abs(onset - u.start) <= 0.030, (clip.clip_id, u.text, u.start, onset)
            prev_end = u.end


def test_train_and_test_share_no_clips_and_no_voices(synth_corpus):
    train_words, train_sta, train_qa, train_voices = load(synth_corpus, "train")
    test_words, test_sta, test_qa, test_voices = load(synth_corpus, "test")
    assert not set(train_words) & set(test_words)
    assert not {c.audio for c in train_words.values()} & {c.audio for c in test_words.values()}
    assert {Path(e.audio).stem for e in train_qa + train_sta} <= set(train_words)
    assert {Path(e.audio).stem for e in test_qa + test_sta} <= set(test_words)
    train_keys = {v["key"] for vs in train_voices.values() for v in vs}
    test_keys = {v["key"] for vs in test_voices.values() for v in vs}
    assert train_keys and test_keys and not train_keys & test_keys
    assert {e.split for e in train_qa} == {"train"} and {e.split for e in test_qa} == {"test"}


def test_the_voice_split_covers_every_configuration_once():
    from tgsr.data.tts import get_engine
    from tgsr.data.voices import engine_configs, split_configs

    configs = engine_configs(get_engine("espeak"))
    parts = split_configs(configs, seed=0)
    train, test = {c.voice.key for c in parts["train"]}, {c.voice.key for c in parts["test"]}
    assert not train & test and train | test == {c.voice.key for c in configs}
    assert 0.2 < len(test) / len(configs) < 0.3
    # every (type, rate level) is available in both splits
    for part in parts.values():
        assert {(c.vtype, c.rate_level) for c in part} == {(t, r) for t in range(4) for r in range(4)}


def test_exactly_one_option_is_correct_and_gold_letters_are_balanced(synth_corpus):
    for split in SPLITS:
        words, _, qa, voices = load(synth_corpus, split)
        per_task = defaultdict(Counter)
        for ex in qa:
            assert len(ex.choices) == 4 and len(set(ex.choices)) == 4, ex.id
            assert ex.answer_text == ex.choices[ex.answer_index]
            assert ex.category == ("acoustic" if ex.task in ACOUSTIC else "lexical")
            per_task[ex.task][ex.answer] += 1
            check_gold(ex, clip_of(words, ex), voices[clip_of(words, ex).clip_id])
        for task, counts in per_task.items():
            full = [counts.get(letter, 0) for letter in "abcd"]
            assert max(full) - min(full) <= 1, (split, task, counts)


def test_fixed_option_families_keep_every_option_the_answer_about_equally_often(synth_corpus):
    """longest_turn and start_range always offer the same four options (first to fourth turn;
    four time ranges), so the answer text itself, not only its letter, must stay balanced."""
    for split in SPLITS:
        _, _, qa, _ = load(synth_corpus, split)
        for task in ("longest_turn", "start_range"):
            counts = Counter(ex.answer_text for ex in qa if ex.task == task)
            if not counts:  # longest_turn skips clips of more than four turns (8 test clips of up to 8)
                assert split == "test" and task == "longest_turn"
                continue
            full = [counts.get(c, 0) for c in qa[[ex.task for ex in qa].index(task)].choices]
            assert max(full) - min(full) <= 2, (split, task, counts)


ACOUSTIC = {"speaker_count", "turn_first", "turn_last", "turn_longest", "turn_start", "fastest", "highest_pitch",
            "longest_turn", "start_range"}
NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5}


def check_gold(ex: QAExample, clip: ClipWords, voices: list[dict]) -> None:
    """Recompute the answer from words.jsonl / voices.jsonl and check no distractor is also right."""
    vtype = {v["speaker"]: f"the {v['voice_type']}" for v in voices}
    utts = clip.utterances
    by_spk = defaultdict(list)
    for u in utts:
        by_spk[u.speaker].append(u)
    ordinals = ["first", "second", "third", "fourth"]
    if ex.task == "speaker_count":
        assert NUMBERS[ex.answer_text] == len(by_spk)
        assert all(NUMBERS[c] != len(by_spk) for c in ex.choices if c != ex.answer_text)
    elif ex.task == "turn_first":
        assert ex.answer_text == vtype[utts[0].speaker]
    elif ex.task == "turn_last":
        assert ex.answer_text == vtype[utts[-1].speaker]
    elif ex.task == "turn_longest":
        talk = {s: sum(w.end - w.start for w in clip.words if w.speaker == s) for s in by_spk}
        best = max(talk, key=talk.get)
        assert ex.answer_text == vtype[best]
        assert all(talk[best] >= 1.19 * t for s, t in talk.items() if s != best)
    elif ex.task == "turn_start":
        k = ordinals.index(ex.question.split()[3])
        first = by_spk[f"spk{k + 1}"][0].start
        assert ex.answer_text == f"at {round(first, 1):.1f} seconds"
        others = [float(c.split()[1]) for c in ex.choices if c != ex.answer_text]
        assert all(abs(t - round(first, 1)) >= 0.3 - 1e-9 for t in others)
    elif ex.task == "longest_turn":
        lengths = [u.end - u.start for u in utts]
        k = ordinals.index(ex.answer_text.split()[1])
        assert len(utts) <= 4 and ex.answer_text == f"the {ordinals[k]} turn"
        assert all(lengths[k] >= 1.19 * d for i, d in enumerate(lengths) if i != k)
        assert sorted(ex.choices) == sorted(f"the {o} turn" for o in ordinals)
        assert ex.evidence == [(np.floor(utts[k].start * 100 + 1e-6) / 100, np.ceil(utts[k].end * 100 - 1e-6) / 100)]
    elif ex.task == "start_range":
        from tgsr.data.questions import START_EDGES, start_range_options

        start = by_spk["spk2"][0].start
        assert start == utts[1].start  # the second voice heard always takes the second turn
        assert min(abs(start - e) for e in START_EDGES) >= 0.1 - 1e-9
        assert ex.answer_text == start_range_options()[sum(start > e for e in START_EDGES)]
        assert sorted(ex.choices) == sorted(start_range_options())
    elif ex.task == "fastest":
        rate = {v["speaker"]: v["letters_per_second"] for v in voices}
        best = max(rate, key=rate.get)
        assert ex.answer_text == vtype[best] and all(rate[best] > r for s, r in rate.items() if s != best)
    elif ex.task == "highest_pitch":
        f0 = {v["speaker"]: v["f0_hz"] for v in voices}
        best = max(f0, key=f0.get)
        assert ex.answer_text == f"the {ordinals[int(best[3:]) - 1]} speaker"
        assert all(f0[best] >= 1.14 * f for s, f in f0.items() if s != best)
    elif ex.task in ("who_said", "content", "order"):
        item = ex.meta["item"]
        mentions = [u for u in utts if re.search(rf"\b{item}\b", u.text)]
        assert len(mentions) == 1, (ex.id, item)
        u = mentions[0]
        if ex.task == "who_said":
            assert ex.answer_text == vtype[u.speaker]
        elif ex.task == "content":
            assert re.search(rf"\b{item}\b.*\b{ex.answer_text}\b", u.text)
            assert not any(re.search(rf"\b{item}\b.*\b{c}\b", u.text) for c in ex.choices if c != ex.answer_text)
        else:
            later = " ".join(x.text for x in utts[utts.index(u):])
            after = later.split(item, 1)[1]
            mentioned = [c for c in ex.choices if re.search(rf"\b{c[4:]}\b", after)]
            assert mentioned and re.search(rf"\b{ex.answer_text[4:]}\b", after)
            first_pos = min(after.index(c[4:]) for c in mentioned)
            assert after.index(ex.answer_text[4:]) == first_pos
    assert set(vtype.values()) <= set(f"the {v}" for v in VOICE_TYPES)


def test_evidence_spans_lie_inside_the_clip_and_contain_the_words_they_cite(synth_corpus):
    for split in SPLITS:
        words, _, qa, _ = load(synth_corpus, split)
        for ex in qa:
            clip = clip_of(words, ex)
            assert ex.evidence, ex.id
            for s, e in ex.evidence:
                assert 0 <= s < e <= clip.duration
            spans = find_spans(ex.rationale)
            assert [(sp.start, sp.end) for sp in spans] == [tuple(x) for x in ex.evidence]
            assert find_spans(ex.rationale_plain) == []
            final = final_answer_line(ex.answer, ex.choices)
            assert ex.rationale.splitlines()[-1] == final == ex.rationale_plain.splitlines()[-1]
            # a citation that quotes speech covers exactly those words, in order
            for sp, line in zip(spans, [ln for ln in ex.rationale.splitlines() if ln.startswith("From ")]):
                quoted = re.search(r'says "([^"]+)"', line)
                inside = [w for w in clip.words if w.start >= sp.start - 1e-6 and w.end <= sp.end + 1e-6]
                assert inside, (ex.id, line)
                if quoted:
                    assert " ".join(w.text for w in inside) == re.sub(r"[^\w' ]", "", quoted.group(1))
                    assert sp.start <= inside[0].start < sp.start + 0.01 and sp.end - 0.01 < inside[-1].end <= sp.end
            # the plain rationale is the grounded one without its citations
            stripped = [re.sub(r"^From \S+ to \S+, ", "", ln) for ln in ex.rationale.splitlines()]
            assert [ln[:1].upper() + ln[1:] for ln in stripped] == ex.rationale_plain.splitlines()


def test_sta_targets_match_the_words(synth_corpus):
    words, sta, _, _ = load(synth_corpus, "train")
    for ex in sta:
        clip = clip_of(words, ex)
        assert ex.clip_id == clip.clip_id and ex.duration == clip.duration
        if ex.granularity == "phrase":
            inside = [w for w in clip.words if ex.start - 1e-6 <= w.start and w.end <= ex.end + 1e-6]
            assert " ".join(w.text for w in inside) == ex.phrase
            assert inside[0].start == ex.start and inside[-1].end == ex.end
            assert 2 <= len(inside) <= 4
            # one clause of one turn: the words follow each other with no punctuation between
            utt = next(u for u in clip.utterances if u.start <= ex.start and ex.end <= u.end)
            assert re.search(r"\b" + r" ".join(map(re.escape, ex.phrase.split())) + r"\b", utt.text), ex.phrase
        else:
            assert (ex.start, ex.end) in {(u.start, u.end) for u in clip.utterances}
            assert re.fullmatch(r"the (first|second|third|fourth) speaker's( (first|second|third|fourth))? turn|"
                                r"the (deep male|light male|low female|high female) voice's"
                                r"( (first|second|third|fourth))? turn", ex.phrase), ex.phrase
        answer = sta_answer(ex.phrase, ex.start, ex.end)
        assert answer.startswith(f"The segment {ex.phrase} starts at ")


def test_same_seed_gives_byte_identical_output_and_clips_do_not_depend_on_history(tmp_path, synth_corpus):
    from tgsr.data.synth import synthesize

    a, b = tmp_path / "a", tmp_path / "b"
    synthesize(a, 4, 2, seed=0, progress=False)
    synthesize(b, 4, 2, seed=0, progress=False)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    # the first clips equal those of the bigger fixture corpus, built earlier in this process
    for i in range(2):
        name = f"test/audio/test-{i:05d}.wav"
        assert (a / name).read_bytes() == (synth_corpus / name).read_bytes()
    c = tmp_path / "c"
    synthesize(c, 4, 2, seed=1, progress=False)
    assert (c / "train/audio/train-00000.wav").read_bytes() != (a / "train/audio/train-00000.wav").read_bytes()


def test_first_test_clip_gives_later_test_dialogues_unchanged(tmp_path, synth_corpus):
    """A test set can start after clips already looked at: the same clips, not new variants."""
    from tgsr.data.synth import synthesize
    from tgsr.errors import TgsrError

    out = tmp_path / "later"
    synthesize(out, 0, 1, seed=0, first_test_clip=1, progress=False)
    assert sorted(p.name for p in (out / "test" / "audio").iterdir()) == ["test-00001.wav"]
    name = "test/audio/test-00001.wav"
    assert (out / name).read_bytes() == (synth_corpus / name).read_bytes()
    with pytest.raises(TgsrError, match="first_test_clip"):
        synthesize(tmp_path / "bad", 1, 1, first_test_clip=-1, progress=False)


def test_vocab_size_limits_the_content_words(tmp_path):
    from tgsr.data.synth import synthesize

    synthesize(tmp_path, 6, 2, seed=3, vocab_size=8, progress=False)
    items, places = lexicon(8)
    assert len(items) + len(places) == 8
    for split in SPLITS:
        for ex in read_jsonl(tmp_path / split / "qa.jsonl", QAExample).records:
            if ex.task == "content":
                assert {c.removeprefix("in the ") for c in ex.choices} <= set(places)
            if ex.task in ("order",):
                assert {c.removeprefix("the ") for c in ex.choices} <= set(items)
        manifest = json.loads((tmp_path / "manifest.json").read_text())
        assert manifest["lexicon"] == {"items": list(items), "places": list(places)}
    with pytest.raises(Exception, match="at least 8"):
        synthesize(tmp_path / "x", 1, 1, vocab_size=4, progress=False)


def test_noise_is_added_at_the_requested_snr(tmp_path):
    from tgsr.data.synth import synthesize

    synthesize(tmp_path / "clean", 1, 1, seed=5, progress=False)
    synthesize(tmp_path / "noisy", 1, 1, seed=5, noise_snr=10.0, progress=False)
    clean = load_audio(tmp_path / "clean/train/audio/train-00000.wav")
    noisy = load_audio(tmp_path / "noisy/train/audio/train-00000.wav")
    noise = noisy - clean
    snr = 10 * np.log10(np.mean(clean ** 2) / np.mean(noise ** 2))
    assert abs(snr - 10.0) < 0.5
    assert (tmp_path / "clean/train/words.jsonl").read_text() == (tmp_path / "noisy/train/words.jsonl").read_text()


def test_text_only_baseline_finds_a_prior_when_there_is_one_and_not_in_the_corpus(synth_corpus):
    def ex(i, gold, choices, task="t"):
        return QAExample(id=str(i), audio="a.wav", question="Which one?", choices=choices,
                         answer="abcd"[choices.index(gold)], task=task)

    # a biased toy set: the answer text is always "red" -> the baseline gets everything right
    rng = np.random.default_rng(0)
    biased = []
    for i in range(40):
        choices = ["red", "green", "blue", "black"]
        rng.shuffle(choices)
        biased.append(ex(i, "red", list(choices)))
    assert text_only_baseline(biased[:30], biased[30:]).accuracy == 1.0
    assert MostFrequentAnswerText().fit(biased).predict(biased[0]) == biased[0].choices.index("red")
    # the corpus: near chance (8 test clips, ~90 questions: 3 standard deviations is ~0.14)
    _, _, train_qa, _ = load(synth_corpus, "train")
    _, _, test_qa, _ = load(synth_corpus, "test")
    result = text_only_baseline(train_qa, test_qa)
    assert result.chance == 0.25 and result.n == len(test_qa)
    assert result.accuracy < 0.25 + 0.14
    manifest = json.loads((synth_corpus / "manifest.json").read_text())
    assert manifest["text_only_baseline"]["accuracy"] == round(result.accuracy, 4)


def test_cli_writes_a_corpus_and_prints_the_summary(tmp_path, capsys):
    from tgsr.cli import main

    rc = main(["data", "synth", "--out", str(tmp_path), "--n-train", "3", "--n-test", "2", "--seed", "2",
               "--families", "speaker_count,turn_first,who_said", "--phrase-words", "3", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "train: 3 clips" in out and "test: 2 clips" in out and "text-only baseline" in out
    qa = read_jsonl(tmp_path / "train" / "qa.jsonl", QAExample).records
    assert {e.task for e in qa} <= {"speaker_count", "turn_first", "who_said"} and len(qa) >= 6
    sta = read_jsonl(tmp_path / "train" / "sta.jsonl", StaExample).records
    assert all(len(e.phrase.split()) == 3 for e in sta if e.granularity == "phrase")


def test_relative_out_dir_gives_audio_paths_relative_to_the_jsonl_folder(tmp_path, monkeypatch):
    # Regression: with a relative --out, records stored "corpus/test/audio/x.wav" (relative to the
    # working directory), which readers resolved to a file that does not exist.
    from tgsr.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["data", "synth", "--out", "corpus", "--n-train", "1", "--n-test", "1",
                 "--families", "speaker_count", "--no-progress"]) == 0
    for name in ("words.jsonl", "sta.jsonl", "qa.jsonl"):
        rows = [json.loads(line) for line in (tmp_path / "corpus" / "test" / name).read_text().splitlines()]
        assert rows and all(r["audio"] == "audio/test-00000.wav" for r in rows)
    clip = read_jsonl(tmp_path / "corpus" / "test" / "words.jsonl", ClipWords).records[0]
    assert Path(clip.audio).is_file()


def test_cli_reports_bad_options_clearly(tmp_path, capsys):
    from tgsr.cli import main

    assert main(["data", "synth", "--out", str(tmp_path), "--families", "nonsense", "--no-progress"]) == 1
    assert "unknown question families" in capsys.readouterr().err
    assert main(["data", "synth", "--out", str(tmp_path), "--engines", "sapi", "--no-progress"]) == 1
    assert "unknown TTS engine" in capsys.readouterr().err


def test_optional_engines_join_the_corpus(tmp_path):
    from tgsr.data.synth import synthesize
    from tgsr.data.tts import available_engines

    optional = [e for e in available_engines() if e != "espeak"]
    if not optional:
        pytest.skip("neither festival nor piper is installed")
    synthesize(tmp_path, 4, 2, seed=11, engines=["espeak", *optional], progress=False)
    used = set()
    for split in SPLITS:
        words, _, qa, voices = load(tmp_path, split)
        for vs in voices.values():
            used |= {v["engine"] for v in vs}
        for ex in qa:
            check_gold(ex, clip_of(words, ex), voices[clip_of(words, ex).clip_id])
    assert used & set(optional), used
