"""Festival (apt ``festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts``), exact word times
from the utterance structure.

One ``festival --pipe`` process is kept per engine. For every utterance it synthesizes the text,
saves the wave and prints each Word item with the end of the segment before its first segment
(its start) and the end of its last segment (its end), read through the SylStructure relation.
Rate is set with ``Duration_Stretch``; the pitch of the diphone voices (kal, ked) with the
target F0 mean of their linear-regression intonation model. The HTS voice (slt) keeps its own
pitch.
"""

from __future__ import annotations

import atexit
import os
import select
import shutil
import subprocess
import tempfile
import threading

import numpy as np

from ...records import Word
from . import EngineUnavailable, SynthesisError, Voice, tokenize

# voice name -> (festival voice function, sex, accent, default target F0 mean or None if fixed)
VOICES = {
    "kal": ("voice_kal_diphone", "male", "en-us", 105.0),
    "ked": ("voice_ked_diphone", "male", "en-us", 105.0),
    "slt": ("voice_cmu_us_slt_arctic_hts", "female", "en-us", None),
}
# voice types (lexicon.VOICE_TYPES index) each voice realises, with pitch settings (0-99 scale)
TYPES = {"kal": [(0, (15, 25)), (1, (55, 65))], "ked": [(0, (15, 25)), (1, (55, 65))], "slt": [(2, (50,))]}
TIMEOUT_S = 60.0
VOICE_DIRS = {"kal": "english/kal_diphone", "ked": "english/ked_diphone", "slt": "us/cmu_us_slt_arctic_hts"}

_SETUP = r"""
(define (tgsr_say voicefn stretch f0mean wavfile sentence)
  (eval (list voicefn))
  (Parameter.set 'Duration_Stretch stretch)
  (if (> f0mean 0)
      (set! int_lr_params (list (list 'target_f0_mean f0mean) (list 'target_f0_std (/ f0mean 7.5))
                                (list 'model_f0_mean 170) (list 'model_f0_std 34))))
  (let ((utt (utt.synth (eval (list 'Utterance 'Text sentence)))))  ; Utterance does not evaluate its text
    (utt.save.wave utt wavfile 'riff)
    (mapcar
      (lambda (w)
        (format t "W\t%s\t%s\t%s\n" (item.name w)
                (item.feat w "R:SylStructure.daughter1.daughter1.R:Segment.p.end")
                (item.feat w "R:SylStructure.daughtern.daughtern.R:Segment.end")))
      (utt.relation.items utt 'Word))
    (format t "TGSR_END\n")
    t))
"""


def _voice_root() -> str:
    for root in ("/usr/share/festival/voices", "/usr/lib/festival/voices"):
        if os.path.isdir(root):
            return root
    return "/usr/share/festival/voices"


def installed_voices() -> list[str]:
    root = _voice_root()
    return [v for v in VOICES if os.path.isdir(os.path.join(root, VOICE_DIRS[v]))]


class FestivalEngine:
    name = "festival"

    def __init__(self) -> None:
        self._exe = shutil.which("festival")
        if self._exe is None:
            raise EngineUnavailable("festival is not installed: apt-get install festival festvox-kallpc16k "
                                    "festvox-kdlpc16k festvox-us-slt-hts")
        self._voices = installed_voices()
        if not self._voices:
            raise EngineUnavailable("festival has no supported voice: apt-get install festvox-kallpc16k")
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._tmp: str | None = None  # made on first use

    def voices(self) -> list[Voice]:
        return [Voice("festival", v, accent=VOICES[v][2], variant=v, sex=VOICES[v][1]) for v in self._voices]

    def voice_types(self, base: Voice) -> list[tuple[int, tuple[int, ...]]]:
        return TYPES[base.name]

    def _start(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            # festival block-buffers stdout into a pipe; stdbuf makes it flush every line
            stdbuf = shutil.which("stdbuf")
            cmd = ([stdbuf, "-oL"] if stdbuf else []) + [self._exe, "--pipe"]
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, text=True, bufsize=1)
            self._proc.stdin.write(_SETUP + "\n")
        return self._proc

    def close(self, kill: bool = False) -> None:
        if self._proc is not None and self._proc.poll() is None:
            if kill:
                self._proc.kill()
            else:
                self._proc.stdin.close()
            self._proc.wait(timeout=10)
        self._proc = None

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    def _lines(self, text: str):
        """Lines festival prints up to the end marker (read unbuffered, with a timeout)."""
        fd = self._proc.stdout.fileno()
        buf = b""
        while True:
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                decoded = line.decode("utf-8", "replace")
                if decoded.startswith("TGSR_END"):
                    return
                yield decoded
            ready, _, _ = select.select([fd], [], [], TIMEOUT_S)
            if not ready:
                self.close(kill=True)
                raise SynthesisError(f"festival gave no answer within {TIMEOUT_S} s for {text!r}")
            chunk = os.read(fd, 65536)
            if not chunk:
                self._proc = None
                raise SynthesisError(f"festival exited while speaking {text!r}")
            buf += chunk

    def synthesize(self, text: str, voice: Voice) -> tuple[np.ndarray, list[Word]]:
        if voice.name not in VOICES:
            raise SynthesisError(f"festival has no voice {voice.name!r}; installed: {', '.join(self._voices)}")
        tokens = tokenize(text)
        if not tokens:
            raise SynthesisError(f"nothing to speak in {text!r}")
        fn, _, _, base_f0 = VOICES[voice.name]
        f0 = base_f0 * (0.5 + voice.pitch / 100.0) if base_f0 else 0.0
        safe = text.replace("\\", " ").replace('"', " ")
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="tgsr-festival-")
            atexit.register(shutil.rmtree, self._tmp, True)
        wav = os.path.join(self._tmp, "utt.wav")
        with self._lock:
            proc = self._start()
            proc.stdin.write(f'(tgsr_say \'{fn} {1.0 / voice.rate:.4f} {f0:.2f} "{wav}" "{safe}")\n')
            proc.stdin.flush()
            rows = []
            for line in self._lines(text):
                if line.startswith("W\t"):
                    rows.append(line.split("\t")[1:])
            import soundfile as sf

            data, sr = sf.read(wav, dtype="float32", always_2d=True)
        from .espeak import resample_fft

        audio = resample_fft(data.mean(axis=1), sr, 16_000)
        if len(rows) != len(tokens):
            raise SynthesisError(f"festival spoke {len(rows)} words for {len(tokens)} tokens in {text!r}")
        words = []
        for (w, _, _), (_, start, end) in zip(tokens, rows):
            s, e = float(start), float(end)
            words.append(Word(text=w, start=max(0.0, s), end=max(e, s)))
        return audio, words


__all__ = ["FestivalEngine", "VOICES", "installed_voices"]
