"""Alignment that loses nothing silently: safe model files, clips kept, workers that do not matter."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from fixtures_align import SENTENCES
from tgsr.audio import save_audio
from tgsr.cli import main
from tgsr.data.align import AlignmentError, ModelNotFound, get_aligner
from tgsr.data.align.base import SAMPLE_RATE
from tgsr.data.align.evaluate import BoundaryReport
from tgsr.data.pipeline import align_manifest
from tgsr.records import ManifestItem, Word, write_jsonl

# ---------------------------------------------------------------- model files never run code

class _RunsCode:
    """Unpickling this object runs a command (what a malicious checkpoint would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("whisper")
    from tgsr.data.align.whisper_timestamped import load_openai_whisper

    marker = tmp_path / "ran"
    bad = tmp_path / "evil.pt"
    torch.save({"dims": _RunsCode(marker), "model_state_dict": {}}, bad)
    with pytest.raises(ModelNotFound) as err:
        load_openai_whisper(str(bad))
    assert not marker.exists()
    message = str(err.value)
    assert str(bad) in message and "refused" in message and "posix.system" in message
    assert "weights_only" not in message  # no advice to load it unsafely


def test_a_checkpoint_of_plain_values_that_is_not_whisper_gets_a_clear_error(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("whisper")
    from tgsr.data.align.whisper_timestamped import load_openai_whisper

    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ModelNotFound, match="not an openai-whisper checkpoint"):
        load_openai_whisper(str(path))
    torch.save([1, 2, 3], path)
    with pytest.raises(ModelNotFound, match="holds a list"):
        load_openai_whisper(str(path))


# ---------------------------------------------------------------- forced alignment keeps the clip

def _speak(text: str, name: str = "en-us+m1", **voice):
    from tgsr.data.tts import Voice, get_engine

    accent, variant = name.split("+")
    return get_engine("espeak").synthesize(text, Voice("espeak", name, accent=accent, variant=variant, **voice))


def _mean_error(words, ref) -> float:
    report = BoundaryReport()
    report.add(words, ref)
    assert report.matched == len(ref)
    return report.mean_ms


@pytest.fixture(scope="module")
def ps():
    pytest.importorskip("pocketsphinx")
    pytest.importorskip("espeakng_loader")
    return get_aligner("pocketsphinx")


def test_fast_high_voice_is_aligned_not_dropped(ps):
    # Very fast speech in a high voice: phones shorter than three 10 ms states, so 10 ms frames
    # cannot place every word; whole clips were dropped
    text = "Would you like to see the dessert menu? I left the lampshade in the closet."
    audio, ref = _speak(text, "en-gb-x-gbcwmd+f4", rate=2.2, pitch=90)
    result = ps.align_detailed(audio, text)
    assert result.lost == [] and [w.text for w in result.words] == [w.text for w in ref]
    assert _mean_error(result.words, ref) < 40
    assert any("5 ms frames" in step for step in result.steps)


def test_partly_aligned_words_are_where_they_were_said_or_lost(speech_clips):
    # Without the 5 ms-frame retry the fast clip cannot be aligned whole. A prefix grammar can
    # then absorb speech as noise and place a few words seconds away from where they were said
    # (seen on an 18 s dialogue: 4 words, 9.3 s off): such words must be lost, not written.
    pytest.importorskip("pocketsphinx")
    text = "Would you like to see the dessert menu? I left the lampshade in the closet."
    audio, ref = _speak(text, "en-gb-x-gbcwmd+f4", rate=2.2, pitch=90)
    result = get_aligner("pocketsphinx", frame_rates=(100,)).align_detailed(audio, text)
    assert len(result.words) + len(result.lost) == len(ref) and result.lost
    for word, truth in zip(result.words, ref):  # the kept words are the first ones, in place
        assert word.text == truth.text  # (10 ms frames are too coarse for this speed: 0.15 s, not seconds)
        assert abs(word.start - truth.start) < 0.15 and abs(word.end - truth.end) < 0.15


def _shifted(words, offset: float):
    return [Word(text=w.text, start=w.start + offset, end=w.end + offset) for w in words]


def test_windows_ending_at_pauses_align_a_clip_that_no_whole_window_aligns(speech_clips):
    # With 10 ms frames only, a stretch too fast for them (9 words/s) between two normal sentences
    # derails every decode of the whole clip: neither the transcript nor any prefix of it fits.
    # Windows that end at the pauses (silero VAD) give each sentence its own decode.
    pytest.importorskip("pocketsphinx")
    pytest.importorskip("silero_vad")
    a, b = speech_clips
    fast_text = "Would you like to see the dessert menu? I left the lampshade in the closet."
    fast, fast_ref = _speak(fast_text, "en-gb-x-gbcwmd+f4", rate=2.5, pitch=90)
    pause = np.zeros(int(0.75 * SAMPLE_RATE), dtype=np.float32)
    audio = np.concatenate([a.audio, pause, fast, pause, b.audio])
    text = " ".join([a.text, fast_text, b.text])
    t_fast = (a.audio.size + pause.size) / SAMPLE_RATE
    t_b = t_fast + (fast.size + pause.size) / SAMPLE_RATE
    ref = a.words + _shifted(fast_ref, t_fast) + _shifted(b.words, t_b)

    result = get_aligner("pocketsphinx", frame_rates=(100,)).align_detailed(audio, text)
    assert "split at a pause" in result.steps
    assert result.lost == [] and [w.text for w in result.words] == [w.text for w in ref]
    n_a = len(a.words)
    assert _mean_error(result.words[:n_a], a.words) < 40  # each piece lands where it was said
    assert _mean_error(result.words[-len(b.words):], ref[-len(b.words):]) < 40
    assert _mean_error(result.words, ref) < 60
    with pytest.raises(AlignmentError, match="0 of 33 words aligned"):  # what the pieces rescue
        get_aligner("pocketsphinx", frame_rates=(100,), split_at_pauses=False).align_detailed(audio, text)


def test_words_ending_at_the_clip_end_keep_their_times(ps, speech_clips):
    clip = speech_clips[0]
    audio = clip.audio[:int(clip.words[-1].end * SAMPLE_RATE)]  # cut right where the last word ends
    words = ps.align(audio, clip.text)
    assert _mean_error(words, clip.words) < 40
    assert words[-1].end <= len(audio) / SAMPLE_RATE


def test_a_transcript_longer_than_the_audio_keeps_the_spoken_words_and_names_the_rest(ps, speech_clips):
    clip = speech_clips[0]
    audio = clip.audio[:int((clip.words[4].end + 0.05) * SAMPLE_RATE)]  # "I think we should meet"
    result = ps.align_detailed(audio, clip.text)
    assert [w.text for w in result.words] == ["I", "think", "we", "should", "meet"]
    assert result.lost == ["at", "the", "station", "tomorrow", "morning"]
    assert _mean_error(result.words, clip.words[:5]) < 40
    with pytest.raises(AlignmentError, match="5 of 10 words aligned"):  # align() never returns a partial clip
        ps.align(audio, clip.text)


def test_transcript_words_not_in_the_audio_at_its_edges_are_lost_not_squeezed(ps, speech_clips):
    # The forced path puts such a word into the silence padded around the clip; with the padding
    # cut off it came back as a 0 ms span at 0.00 s, as if it had been said.
    clip = speech_clips[0]
    result = ps.align_detailed(clip.audio, "Yes " + clip.text)
    assert result.lost == ["Yes"]
    assert [w.text for w in result.words] == [w.text for w in clip.words]
    assert _mean_error(result.words, clip.words) < 40
    assert all(w.end > w.start for w in result.words)
    with pytest.raises(AlignmentError, match="10 of 11 words aligned"):
        ps.align(clip.audio, "Yes " + clip.text)


def test_a_clip_with_nothing_alignable_is_still_an_error(ps):
    silence = np.zeros(SAMPLE_RATE, dtype=np.float32)
    with pytest.raises(AlignmentError, match="0 of 4 words aligned"):
        ps.align_detailed(silence, "completely unrelated words here")


def test_timings_do_not_depend_on_the_clips_aligned_before(ps):
    # The decoder's live cepstral mean carried over between clips, so a clip's word times
    # depended on its predecessor (by 20 ms here), and on how clips were spread over --workers.
    before, _ = _speak(SENTENCES[0], "en-us-nyc+f3", pitch=90)
    audio, _ = _speak(SENTENCES[1], "en-gb-scotland+f2", pitch=80)
    fresh = get_aligner("pocketsphinx").align(audio, SENTENCES[1])
    ps.align(before, SENTENCES[0])
    assert ps.align(audio, SENTENCES[1]) == fresh


# ---------------------------------------------------------------- the alignment run

@pytest.fixture()
def clips_manifest(tmp_path, speech_clips):
    """Five clips in four voices (each worker sees other predecessors than a serial run), one truncated."""
    pytest.importorskip("pocketsphinx")
    a, b = speech_clips
    audios = [_speak(SENTENCES[0], "en-us-nyc+f3", pitch=90)[0], _speak(SENTENCES[1], "en-gb-scotland+f2", pitch=80)[0],
              a.audio, b.audio, a.audio[:int((a.words[4].end + 0.05) * SAMPLE_RATE)]]
    items = []
    for k, audio in enumerate(audios):
        save_audio(tmp_path / f"c{k}.wav", audio)
        items.append(ManifestItem(id=f"c{k}", audio=str(tmp_path / f"c{k}.wav"), transcript=SENTENCES[k % 2]))
    write_jsonl(tmp_path / "manifest.jsonl", items)
    return tmp_path / "manifest.jsonl"


def test_words_jsonl_has_the_same_bytes_for_one_and_two_workers(clips_manifest):
    d = clips_manifest.parent
    one = align_manifest(clips_manifest, d / "w1.jsonl", backend="pocketsphinx", workers=1, progress=False)
    two = align_manifest(clips_manifest, d / "w2.jsonl", backend="pocketsphinx", workers=2, progress=False)
    assert (d / "w1.jsonl").read_bytes() == (d / "w2.jsonl").read_bytes()
    assert (d / "w1.errors.jsonl").read_bytes() == (d / "w2.errors.jsonl").read_bytes()
    # the truncated clip is kept with its five spoken words; its other five are listed, and counted
    assert (one.aligned, one.failed, one.words_aligned, one.words_lost) == (5, 0, 41, 5)
    assert (two.words_aligned, two.words_lost) == (41, 5)
    rows = [json.loads(x) for x in (d / "w1.errors.jsonl").read_text().splitlines()]
    assert rows == [{"clip": "c4", "audio": str(d / "c4.wav"), "stage": "words",
                     "reason": "5 of 10 transcript words could not be aligned",
                     "words": ["at", "the", "station", "tomorrow", "morning"]}]
    assert "41 aligned, 5 lost" in one.line()
    # a rerun has nothing to do: the lost-word row does not mark the written clip as failed
    again = align_manifest(clips_manifest, d / "w1.jsonl", backend="pocketsphinx", progress=False)
    assert (again.aligned, again.skipped_done, again.skipped_failed) == (0, 5, 0)


def test_a_dead_worker_costs_only_its_clip(clips_manifest, monkeypatch, capsys):
    import multiprocessing

    if multiprocessing.get_start_method() != "fork":
        pytest.skip("the dying aligner is patched in this process and inherited by forked workers")
    from tgsr.data.align.pocketsphinx import PocketsphinxAligner

    d = clips_manifest.parent
    real = PocketsphinxAligner.align_detailed
    parent = os.getpid()

    def dies_on_c2(self, audio, transcript=None):
        if os.getpid() != parent and abs(float(np.abs(audio).max()) - marked) < 1e-4:
            os._exit(1)  # what the kernel's OOM killer or a segfault in native code looks like
        return real(self, audio, transcript)

    from tgsr.audio import load_audio

    marked = float(np.abs(load_audio(d / "c2.wav")).max())
    monkeypatch.setattr(PocketsphinxAligner, "align_detailed", dies_on_c2)
    out = d / "words.jsonl"
    rc = main(["data", "align", "--manifest", str(clips_manifest), "--backend", "pocketsphinx", "--out", str(out),
               "--workers", "2"])
    assert rc == 0
    assert "aligned 4, failed 1" in capsys.readouterr().out
    assert [json.loads(x)["clip_id"] for x in out.read_text().splitlines()] == ["c0", "c1", "c3", "c4"]
    rows = {r["clip"]: r for r in map(json.loads, (d / "words.errors.jsonl").read_text().splitlines())}
    assert rows["c2"]["stage"] == "worker" and "died" in rows["c2"]["reason"]
    # the clips aligned next to the dying one are the serial run's, byte for byte
    monkeypatch.setattr(PocketsphinxAligner, "align_detailed", real)
    align_manifest(clips_manifest, d / "serial.jsonl", backend="pocketsphinx", progress=False)
    serial = [x for x in (d / "serial.jsonl").read_text().splitlines() if '"c2"' not in x]
    assert out.read_text().splitlines() == serial
