"""espeak-ng through libespeak-ng's C API (ctypes), with exact word times from synth events.

The ``espeakng-loader`` package ships the library and its data, so no system install is needed.
In synchronous mode the library calls our callback with audio chunks and an event list: a
WORD event where each word starts, PHONEME events (with the phoneme name) where each phoneme
starts, and an END event. A word ends at the next pause phoneme (its name starts with ``_``)
or the next WORD event. Some dictionary entries cover several words ("from the") and emit a
single WORD event; their phonemes are shared out over the words by each word's own phoneme
count (``espeak_TextToPhonemes``). A word that follows silence starts where it becomes audible
(see ``snap_onsets_after_silence``).

libespeak-ng seeds its noise generator from the clock and keeps synthesis state between
calls (wave generator phase, noise state), so the same text gives slightly different samples
depending on when and after what it is spoken. For byte-identical corpora every utterance
runs on a freshly loaded private copy of the library with a fixed noise seed: loading it
costs well under a millisecond.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ...records import Word
from . import EngineUnavailable, SynthesisError, Voice, tokenize

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_EV_LIST_TERMINATED, _EV_WORD, _EV_END, _EV_MSG_TERMINATED, _EV_PHONEME = 0, 1, 5, 6, 7
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE, _PARAM_WORDGAP = 1, 3, 4, 7

DEFAULT_WPM = 175
# English accents by espeak voice name ("en" is British English)
ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd")
# pitch settings (0-99) per voice type; measured median F0 with the m*/f* variants:
# deep male ~65-85 Hz, light male ~105-135 Hz, low female ~150-205 Hz, high female ~240-330 Hz
TYPE_PITCH = {0: (8, 18), 1: (65, 75), 2: (35, 45), 3: (80, 90)}
MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7")
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5")


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass
class _Phoneme:
    sample: int
    name: str
    text_position: int


@dataclass
class _WordEvent:
    sample: int
    text_position: int
    length: int


_LOCK = threading.Lock()
_PRIVATE_LIB: str | None = None


def _paths() -> tuple[str, str]:
    try:
        import espeakng_loader
    except ImportError:
        raise EngineUnavailable("espeak engine needs the espeakng-loader package: "
                                "pip install espeakng-loader==0.2.4") from None
    lib, data = espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
    if not os.path.exists(lib):
        raise EngineUnavailable(f"libespeak-ng not found at {lib}; reinstall espeakng-loader")
    return lib, data


def _private_library(lib_path: str) -> str:
    """A copy of the library only this module loads, so unloading it really resets its state."""
    global _PRIVATE_LIB
    if _PRIVATE_LIB is None or not os.path.exists(_PRIVATE_LIB):
        folder = tempfile.mkdtemp(prefix="tgsr-espeak-")
        _PRIVATE_LIB = os.path.join(folder, "libespeak-ng-tgsr.so")
        shutil.copyfile(lib_path, _PRIVATE_LIB)
        atexit.register(shutil.rmtree, folder, True)
    return _PRIVATE_LIB


class _Session:
    """One freshly loaded, initialised library instance; unloaded on exit."""

    def __init__(self, lib_path: str, data_path: str):
        self._lib_path, self._data_path = lib_path, data_path
        self.chunks: list[np.ndarray] = []
        self.words: list[_WordEvent] = []
        self.phonemes: list[_Phoneme] = []
        self.end_sample: int | None = None
        self._callback = _Callback(self._on_synth)

    def __enter__(self) -> "_Session":
        self.lib = ctypes.CDLL(self._lib_path, mode=ctypes.RTLD_LOCAL)
        lib = self.lib
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, self._data_path.encode(),
                                                 _INIT_PHONEME_EVENTS | _INIT_DONT_EXIT)
        if self.sample_rate <= 0:
            self._close()
            raise SynthesisError(f"espeak_Initialize failed (code {self.sample_rate}) with data at {self._data_path}")
        lib.espeak_SetSynthCallback(self._callback)
        # the library seeds its noise generator from the clock; fix it for reproducible audio
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        return self

    def __exit__(self, *exc) -> None:
        self._close()

    def _close(self) -> None:
        import _ctypes

        try:
            self.lib.espeak_Terminate()
        finally:
            _ctypes.dlclose(self.lib._handle)

    def _on_synth(self, wav, n, events) -> int:
        if wav and n > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EV_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EV_WORD:
                self.words.append(_WordEvent(ev.sample, ev.text_position, ev.length))
            elif ev.type == _EV_PHONEME:
                name = bytes(ev.id.string).split(b"\0", 1)[0].decode("latin-1")
                self.phonemes.append(_Phoneme(ev.sample, name, ev.text_position))
            elif ev.type in (_EV_END, _EV_MSG_TERMINATED):
                self.end_sample = ev.sample if self.end_sample is None else max(self.end_sample, ev.sample)
            i += 1
        return 0

    def set_voice(self, voice: Voice, wordgap: int = 0) -> None:
        if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise SynthesisError(f"espeak has no voice {voice.name!r}")
        self.lib.espeak_SetParameter(_PARAM_RATE, int(round(DEFAULT_WPM * voice.rate)), 0)
        self.lib.espeak_SetParameter(_PARAM_PITCH, int(voice.pitch), 0)
        self.lib.espeak_SetParameter(_PARAM_RANGE, 50, 0)
        self.lib.espeak_SetParameter(_PARAM_WORDGAP, int(wordgap), 0)

    def phoneme_count(self, word: str) -> int:
        ptr = ctypes.c_char_p(word.encode("utf-8"))
        out = self.lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, ord("|") << 8) or b""
        return max(1, len([p for p in out.decode("latin-1").replace(" ", "|").split("|") if p.strip()]))

    def speak(self, text: str) -> None:
        self.chunks, self.words, self.phonemes, self.end_sample = [], [], [], None
        self.lib.espeak_ng_SetRandSeed(1)
        data = text.encode("utf-8") + b"\0"
        rc = self.lib.espeak_Synth(data, len(data), 0, 0, 0, _CHARS_UTF8, None, None)
        if rc != 0:
            raise SynthesisError(f"espeak_Synth failed (code {rc}) on {text!r}")


def _is_pause(name: str) -> bool:
    return name.startswith("_") or not name.strip()


class EspeakEngine:
    """espeak-ng voices: 8 English accents x variants m1-m7 / f1-f5, any rate and pitch.

    Every ``synthesize`` call runs on a fresh library instance, so its output depends only on
    its arguments. Inside ``with engine.batch():`` calls share one instance (loading the
    dictionary once instead of per call, ~7 ms); the output then depends on the sequence of
    calls since the batch began, which is what a clip needs: the same clip gives the same
    bytes.
    """

    name = "espeak"

    def __init__(self) -> None:
        lib, self._data = _paths()
        self._lib = _private_library(lib)
        self._shared: _Session | None = None

    @contextmanager
    def batch(self) -> Iterator[None]:
        if self._shared is not None:  # nested: keep the outer batch
            yield
            return
        with _LOCK, _Session(self._lib, self._data) as session:
            self._shared = session
            try:
                yield
            finally:
                self._shared = None

    def voices(self) -> list[Voice]:
        out = []
        for accent in ACCENTS:
            for variant, sex in [(v, "male") for v in MALE_VARIANTS] + [(v, "female") for v in FEMALE_VARIANTS]:
                out.append(Voice("espeak", f"{accent}+{variant}", accent=accent, variant=variant, sex=sex))
        return out

    def voice_types(self, base: Voice) -> list[tuple[int, tuple[int, ...]]]:
        """Voice types (``lexicon.VOICE_TYPES`` index) and pitch settings: m* variants give the
        male types, f* variants the female ones."""
        types = (0, 1) if base.sex == "male" else (2, 3)
        return [(t, TYPE_PITCH[t]) for t in types]

    def synthesize(self, text: str, voice: Voice, *, wordgap: int = 0) -> tuple[np.ndarray, list[Word]]:
        """Speak ``text``; return 16 kHz float32 audio and one timed Word per token.

        ``wordgap`` inserts that many 10 ms units of silence between words (used by tests to
        check word onsets against the audio energy).
        """
        tokens = tokenize(text)
        if not tokens:
            raise SynthesisError(f"nothing to speak in {text!r}")
        if self._shared is not None:
            sr, raw, word_events, phonemes, end_sample, counts = self._run(self._shared, text, voice, wordgap, tokens)
        else:
            with _LOCK, _Session(self._lib, self._data) as s:
                sr, raw, word_events, phonemes, end_sample, counts = self._run(s, text, voice, wordgap, tokens)
        if raw.size == 0:
            raise SynthesisError(f"espeak produced no audio for {text!r}")
        total = int(raw.size) if end_sample is None else min(int(raw.size), max(end_sample, 1))
        spans = _word_spans(text, tokens, word_events, phonemes, counts, total)
        audio = resample_fft(raw.astype(np.float32) / 32768.0, sr, 16_000)
        words = [Word(text=w, start=a / sr, end=b / sr) for (w, _, _), (a, b) in zip(tokens, spans)]
        return audio, snap_onsets_after_silence(audio, words)


    @staticmethod
    def _run(s: _Session, text: str, voice: Voice, wordgap: int, tokens):
        s.set_voice(voice, wordgap)
        s.speak(text)
        counts = [s.phoneme_count(w) for w, _, _ in tokens]
        raw = np.concatenate(s.chunks) if s.chunks else np.zeros(0, np.int16)
        return s.sample_rate, raw, list(s.words), list(s.phonemes), s.end_sample, counts


def snap_onsets_after_silence(audio: np.ndarray, words: list[Word], sr: int = 16_000, *, frame: float = 0.0025,
                              search: float = 0.12, rel_threshold: float = 0.01) -> list[Word]:
    """Start a word that begins in silence at its first audible frame.

    espeak starts a stop-initial word ("kitchen") at the stop's closure, which is silent: after
    a pause, or after a word that fades out, the word becomes audible only at the burst,
    30-60 ms later. A word whose first ``frame`` is below ``rel_threshold`` of the
    utterance's loudest frame (-40 dB) starts at the first louder frame within ``search``
    seconds (and before its end); words that start audibly keep the event time.
    """
    hop = max(1, int(round(frame * sr)))
    n = audio.size // hop
    if n == 0:
        return words
    env = np.sqrt((audio[: n * hop].astype(np.float64).reshape(n, hop) ** 2).mean(axis=1))
    thr = rel_threshold * float(env.max())
    out = []
    for w in words:
        a = int(round(w.start * sr)) // hop
        if a < n and env[a] < thr:
            stop = min(n, a + int(search * sr) // hop, int(w.end * sr) // hop)
            loud = np.nonzero(env[a:stop] >= thr)[0]
            if loud.size:
                start = (a + int(loud[0])) * hop / sr
                if w.start < start < w.end:
                    w = Word(text=w.text, start=start, end=w.end, speaker=w.speaker, confidence=w.confidence)
        out.append(w)
    return out


def resample_fft(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited resampling by truncating the spectrum (sample 0 keeps time 0).

    One FFT per utterance: exact low-pass at the new Nyquist frequency, deterministic, and it
    avoids importing scipy.signal (seconds of start-up) in the synthesis path.
    """
    if sr_in == sr_out or x.size == 0:
        return x.astype(np.float32)
    from math import gcd

    g = gcd(sr_in, sr_out)
    up, down = sr_out // g, sr_in // g
    n_out = int(round(x.size * up / down))
    # zero-pad to down * m samples with m 5-smooth, so both FFT sizes factor well and the
    # padded output length (up * m) is exact
    m = _smooth_at_least(-(-x.size // down))
    padded = np.zeros(down * m, np.float64)
    padded[: x.size] = x
    spec = np.fft.rfft(padded)
    keep = up * m // 2 + 1
    spec = spec[:keep] if keep <= spec.size else np.concatenate([spec, np.zeros(keep - spec.size, spec.dtype)])
    return (np.fft.irfft(spec, up * m)[:n_out] * (up / down)).astype(np.float32)


def _smooth_at_least(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n."""
    best = 1 << max(0, (n - 1).bit_length())
    p3 = 1
    while p3 < 2 * n:
        p35 = p3
        while p35 < 2 * n:
            v = p35
            while v < n:
                v *= 2
            best = min(best, v)
            p35 *= 5
        p3 *= 3
    return best


def _word_spans(text: str, tokens: list[tuple[str, int, int]], word_events: list[_WordEvent],
                phonemes: list[_Phoneme], counts: list[int], total: int) -> list[tuple[int, int]]:
    """(start, end) sample of every token from WORD/PHONEME events."""
    # 1. attach each WORD event to the token containing its (1-based) text position
    def token_at(pos: int) -> int | None:
        for i, (_, a, b) in enumerate(tokens):
            if a <= pos - 1 < b:
                return i
        return None

    starts: dict[int, int] = {}
    ordered: list[tuple[int, int]] = []  # (sample, token) in time order
    for ev in word_events:
        i = token_at(ev.text_position)
        if i is None or i in starts:
            continue  # an event inside an already-timed token (e.g. a hyphenated word)
        starts[i] = ev.sample
        ordered.append((ev.sample, i))
    if 0 not in starts:
        raise SynthesisError(f"espeak gave no word event for the first word of {text!r}")
    # 2. a group = a WORD event and the tokens after it that got no event of their own
    group_of = []
    current = 0
    for i in range(len(tokens)):
        if i in starts:
            current = i
        group_of.append(current)
    heads = sorted(starts)
    # boundaries that end a group: the next WORD event or the next pause phoneme
    word_samples = sorted(s for s, _ in ordered)
    pause_samples = sorted(p.sample for p in phonemes if _is_pause(p.name))
    spans: list[tuple[int, int]] = [(0, 0)] * len(tokens)
    for head in heads:
        start = starts[head]
        nxt = [s for s in word_samples if s > start] + [s for s in pause_samples if s > start] + [total]
        end = min(nxt)
        members = [i for i in range(len(tokens)) if group_of[i] == head]
        if len(members) == 1:
            spans[head] = (start, max(end, start))
            continue
        # a dictionary entry covering several words: share its phonemes by phoneme counts
        group_ph = [p.sample for p in phonemes if start <= p.sample < end and not _is_pause(p.name)]
        bounds = [start]
        cum = 0
        total_count = sum(counts[i] for i in members)
        for m in members[:-1]:
            cum += counts[m]
            k = int(round(len(group_ph) * cum / total_count))
            k = min(max(k, len(bounds)), len(group_ph) - 1) if group_ph else 0
            bounds.append(group_ph[k] if group_ph and k > 0 else start)
        bounds.append(end)
        for j, m in enumerate(members):
            spans[m] = (bounds[j], max(bounds[j + 1], bounds[j]))
    return spans


__all__ = ["EspeakEngine", "resample_fft", "snap_onsets_after_silence", "ACCENTS", "MALE_VARIANTS", "FEMALE_VARIANTS",
           "DEFAULT_WPM"]
