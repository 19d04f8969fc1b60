"""TTS engines: exact word times that agree with the audio, reproducible output."""

from __future__ import annotations

import numpy as np
import pytest

from tgsr.data.tts import EngineUnavailable, SynthesisError, Voice, get_engine, tokenize

FRAME = 0.005  # energy envelope frame (s) used to find where speech becomes audible


def envelope(audio: np.ndarray, sr: int = 16_000) -> np.ndarray:
    hop = int(FRAME * sr)
    n = audio.size // hop
    return np.sqrt((audio[: n * hop].astype(np.float64).reshape(n, hop) ** 2).mean(axis=1))


def energy_onset(env: np.ndarray, after: float, start: float, threshold: float, run: int = 3) -> float | None:
    """Where speech becomes audible before or around ``start``: the first loud frame after the
    last run of ``run`` silent frames that begins between ``after`` and 30 ms past ``start``.

    None when there is no such silence. A start that is late finds the real onset before it;
    one that is early finds the onset after it: both show up as a large difference.
    """
    s = int(round(start / FRAME))
    a, b = max(0, int(round(after / FRAME))), min(env.size, s + 7)
    silent = env < threshold
    last = None
    for i in range(a, b):
        if silent[i:i + run].all() and i + run <= env.size:
            last = i + run - 1
    if last is None:
        return None
    loud = np.nonzero(~silent[last:last + 40])[0]
    return (last + int(loud[0])) * FRAME if loud.size else None


@pytest.fixture(scope="module")
def espeak():
    return get_engine("espeak")


SENTENCE = "Maybe we should buy a new umbrella for the garden, but I left my old ladder in the kitchen."
VOICES = [Voice("espeak", "en-us+m3", rate=1.0, pitch=50), Voice("espeak", "en-gb-scotland+m1", rate=0.75, pitch=10),
          Voice("espeak", "en-029+f5", rate=1.3, pitch=35), Voice("espeak", "en-us-nyc+f2", rate=1.65, pitch=80)]


@pytest.mark.parametrize("voice", VOICES, ids=lambda v: v.key)
def test_espeak_word_starts_within_30ms_of_energy_onset(espeak, voice):
    # word gaps put silence before every word, so each word has a measurable energy onset
    audio, words = espeak.synthesize(SENTENCE, voice, wordgap=25)
    assert [w.text for w in words] == [t for t, _, _ in tokenize(SENTENCE)]
    env = envelope(np.concatenate([np.zeros(1600, np.float32), audio]))  # 100 ms of silence first
    words = [type(w)(w.text, w.start + 0.1, w.end + 0.1) for w in words]
    thr = 0.02 * env.max()  # -34 dB re the loudest frame: where speech becomes audible
    checked = 0
    for i, w in enumerate(words):
        prev_end = words[i - 1].end if i else max(0.0, w.start - 0.1)
        if i and prev_end > w.start - 0.02:
            continue  # no pause before this word ("for the" is one dictionary entry): no onset to see
        onset = energy_onset(env, prev_end, w.start, thr)
        assert onset is not None, f"{w.text!r} should follow a pause, but the audio has no silence there"
        assert abs(onset - w.start) <= 0.030, (w.text, w.start, onset)
        checked += 1
    assert checked >= len(words) // 2, f"only {checked} of {len(words)} words followed silence"


def test_espeak_times_are_ordered_inside_the_audio(espeak):
    audio, words = espeak.synthesize(SENTENCE, VOICES[0])
    dur = audio.size / 16_000
    for a, b in zip(words, words[1:]):
        assert a.start < a.end <= b.start + 1e-9
    assert 0 <= words[0].start and words[-1].end <= dur


def test_espeak_splits_a_dictionary_entry_that_covers_two_words(espeak):
    # "from the" is one espeak dictionary entry with a single WORD event
    audio, words = espeak.synthesize("I came here from the station.", VOICES[0])
    texts = [w.text for w in words]
    assert texts == ["I", "came", "here", "from", "the", "station"]
    frm, the, station = words[3], words[4], words[5]
    assert frm.start < frm.end == the.start < the.end <= station.start
    # 'from' has 4 phonemes and 'the' 2: the split leaves 'from' the longer part
    assert frm.end - frm.start > the.end - the.start > 0.02


def test_espeak_is_reproducible_and_independent_of_history(espeak):
    a1, w1 = espeak.synthesize("Thanks a lot, the kettle is perfect.", VOICES[2])
    espeak.synthesize("Something else entirely, spoken in between.", VOICES[1])
    a2, w2 = espeak.synthesize("Thanks a lot, the kettle is perfect.", VOICES[2])
    assert a1.tobytes() == a2.tobytes() and w1 == w2
    with espeak.batch():
        b1, _ = espeak.synthesize("Thanks a lot, the kettle is perfect.", VOICES[2])
    assert b1.tobytes() == a1.tobytes()  # a batch starts from the same fresh state


