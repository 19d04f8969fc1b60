"""pocketsphinx forced alignment: precise word boundaries when the transcript is known.

The transcript is aligned word for word against the audio with the bundled US-English
acoustic model. Beams are very wide because synthetic speech scores poorly against a model
trained on natural speech; with default beams the search prunes the right path away.
Words missing from the pronunciation dictionary get one from espeak-ng's spelling rules
(a wrong guess derails the whole utterance), or, without espeak, one built from their parts,
so every transcript word gets a timing. Without a transcript the clip is recognised with
the bundled language model and the recogniser's own word segmentation is returned.

Digital silence is filled with a noise floor like a real recording's (30 dB under the clip's
speech level); against silence far quieter than any the model saw, short words after a pause
were squeezed into a few frames beside it.

A clip is never dropped for one hard stretch. Each window is padded with silence (words
that end right at the clip's end otherwise have no room for the final silence state), and a
window that does not align is retried with a higher noise floor (20 dB), then with 5 ms frames (fast
speech has phones shorter than the 30 ms that three 10 ms HMM states need). If a window still
fails, the words that the best partial path placed are kept but the last of them, and the
rest is aligned again from there; when nothing is placed, windows ending at pauses (silero
VAD) are tried. Only words that still fail are lost, and the result names them.

Every decode starts from fresh feature state (cepstral mean), so a clip's timings depend on that clip
alone, not on which clips the same decoder saw before (``--workers`` cannot change them).
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

from ...records import Word
from .base import SAMPLE_RATE, Aligner, Alignment, AlignmentError, check_audio, clean_word, finalize_words
from .g2p import espeak_arpabet

FRAME_RATES = (100, 200)  # 10 ms frames (the model's own), then 5 ms frames for fast speech
NOISE_FLOORS_DB = (30.0, 20.0)  # dither this far below the clip's speech level: first try, retry
MIN_DITHER = 1e-4  # -80 dBFS: the floor for a clip with no speech level (near-silent audio)
PAD_BEFORE, PAD_AFTER = 0.3, 0.5  # seconds of silence around every window
MIN_WINDOW = 0.5   # shortest stretch of audio worth a pause-bounded window (s)
MAX_PAUSE_CUTS = 4  # pause-bounded windows tried from one stuck position
MAX_DECODES = 24    # per clip: a hopeless clip costs bounded time
PREFIX_EXIT = 1e-20  # probability of leaving the transcript early in the prefix grammar
MAX_UNEXPLAINED_SPEECH = 0.4  # s of VAD speech allowed before or between partly aligned words
MAX_UNEXPLAINED_GAP = 1.0     # s of any audio, the same check without silero-vad
_ALT_PRON = re.compile(r"\(\d+\)$")
_DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_LETTER_PHONES = {
    "a": "AE", "b": "B", "c": "K", "d": "D", "e": "EH", "f": "F", "g": "G", "h": "HH", "i": "IH", "j": "JH",
    "k": "K", "l": "L", "m": "M", "n": "N", "o": "AA", "p": "P", "q": "K", "r": "R", "s": "S", "t": "T",
    "u": "AH", "v": "V", "w": "W", "x": "K S", "y": "Y", "z": "Z",
}


class PocketsphinxAligner(Aligner):
    backend = "pocketsphinx"
    needs_transcript = True

    def __init__(self, model: str | None = None, *, beam: float = 1e-100, pbeam: float = 1e-100,
                 wbeam: float = 1e-80, frame_rates: tuple[int, ...] = FRAME_RATES, split_at_pauses: bool = True):
        try:
            import pocketsphinx  # noqa: F401
        except ImportError:
            raise AlignmentError("the pocketsphinx backend needs the pocketsphinx package "
                                 "(pip install tgsr[align])") from None
        self.model_name = model or "en-us"
        self._beams = dict(beam=beam, pbeam=pbeam, wbeam=wbeam)
        self.frame_rates = tuple(frame_rates)
        self.split_at_pauses = split_at_pauses
        self._decoders: dict = {}

    def _decoder(self, align: bool, frate: int = 100):
        """One decoder per (mode, frame rate), created on first use; see :meth:`_segments` for its state."""
        key = ("align" if align else "recognize", frate)
        if key not in self._decoders:
            from pocketsphinx import Decoder

            kwargs = dict(samprate=SAMPLE_RATE, loglevel="FATAL", frate=frate)
            if self.model_name != "en-us":  # a custom acoustic model folder
                kwargs["hmm"] = self.model_name
            self._decoders[key] = Decoder(**kwargs, **self._beams) if align else Decoder(**kwargs)
        return self._decoders[key]

    # ---------------------------------------------------------------- dictionary
    def _pronunciation(self, dec, token: str) -> str:
        known = dec.lookup_word(token)
        if known:
            return known
        guessed = espeak_arpabet(token)
        if guessed:
            return guessed
        parts = [p for p in re.split(r"[-'_]", token) if p]
        phones = []
        for part in parts:
            if part.isdigit():
                phones += [dec.lookup_word(_DIGITS[int(d)]) for d in part]
            elif dec.lookup_word(part):
                phones.append(dec.lookup_word(part))
            else:  # crude letter-to-phone: enough to give the word a plausible duration
                letters = re.sub(r"(.)\1+", r"\1", part)
                phones += [_LETTER_PHONES[c] for c in letters if c in _LETTER_PHONES]
        phones = [p for p in phones if p]
        if not phones:
            raise AlignmentError(f"cannot build a pronunciation for {token!r}")
        return " ".join(phones)

    @staticmethod
    def _tokenize(transcript: str) -> tuple[list[str], list[str]]:
        """(surface words, dictionary tokens) of a transcript, one each per word that has letters or digits."""
        surface, tokens = [], []
        for raw in transcript.split():
            word = clean_word(raw)
            ascii_word = unicodedata.normalize("NFKD", word.lower().replace("\u2019", "'"))
            token = re.sub(r"[^a-z0-9'\-]", "", ascii_word).strip("-'")  # café -> cafe
            if token:
                surface.append(word)
                tokens.append(token)
        return surface, tokens

    def _add_words(self, dec, tokens: list[str]) -> None:
        for token in tokens:
            if dec.lookup_word(token) is None:
                dec.add_word(token, self._pronunciation(dec, token), True)

    # ---------------------------------------------------------------- decoding
    @staticmethod
    def _levels(audio: np.ndarray) -> tuple[float, float]:
        """(speech level, noise floor) RMS of a clip: 95th and 10th percentiles of its 20 ms frame levels."""
        n = audio.size // 320
        if n == 0:
            return 0.0, 0.0
        rms = np.sqrt((audio[:n * 320].astype(np.float64).reshape(n, 320) ** 2).mean(1))
        return float(np.percentile(rms, 95)), float(np.percentile(rms, 10))

    @classmethod
    def _dithers(cls, audio: np.ndarray) -> list[float]:
        """Dither amplitudes of the attempts: enough to lift the clip's noise floor to
        ``NOISE_FLOORS_DB`` under its speech level, and never below ``MIN_DITHER``.

        The acoustic model learned silence from recordings whose noise floor lies some 25-30 dB
        under the speech (LibriVox: about 25). Digital silence is far quieter than anything it
        saw; its silence model then fits quiet speech better than a short word does, and short
        words after a pause get squeezed into a few frames beside it. Topping the floor up to a
        real recording's restores the contrast; a recording that has such a floor already gets
        only the faint minimum, so its timings do not move.
        """
        level, floor = cls._levels(audio)
        return [float(np.sqrt(max((level * 10 ** (-db / 20)) ** 2 - floor ** 2, MIN_DITHER ** 2)))
                for db in NOISE_FLOORS_DB]

    @staticmethod
    def _pcm16(audio: np.ndarray, dither: float = MIN_DITHER) -> bytes:
        """16-bit PCM with fixed-seed Gaussian dither of standard deviation ``dither``.

        Digital silence (exact zeros, common in synthetic and edited audio) gives -inf log
        energies and derails the search (see :meth:`_dithers` for the level).
        """
        noise = np.random.default_rng(0).normal(0.0, dither, audio.shape) if dither else 0.0
        return (np.clip(audio + noise, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()

    def _segments(self, dec, audio: np.ndarray, dither: float = MIN_DITHER,
                  frate: int = 100) -> list[tuple[str, float, float]]:
        """(word, start s, end s) of one decode, silences and fillers left out.

        The decoder's live cepstral mean (and its running sums, which ``set_cmn`` leaves
        alone) would carry over from the previous utterance, so timings would depend on which
        clips came before: the feature extraction is reinitialised first.
        """
        dec.reinit_feat()
        dec.start_utt()
        dec.process_raw(self._pcm16(audio, dither), no_search=False, full_utt=True)
        dec.end_utt()
        out = []
        for seg in dec.seg() or []:
            word = _ALT_PRON.sub("", seg.word)
            if word.startswith("<") or word.startswith("[") or word.startswith("+"):
                continue  # silence, sentence markers and fillers
            out.append((word, seg.start_frame / frate, (seg.end_frame + 1) / frate))
        return out

    def _search(self, dec, tokens: list[str], prefix: bool) -> None:
        """The word sequence to align: all of ``tokens``, or (``prefix``) any leading part of it.

        The prefix grammar is the alignment chain with an improbable exit after every word,
        so the search always ends and says how far the transcript fits the audio.
        """
        if not prefix:
            dec.set_align_text(" ".join(tokens))
            return
        n = len(tokens)
        chain = [(k, k + 1, 1.0, token) for k, token in enumerate(tokens)]
        exits = [(k, n, PREFIX_EXIT) for k in range(1, n)]
        dec.add_fsg("prefix", dec.create_fsg("prefix", 0, n, chain + exits))
        dec.activate_search("prefix")

    def _fit(self, audio: np.ndarray, start: float, end: float, tokens: list[str], budget: list[int],
             prefix: bool = False, dithers: list[float] | None = None) -> tuple[list[tuple[float, float] | None], str]:
        """Align ``tokens`` (or, ``prefix``, as many leading tokens as fit) to ``audio[start:end]``.

        Each attempt (frame rate x dither) runs until one places every token; otherwise the
        attempt that placed the longest prefix wins. Returns (clip-time spans of the placed
        prefix, the attempt that placed it). The silence padding is taken off again; a word
        placed mostly in the padding at the clip's start or end is None (see :meth:`_outside`).
        """
        piece = audio[int(round(start * SAMPLE_RATE)):int(round(end * SAMPLE_RATE))]
        padded = np.concatenate([np.zeros(int(PAD_BEFORE * SAMPLE_RATE), np.float32), piece,
                                 np.zeros(int(PAD_AFTER * SAMPLE_RATE), np.float32)])
        best: list[tuple[float, float]] = []
        how = ""
        dithers = dithers or self._dithers(audio)
        for frate in self.frame_rates:
            dec = self._decoder(align=True, frate=frate)
            self._add_words(dec, tokens)
            self._search(dec, tokens, prefix)
            for floor_db, dither in zip(NOISE_FLOORS_DB, dithers):
                if budget[0] <= 0:
                    return best, how
                budget[0] -= 1
                segs = self._segments(dec, padded, dither, frate)
                spans = []
                for token, (word, a, b) in zip(tokens, segs):
                    if word != token:
                        break
                    a, b = a - PAD_BEFORE + start, b - PAD_BEFORE + start
                    if self._outside(a, b, start <= 0, end >= audio.size / SAMPLE_RATE, start, end):
                        spans.append(None)
                        continue
                    a = min(max(start, a), end)
                    spans.append((a, min(max(a, b), end)))
                attempt = f"{1000 // frate} ms frames, noise floor -{floor_db:g} dB"
                if len(spans) == len(tokens) == len(segs):
                    return spans, attempt
                if len(spans) > len(best):
                    best, how = spans, attempt
        return best, how

    @staticmethod
    def _outside(a: float, b: float, at_clip_start: bool, at_clip_end: bool, start: float, end: float) -> bool:
        """Whether a word decoded at (a, b) lies mostly in the silence added before the clip's
        start or after its end: the transcript has it, the recording does not.

        The forced path must place every transcript word somewhere; a word that was not said
        at the edge of a clip goes into the padding, and cutting the padding off would leave it
        a span of a few ms or none. It is reported lost instead.
        """
        inside = min(b, end) - max(a, start)
        return (at_clip_start and a < start or at_clip_end and b > end) and inside < (b - a) / 2

    @staticmethod
    def _speech_regions(audio: np.ndarray) -> list[tuple[float, float]] | None:
        """(start, end) seconds of speech (silero VAD), or None without silero-vad."""
        try:
            from .vad import speech_segments

            return speech_segments(audio)
        except (AlignmentError, ImportError):
            return None

    @staticmethod
    def _explains_the_speech(spans: list[tuple[float, float]], pos: float,
                             regions: list[tuple[float, float]] | None) -> bool:
        """Whether partly aligned words leave no stretch of speech unexplained before or between them.

        A prefix grammar can absorb speech as noise and place a few words far from where they
        were said; such a result is refused rather than written with wrong times.
        """
        spans = [s for s in spans if s is not None]
        if not spans:
            return False
        gaps = [(pos, spans[0][0])] + [(a[1], b[0]) for a, b in zip(spans, spans[1:])]
        for lo, hi in gaps:
            if regions is None:
                if hi - lo > MAX_UNEXPLAINED_GAP:
                    return False
                continue
            speech = sum(max(0.0, min(hi, e) - max(lo, s)) for s, e in regions)
            if speech > MAX_UNEXPLAINED_SPEECH:
                return False
        return True

    def _force_align(self, audio: np.ndarray, tokens: list[str]) -> tuple[list[tuple[int, float, float]],
                                                                          list[int], list[str]]:
        """(token index, start, end) of every placed token, indexes of lost tokens, steps taken.

        From the current position: align the remaining tokens to the rest of the clip; failing
        that, keep the words the best prefix placed but the last (its end may be stretched over
        audio that belongs to the next word) and go on from there; failing that, try windows
        that end at pauses. When nothing fits, a token is skipped only if the tokens after it
        fit here (a transcript word that was not said); otherwise the rest is lost.
        """
        duration = audio.size / SAMPLE_RATE
        first_attempt = f"{1000 // self.frame_rates[0]} ms frames, noise floor -{NOISE_FLOORS_DB[0]:g} dB"
        dithers = self._dithers(audio)
        budget = [MAX_DECODES]
        placed: list[tuple[int, float, float]] = []
        steps: list[str] = []
        skipped: list[int] = []  # tokens passed over, and tokens placed outside the recording
        vad: list = []  # [speech regions or None], computed once when first needed
        i, pos = 0, 0.0

        def take(spans, how: str) -> None:
            nonlocal i, pos
            for k, span in enumerate(spans):
                if span is None:
                    skipped.append(i + k)
                else:
                    placed.append((i + k, *span))
                    pos = span[1]
            i += len(spans)
            if how != first_attempt:
                steps.append(how)

        def speech() -> list | None:
            if not vad:
                vad.append(self._speech_regions(audio))
            return vad[0]

        def usable(spans, whole: bool = False) -> bool:
            """A partial result worth keeping: all its words (``whole``) or all but the last."""
            kept = spans if whole else spans[:-1]
            return self._explains_the_speech(kept, pos, speech())

        while i < len(tokens) and budget[0] > 0:
            rest = tokens[i:]
            spans, how = self._fit(audio, pos, duration, rest, budget, dithers=dithers)
            if len(spans) == len(rest):
                take(spans, how)
                break
            spans, how = self._fit(audio, pos, duration, rest, budget, prefix=True, dithers=dithers)
            if len(spans) == len(rest) and usable(spans, whole=True):
                take(spans, "prefix grammar")
                break
            if usable(spans):
                take(spans[:-1], "aligned the rest again")
                continue
            if self.split_at_pauses:
                regions = speech() or []
                pauses = [(a[1] + b[0]) / 2 for a, b in zip(regions, regions[1:])]
                found = False
                for cut in [p for p in pauses if p >= pos + MIN_WINDOW][:MAX_PAUSE_CUTS]:
                    spans, _ = self._fit(audio, pos, cut, rest, budget, prefix=True, dithers=dithers)
                    if usable(spans):
                        found = True
                        break
                if found:
                    take(spans[:-1], "split at a pause")
                    continue
            if len(rest) > 2 and usable(self._fit(audio, pos, duration, rest[1:], budget, prefix=True,
                                                  dithers=dithers)[0]):
                skipped.append(i)
                i += 1
                steps.append("word skipped")
                continue
            break
        lost = sorted(skipped + list(range(i, len(tokens))))
        if budget[0] <= 0 and i < len(tokens):
            steps.append("decode budget spent")
        return placed, lost, steps

    def align_detailed(self, audio_16k: np.ndarray, transcript: str | None = None) -> Alignment:
        audio = check_audio(audio_16k)
        duration = audio.size / SAMPLE_RATE
        if not transcript or not transcript.strip():
            return Alignment(words=self._recognized_words(audio, duration))
        surface, tokens = self._tokenize(transcript)
        if not tokens:
            raise AlignmentError("the transcript has no words to align")
        placed, lost, steps = self._force_align(audio, tokens)
        if not placed:
            raise AlignmentError(f"forced alignment failed: 0 of {len(tokens)} words aligned "
                                 "(audio and transcript may not match)")
        words = finalize_words([Word(text=surface[i], start=a, end=b) for i, a, b in placed], duration)
        return Alignment(words=words, lost=[surface[i] for i in lost], steps=list(dict.fromkeys(steps)))

    def align(self, audio_16k: np.ndarray, transcript: str | None = None) -> list[Word]:
        """Timed words of every transcript word; a word that cannot be aligned is an error here
        (use :meth:`align_detailed` to keep the rest of the clip)."""
        result = self.align_detailed(audio_16k, transcript)
        if result.lost:
            total = len(result.words) + len(result.lost)
            raise AlignmentError(f"forced alignment failed: {len(result.words)} of {total} words aligned "
                                 f"(lost: {' '.join(result.lost[:10])}{' ...' if len(result.lost) > 10 else ''})")
        return result.words

    def _recognized_words(self, audio: np.ndarray, duration: float) -> list[Word]:
        segs = self._segments(self._decoder(align=False), audio)
        return finalize_words([Word(text=w, start=a, end=b) for w, a, b in segs], duration)

    def transcribe(self, audio_16k: np.ndarray) -> str:
        audio = check_audio(audio_16k)
        return " ".join(w for w, _, _ in self._segments(self._decoder(align=False), audio))


__all__ = ["PocketsphinxAligner"]
