"""Word-boundary accuracy and speed of each aligner backend.

References:
  (a) synthetic speech with exact word timings: a small corpus from ``tgsr.data.synth``
      (espeak-ng dialogues; word times come from the synthesizer itself);
  (b) real speech: the 5 LibriVox clips (Sense and Sensibility, 24.7 s) with word alignments
      in the pocketsphinx 5.1.1 source distribution, fetched once with
      ``pip download --no-deps --no-binary pocketsphinx pocketsphinx==5.1.1`` into the tgsr
      cache. Those reference alignments were produced by pocketsphinx itself, so the
      pocketsphinx row on real speech measures agreement with its own earlier output.

Reports, per backend: words matched / reference words, mean and median absolute boundary
error (start and end), and speed as x real time (audio seconds / alignment seconds, model
load excluded), with speed relative to pocketsphinx measured in the same run.
Goals: pocketsphinx <= 30 ms on synthetic speech, Whisper backends <= 150 ms.

    python benchmarks/bench_align.py [--clips 3] [--models tiny.en,base] [--backends ...]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

from tgsr.audio import load_audio
from tgsr.data.align import get_aligner
from tgsr.data.align.base import _cache_dir
from tgsr.data.align.evaluate import BoundaryReport
from tgsr.records import ClipWords, Word, read_jsonl

GOALS_MS = {"pocketsphinx": 30.0, "faster-whisper": 150.0, "whisper-timestamped": 150.0}


def synthetic_clips(n: int, seed: int) -> list[tuple[str, np.ndarray, str, list[Word]]]:
    from tgsr.data.synth import synthesize

    out = Path(tempfile.mkdtemp(prefix="tgsr-bench-align-"))
    synthesize(out, n_train=0, n_test=n, seed=seed, progress=False)
    clips = []
    for c in read_jsonl(out / "test" / "words.jsonl", ClipWords).records:
        clips.append((c.clip_id, load_audio(c.audio), " ".join(w.text for w in c.words), c.words))
    return clips


def librivox_dir() -> Path:
    root = _cache_dir() / "pocketsphinx-5.1.1" / "test" / "data" / "librivox"
    if root.is_dir():
        return root
    dl = _cache_dir()
    dl.mkdir(parents=True, exist_ok=True)
    tar = dl / "pocketsphinx-5.1.1.tar.gz"
    if not tar.exists():
        print("fetching the pocketsphinx 5.1.1 source distribution (LibriVox reference clips) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", "pocketsphinx",
                        "pocketsphinx==5.1.1", "-d", str(dl)], check=True)
    with tarfile.open(tar) as tf:
        members = [m for m in tf.getmembers() if "/test/data/librivox/" in m.name]
        tf.extractall(dl, members=members, filter="data")
    return root


def real_clips() -> list[tuple[str, np.ndarray, str, list[Word]]]:
    root = librivox_dir()
    clips = []
    for name in (root / "fileids").read_text().split():
        ref = json.loads((root / f"{name}.json").read_text())
        words = [Word(text=re.sub(r"\(\d+\)$", "", w["t"]), start=w["b"], end=round(w["b"] + w["d"], 3))
                 for w in ref["w"] if not w["t"].startswith(("<", "["))]
        clips.append((name, load_audio(root / f"{name}.wav"), (root / f"{name}.txt").read_text().strip(), words))
    return clips


def run_backend(backend: str, model: str | None, sets: dict) -> dict:
    t0 = time.perf_counter()
    aligner = get_aligner(backend, model) if backend != "pocketsphinx" else get_aligner(backend)
    load_s = time.perf_counter() - t0
    row = {"backend": backend, "model": model or "en-us", "load_s": load_s}
    audio_s = align_s = 0.0
    for set_name, clips in sets.items():
        report, failed = BoundaryReport(), 0
        for _, audio, text, ref in clips:
            t = time.perf_counter()
            try:
                hyp = aligner.align(audio, text)
            except Exception as e:  # a failed clip counts all its words as unmatched
                print(f"  {backend}: {set_name} clip failed: {e}", file=sys.stderr)
                hyp, failed = [], failed + 1
            align_s += time.perf_counter() - t
            audio_s += len(audio) / 16000
            report.add(hyp, ref)
        row[set_name] = dict(report.as_dict(), failed_clips=failed)
    row["xrt"] = audio_s / align_s if align_s else float("nan")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=3, help="synthetic dialogues (~25 s each)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default="tiny.en", help="comma-separated Whisper models: tiny.en (default), base")
    ap.add_argument("--backends", default="pocketsphinx,faster-whisper,whisper-timestamped")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    try:
        import torch

        torch.set_num_threads(1)  # like faster-whisper (cpu_threads=1): one core per backend
    except ImportError:
        pass

    sets = {"synthetic": synthetic_clips(args.clips, args.seed), "real": real_clips()}
    for name, clips in sets.items():
        print(f"{name}: {len(clips)} clips, {sum(len(c[1]) for c in clips) / 16000:.1f} s, "
              f"{sum(len(c[3]) for c in clips)} reference words")
    rows = []
    for backend in args.backends.split(","):
        models = [None] if backend == "pocketsphinx" else args.models.split(",")
        for model in models:
            rows.append(run_backend(backend, model, sets))
            r = rows[-1]
            print(f"  done {backend} {r['model']}: {r['xrt']:.1f}x real time", file=sys.stderr)

    base_xrt = next((r["xrt"] for r in rows if r["backend"] == "pocketsphinx"), None)
    print()
    print(f"{'backend':<20} {'model':<8} {'synthetic: matched':>19} {'mean':>7} {'median':>7} "
          f"{'real: matched':>14} {'mean':>7} {'median':>7} {'x RT':>6} {'vs ps':>6}  goal (synthetic)")
    for r in rows:
        s, re_ = r["synthetic"], r["real"]
        goal = GOALS_MS[r["backend"]]
        verdict = "met" if s["mean_abs_ms"] <= goal else "missed"
        rel = f"{r['xrt'] / base_xrt:.2f}" if base_xrt else "-"
        print(f"{r['backend']:<20} {r['model']:<8} {s['matched']:>9}/{s['ref_words']:<9} {s['mean_abs_ms']:>5.0f}ms "
              f"{s['median_abs_ms']:>5.0f}ms {re_['matched']:>6}/{re_['ref_words']:<7} {re_['mean_abs_ms']:>5.0f}ms "
              f"{re_['median_abs_ms']:>5.0f}ms {r['xrt']:>6.1f} {rel:>6}  <= {goal:.0f} ms: {verdict}")
    print("(real-speech references were made by pocketsphinx; x RT excludes model loading)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
