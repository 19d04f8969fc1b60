"""A toy corpus for training tests: the answer depends on the audio, and it is learnable in seconds.

Clips are 3 s of faint noise. STA clips (every other index) carry a loud 440 Hz tone, 0.6-1.2 s
long, starting in the first 1.6 s; QA clips are a steady tone, high (2-3 kHz) or low (200-300 Hz).
Files (``sta``/``qa`` in ``records`` format):

- ``train/sta.jsonl``, ``test/sta.jsonl``: "where is the tone?" (STA) with the tone's exact span;
- ``train/qa.jsonl``, ``test/qa.jsonl``: "Is the tone high or low?" (a) high / (b) low;
- ``train/format_qa.jsonl``: the same questions with the bare answer line as the rationale and
  a gold letter that is right only 80% of the time. SFT on it gives a policy with the answer
  format that listens but hedges (P(correct) about 0.8); GRPO with the true answers then
  raises the reward by relying on the audio more.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

SR = 16_000
DURATION = 3.0
TONE_PHRASE = "the tone"



def _clip(rng: np.random.Generator, with_tone: bool) -> tuple[np.ndarray, tuple[float, float] | None]:
    audio = (rng.standard_normal(int(SR * DURATION)) * 0.005).astype(np.float32)
    if not with_tone:
        return audio, None
    start = round(float(rng.uniform(0.1, 1.6)), 2)
    end = round(start + float(rng.uniform(0.6, 1.2)), 2)
    t = np.arange(int(SR * (end - start))) / SR
    i0 = int(start * SR)
    audio[i0:i0 + t.size] += (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return audio, (start, end)


def _pitch_clip(rng: np.random.Generator, high: bool) -> np.ndarray:
    t = np.arange(int(SR * DURATION)) / SR
    freq = float(rng.uniform(2000, 3000)) if high else float(rng.uniform(200, 300))
    audio = 0.3 * np.sin(2 * np.pi * freq * t) + rng.standard_normal(t.size) * 0.005
    return audio.astype(np.float32)


def write_toy_corpus(out: Path, n_train: int = 48, n_test: int = 16, seed: int = 0,
                     format_correct: float = 0.8) -> Path:
    from tgsr.audio import save_audio

    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        d = out / split
        (d / "audio").mkdir(parents=True, exist_ok=True)
        sta, qa, fmt = [], [], []
        for i in range(n):
            with_tone = i % 2 == 0
            audio, span = _clip(rng, with_tone)
            rel = f"audio/{split}_{i:03d}.wav"
            save_audio(d / rel, audio)
            cid = f"{split}-{i:03d}"
            if span is not None:
                sta.append({"id": f"sta-{cid}", "audio": rel, "phrase": TONE_PHRASE, "start": span[0],
                            "end": span[1], "duration": DURATION, "clip_id": cid})
            high = bool(rng.integers(0, 2))
            qrel = f"audio/{split}_pitch_{i:03d}.wav"
            save_audio(d / qrel, _pitch_clip(rng, high))
            answer = "a" if high else "b"
            base = {"audio": qrel, "question": "Is the tone high or low?", "choices": ["high", "low"],
                    "duration": DURATION, "evidence": [[0.0, DURATION]], "task": "pitch", "category": "acoustic",
                    "rationale": f"From 0.00s to {DURATION:.2f}s the tone is {'high' if high else 'low'}.",
                    "rationale_plain": f"The tone is {'high' if high else 'low'}."}
            qa.append({"id": f"qa-{cid}", "answer": answer, **base})
            guess = answer if rng.random() < format_correct else "ab"[answer == "a"]
            fmt.append({"id": f"fmt-{cid}", "answer": guess,
                        **{**base, "rationale_plain": f"Final answer: ({guess}) {base['choices']['ab'.index(guess)]}"}})
        for name, rows in (("sta", sta), ("qa", qa), ("format_qa", fmt)):
            with open(d / f"{name}.jsonl", "w") as fh:
                for r in rows:
                    fh.write(json.dumps(r) + "\n")
    return out


@pytest.fixture(scope="session")
def toy_corpus(tmp_path_factory) -> Path:
    return write_toy_corpus(tmp_path_factory.mktemp("toy-corpus"))


@pytest.fixture(scope="session")
def warm_pitch_model(tiny_omni_dir, toy_corpus, tmp_path_factory) -> Path:
    """Tiny Omni after 60 SFT steps on ``format_qa``: has the answer format, listens, hedges."""
    from tgsr.train.config import load_config
    from tgsr.train.sft import run_sft

    out = tmp_path_factory.mktemp("warm-pitch")
    args, tg = load_config("sft", None, [], extra={
        "tgsr.model": str(tiny_omni_dir), "tgsr.train_file": str(toy_corpus / "train" / "format_qa.jsonl"),
        "tgsr.target": "rationale_plain", "tgsr.prompt_style": "direct", "output_dir": str(out),
        "learning_rate": 5e-3, "max_steps": 60, "per_device_train_batch_size": 8, "warmup_steps": 3,
        "adam_beta2": 0.98, "save_strategy": "no", "seed": 0, "disable_tqdm": True})
    run_sft(args, tg)
    return out


@pytest.fixture
def accelerate_cli() -> str:
    """The ``accelerate`` launcher beside this interpreter (or on PATH); skips the test without one."""
    import shutil
    import sys

    found = Path(sys.executable).with_name("accelerate")
    launcher = str(found) if found.exists() else shutil.which("accelerate")
    if not launcher:
        pytest.skip("accelerate CLI not found")
    return launcher
