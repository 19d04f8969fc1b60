"""The one place audio files are read: load, resample, crop, mask, mix.

Every model in tgsr takes 16 kHz mono float32. ``load_audio`` converts whatever it reads
(stereo, 44.1 kHz, int16 ...) and raises ``AudioError`` with the path and the reason for
anything unusable, so long jobs can record the item and move on.
"""

from __future__ import annotations

import shutil
import subprocess
from math import gcd
from pathlib import Path
from typing import Iterable, Literal

import numpy as np

from .errors import AudioError

SAMPLE_RATE = 16_000
_VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4a", ".aac"}


def resample(audio: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    if orig_sr == target_sr:
        return audio.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    g = gcd(int(orig_sr), int(target_sr))
    return resample_poly(audio, target_sr // g, orig_sr // g).astype(np.float32)


def _read_with_ffmpeg(path: Path, sr: int) -> np.ndarray:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioError(path, "cannot decode this container without ffmpeg (apt install ffmpeg)")
    proc = subprocess.run(
        [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-vn", "-ac", "1", "-ar", str(sr), "-f", "f32le", "-"],
        capture_output=True,
    )
    if proc.returncode != 0:
        raise AudioError(path, f"ffmpeg failed: {proc.stderr.decode(errors='replace').strip()[:200]}")
    return np.frombuffer(proc.stdout, dtype=np.float32).copy()


def load_audio(path: str | Path, sr: int = SAMPLE_RATE, *, min_seconds: float = 0.0) -> np.ndarray:
    """Read a file as mono float32 at ``sr``. Raises ``AudioError`` when it is unusable."""
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if path.stat().st_size == 0:
        raise AudioError(path, "file is empty (0 bytes)")
    if path.suffix.lower() in _VIDEO_SUFFIXES:
        audio = _read_with_ffmpeg(path, sr)
    else:
        import soundfile as sf

        try:
            data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
        except Exception as e:  # libsndfile reports corrupt headers as RuntimeError/LibsndfileError
            raise AudioError(path, f"unreadable audio: {e}") from None
        audio = resample(data.mean(axis=1), file_sr, sr)
    if audio.size == 0:
        raise AudioError(path, "no audio samples")
    if not np.all(np.isfinite(audio)):
        raise AudioError(path, "audio contains NaN or infinite samples")
    if audio.size < min_seconds * sr:
        raise AudioError(path, f"audio is {audio.size / sr:.3f}s, shorter than {min_seconds}s")
    return audio


def save_audio(path: str | Path, audio: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    """Write 16-bit PCM WAV (deterministic bytes for the same samples)."""
    import soundfile as sf

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(audio, -1.0, 1.0), sr, subtype="PCM_16", format="WAV")


def duration_of(path: str | Path) -> float:
    """Duration in seconds from the header, without decoding the samples."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as e:
        raise AudioError(path, f"unreadable audio: {e}") from None
    return info.frames / float(info.samplerate)


def crop(audio: np.ndarray, start: float, end: float, *, pad: float = 0.0, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Samples between ``start - pad`` and ``end + pad`` seconds, clipped to the clip."""
    a = max(0, int(round((start - pad) * sr)))
    b = min(len(audio), int(round((end + pad) * sr)))
    return audio[a:max(a, b)]


def mask_spans(audio: np.ndarray, spans: Iterable[tuple[float, float]], *,
               mode: Literal["silence", "noise"] = "silence", seed: int = 0, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Copy of ``audio`` with each span replaced by silence or by noise at the clip's RMS."""
    out = audio.copy()
    rng = np.random.default_rng(seed)
    rms = float(np.sqrt(np.mean(audio ** 2))) if audio.size else 0.0
    for start, end in spans:
        a = max(0, int(round(start * sr)))
        b = min(len(out), int(round(end * sr)))
        if b <= a:
            continue
        out[a:b] = 0.0 if mode == "silence" else rng.normal(0.0, rms, b - a).astype(np.float32)
    return out


def mix_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add white noise at ``snr_db`` relative to the signal power."""
    power = float(np.mean(audio ** 2))
    if power == 0.0:
        return audio.copy()
    noise_power = power / (10.0 ** (snr_db / 10.0))
    return (audio + rng.normal(0.0, np.sqrt(noise_power), audio.shape)).astype(np.float32)


__all__ = ["SAMPLE_RATE", "load_audio", "save_audio", "resample", "duration_of", "crop", "mask_spans", "mix_noise"]
