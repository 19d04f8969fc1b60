"""pocketsphinx forced alignment: precise word boundaries when the transcript is known.

The transcript is aligned word for word against the audio with the bundled US-English
acoustic model. Beams are very wide because synthetic speech scores poorly against a model
trained on natural speech; with default beams the search prunes the right path away.
Words missing from the pronunciation dictionary get one from espeak-ng's spelling rules
(a wrong guess derails the whole utterance), or, without espeak, one built from their parts,
so every transcript word gets a timing. Without a transcript the clip is recognised with
the bundled language model and the recogniser's own word segmentation is returned.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

from ...records import Word
from .g2p import espeak_arpabet
from .base import Aligner, AlignmentError, SAMPLE_RATE, check_audio, clean_word, finalize_words

FRAME_RATE = 100  # pocketsphinx segments come in 10 ms frames
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
                 wbeam: float = 1e-80):
        try:
            import pocketsphinx  # noqa: F401
        except ImportError:
            raise AlignmentError("the pocketsphinx backend needs the pocketsphinx package "
                                 "(pip install tgsr[align])") from None
        self.model_name = model or "en-us"
        self._beams = dict(beam=beam, pbeam=pbeam, wbeam=wbeam)
        self._aligner = None
        self._recognizer = None

    def _decoder(self, align: bool):
        from pocketsphinx import Decoder

        kwargs = dict(samprate=SAMPLE_RATE, loglevel="FATAL")
        if self.model_name != "en-us":  # a custom acoustic model folder
            kwargs["hmm"] = self.model_name
        if align:
            if self._aligner is None:
                self._aligner = Decoder(**kwargs, **self._beams)
            return self._aligner
        if self._recognizer is None:
            self._recognizer = Decoder(**kwargs)
        return self._recognizer

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

    def _dict_tokens(self, dec, transcript: str) -> tuple[list[str], list[str]]:
        surface, tokens = [], []
        for raw in transcript.split():
            word = clean_word(raw)
            ascii_word = unicodedata.normalize("NFKD", word.lower().replace("\u2019", "'"))
            token = re.sub(r"[^a-z0-9'\-]", "", ascii_word).strip("-'")  # café -> cafe
            if not token:
                continue
            if dec.lookup_word(token) is None:
                dec.add_word(token, self._pronunciation(dec, token), True)
            surface.append(word)
            tokens.append(token)
        return surface, tokens

    # ---------------------------------------------------------------- decoding
    @staticmethod
    def _pcm16(audio: np.ndarray, dither: float = 1e-4) -> bytes:
        """16-bit PCM with a faint fixed-seed dither.

        Digital silence (exact zeros, common in synthetic and edited audio) gives -inf log
        energies and derails the search; noise at -80 dBFS fixes it without changing timings.
        """
        noise = np.random.default_rng(0).normal(0.0, dither, audio.shape) if dither else 0.0
        return (np.clip(audio + noise, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()

    def _segments(self, dec, audio: np.ndarray, dither: float = 1e-4) -> list[tuple[str, float, float]]:
        dec.start_utt()
        dec.process_raw(self._pcm16(audio, dither), no_search=False, full_utt=True)
        dec.end_utt()
        out = []
        for seg in dec.seg() or []:
            word = _ALT_PRON.sub("", seg.word)
            if word.startswith("<") or word.startswith("[") or word.startswith("+"):
                continue  # silence, sentence markers and fillers
            out.append((word, seg.start_frame / FRAME_RATE, (seg.end_frame + 1) / FRAME_RATE))
        return out

    def align(self, audio_16k: np.ndarray, transcript: str | None = None) -> list[Word]:
        audio = check_audio(audio_16k)
        duration = audio.size / SAMPLE_RATE
        if not transcript or not transcript.strip():
            return self._recognized_words(audio, duration)
        dec = self._decoder(align=True)
        surface, tokens = self._dict_tokens(dec, transcript)
        if not tokens:
            raise AlignmentError("the transcript has no words to align")
        dec.set_align_text(" ".join(tokens))
        segs = self._segments(dec, audio)
        if len(segs) != len(tokens):  # one retry with stronger dither before giving up
            segs = self._segments(dec, audio, dither=1e-3)
        if len(segs) != len(tokens):
            raise AlignmentError(f"forced alignment failed: {len(segs)} of {len(tokens)} words aligned "
                                 "(audio and transcript may not match)")
        words = [Word(text=s, start=a, end=b) for s, (_, a, b) in zip(surface, segs)]
        return finalize_words(words, duration)

    def _recognized_words(self, audio: np.ndarray, duration: float) -> list[Word]:
        segs = self._segments(self._decoder(align=False), audio)
        return finalize_words([Word(text=w, start=a, end=b) for w, a, b in segs], duration)

    def transcribe(self, audio_16k: np.ndarray) -> str:
        audio = check_audio(audio_16k)
        return " ".join(w for w, _, _ in self._segments(self._decoder(align=False), audio))


__all__ = ["PocketsphinxAligner"]