def test_espeak_rate_and_pitch_change_the_voice(espeak):
    from tgsr.data.acoustics import median_f0

    text = "Could you please bring me the blue umbrella from the kitchen?"
    slow, ws = espeak.synthesize(text, Voice("espeak", "en-us+m3", rate=0.75, pitch=50))
    fast, wf = espeak.synthesize(text, Voice("espeak", "en-us+m3", rate=1.65, pitch=50))
    assert (ws[-1].end - ws[0].start) > 1.6 * (wf[-1].end - wf[0].start)
    low, _ = espeak.synthesize(text, Voice("espeak", "en-us+m3", pitch=10))
    high, _ = espeak.synthesize(text, Voice("espeak", "en-us+f3", pitch=85))
    assert median_f0(high) > 2.5 * median_f0(low) > 0


def test_espeak_reports_bad_input(espeak):
    with pytest.raises(SynthesisError, match="no voice"):
        espeak.synthesize("hello there", Voice("espeak", "xx-not-a-voice"))
    with pytest.raises(SynthesisError, match="nothing to speak"):
        espeak.synthesize(" ... ", VOICES[0])


def test_unknown_engine_is_a_clear_error():
    with pytest.raises(EngineUnavailable, match="unknown TTS engine"):
        get_engine("sapi")


def test_median_f0_finds_a_pure_tone():
    from tgsr.data.acoustics import median_f0

    t = np.arange(16_000) / 16_000
    for f in (80.0, 150.0, 290.0):
        assert abs(median_f0(0.3 * np.sin(2 * np.pi * f * t)) - f) < 0.03 * f
    assert median_f0(np.zeros(16_000, np.float32)) == 0.0


def test_resample_fft_matches_a_polyphase_resampler():
    from scipy.signal import resample_poly

    from tgsr.data.tts.espeak import resample_fft

    t = np.arange(44_101) / 22_050
    x = np.sin(2 * np.pi * 440 * t) * np.hanning(t.size)
    y = resample_fft(x, 22_050, 16_000)
    assert y.size == round(x.size * 16_000 / 22_050)
    assert np.max(np.abs(y - resample_poly(x, 320, 441))) < 5e-3


def _engine_or_skip(name: str):
    try:
        return get_engine(name)
    except EngineUnavailable as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("name,voice", [
    ("festival", Voice("festival", "kal", rate=1.0, pitch=25)),
    ("festival", Voice("festival", "slt", rate=1.3, pitch=50)),
    ("piper", Voice("piper", "joe", rate=1.0, pitch=55)),
])
def test_optional_engines_time_every_word_inside_the_audio(name, voice):
    engine = _engine_or_skip(name)
    if name == "festival":
        from tgsr.data.tts.festival import installed_voices

        if voice.name not in installed_voices():
            pytest.skip(f"festival voice {voice.name} is not installed")
    text = "I came here from the station, but the sink is leaking."
    audio, words = engine.synthesize(text, voice)
    assert [w.text for w in words] == [t for t, _, _ in tokenize(text)]
    assert audio.dtype == np.float32 and audio.size > 16_000
    for a, b in zip(words, words[1:]):
        assert a.start < a.end <= b.start + 1e-6
    assert words[-1].end <= audio.size / 16_000
    # the words are where the audio is loud: their spans hold almost all of the energy
    env = envelope(audio)
    inside = np.zeros(env.size, bool)
    for w in words:
        inside[int(w.start / FRAME):int(np.ceil(w.end / FRAME))] = True
    assert (env[inside] ** 2).sum() > 0.9 * (env ** 2).sum()
    audio2, words2 = engine.synthesize(text, voice)
    assert audio2.tobytes() == audio.tobytes() and words2 == words


def test_voice_types_have_the_pitch_they_claim():
    from tgsr.data.acoustics import median_f0
    from tgsr.data.voices import engine_configs

    bands = {0: (55, 95), 1: (95, 140), 2: (140, 215), 3: (225, 340)}  # Hz, per voice type
    text = "Could you please bring me the blue umbrella from the garage?"
    for name in ("espeak", "festival", "piper"):
        try:
            engine = get_engine(name)
        except EngineUnavailable:
            continue
        configs = [c for c in engine_configs(engine) if c.rate_level == 1]
        if name == "espeak":
            configs = configs[::5]  # every accent, variant and pitch setting appears in the sample
        for c in configs:
            audio, _ = engine.synthesize(text, c.voice)
            lo, hi = bands[c.vtype]
            assert lo <= median_f0(audio) <= hi, (c.voice.key, median_f0(audio))
