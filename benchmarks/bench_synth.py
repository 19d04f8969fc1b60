"""Speed of the synthetic-corpus generator (``tgsr data synth``).

Prints, on this machine:
1. espeak-ng generation speed in x real time (seconds of audio per second of wall time), for
   the two ways tgsr drives libespeak-ng: a fresh library instance per utterance (what a single
   ``synthesize`` call does) and one instance per clip (``engine.batch()``, what the corpus
   uses); festival and piper too when they are installed. Ratios are against the per-utterance
   espeak figure measured in the same run.
2. the wall time of ``tgsr data synth --out DIR --n-train 200 --n-test 50`` (goal: < 1 minute).

Usage: python benchmarks/bench_synth.py [--utterances 120] [--n-train 200] [--n-test 50]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def sentences(n: int, seed: int = 0) -> list[str]:
    from tgsr.data.lexicon import INTENTS, ITEMS, PLACES, SCENARIOS

    rng = np.random.default_rng(seed)
    pool = [t for ts in INTENTS.values() for t in ts] + [x for r in SCENARIOS.values() for lines in r for x in lines]
    out = []
    for _ in range(n):
        t = pool[int(rng.integers(len(pool)))]
        out.append(t.format(item=ITEMS[int(rng.integers(len(ITEMS)))], place=PLACES[int(rng.integers(len(PLACES)))]))
    return out


def engine_speed(name: str, texts: list[str], batched: bool) -> tuple[float, float] | None:
    """(audio seconds, wall seconds) for speaking ``texts`` with a spread of voices."""
    from contextlib import nullcontext

    from tgsr.data.tts import EngineUnavailable, get_engine
    from tgsr.data.voices import engine_configs

    try:
        engine = get_engine(name)
    except EngineUnavailable as e:
        print(f"  {name}: skipped ({e})")
        return None
    configs = engine_configs(engine)
    engine.synthesize("Warm up.", configs[0].voice)  # load models outside the timing
    audio_s = 0.0
    t0 = time.perf_counter()
    with (engine.batch() if batched and hasattr(engine, "batch") else nullcontext()):
        for i, text in enumerate(texts):
            audio, _ = engine.synthesize(text, configs[(i * 37) % len(configs)].voice)
            audio_s += audio.size / 16_000
    return audio_s, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--utterances", type=int, default=120)
    ap.add_argument("--n-train", type=int, default=200)
    ap.add_argument("--n-test", type=int, default=50)
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} (other jobs slow the figures)")

    texts = sentences(args.utterances)
    print(f"\n1. TTS speed on {len(texts)} sentences (x real time; higher is faster)")
    rows = [("espeak, fresh library per utterance", "espeak", False), ("espeak, one library per clip", "espeak", True),
            ("festival", "festival", False), ("piper (joe)", "piper", False)]
    base = None
    for label, name, batched in rows:
        n = len(texts) if name == "espeak" else max(10, len(texts) // 6)
        r = engine_speed(name, texts[:n], batched)
        if r is None:
            continue
        audio_s, wall = r
        speed = audio_s / wall
        base = base or speed
        print(f"  {label:40s} {speed:7.0f}x real time  ({audio_s:6.1f} s of audio in {wall:5.2f} s, "
              f"{speed / base:4.2f}x the first row)")

    print(f"\n2. tgsr data synth --n-train {args.n_train} --n-test {args.n_test} (espeak)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "corpus"
        cmd = [sys.executable, "-m", "tgsr", "data", "synth", "--out", str(out), "--n-train", str(args.n_train),
               "--n-test", str(args.n_test), "--no-progress"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stderr)
            return 1
        for line in proc.stdout.strip().splitlines():
            print("  " + line)
        print(f"  wall time including interpreter start-up: {wall:.1f} s (goal < 60 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
