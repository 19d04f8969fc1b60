"""The lab's single-tone diagnostic, rerunnable: can the tiny model read a pitch at all?

One tone per clip and nothing else, so the answer needs no locating: "What is the pitch of the
tone?" with the lab's four pitches (``tgsr.data.lab.PITCHES_HZ``) as options in natural order,
the answer line alone as the target (``prompt_style: direct``). The clips are the tone lab's
(``tgsr.data.lab_tones``): ``CLIP_SECONDS`` long, one tone ``EVENT_SECONDS`` long at a random
time at least ``EDGE_SECONDS`` from the edges, level +-``LEVEL_JITTER_DB``, flat or decaying;
training tones are sines and validation tones triangle-like (the held-out timbre). Every pitch
is asked equally often in each split. Steps:

1. the clips and ``ROOT/{train,validation}/qa.jsonl``;
2. ``tgsr model tiny`` (or ``--init``), ``tgsr train sft`` with ``recipes/tiny-cpu/sft.yaml``
   (lr 2e-3, batch 16, cosine, 50 warm-up steps) for ``--steps``;
3. ``tgsr eval run`` on validation with the own and the swapped audio, ``tgsr analyze contrast``.

The model it writes (``ROOT/pitch``) is a warm start for reading at a pointer
(``benchmarks/lab_pilot.py --read-at-init ROOT/pitch``). Usage:

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/lab_single_tone.py --root runs/single-tone [--steps 2000]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lab_pilot import answer_counts, contrast, evaluate, run, train  # noqa: E402
from tgsr.audio import save_audio  # noqa: E402
from tgsr.data.dialogue import SAMPLE_RATE  # noqa: E402
from tgsr.data.lab import ENVELOPES, LEVEL_JITTER_DB, PITCH_NAMES, PITCHES_HZ, SOURCE, beep_audio  # noqa: E402
from tgsr.data.lab_tones import CLIP_SECONDS, EDGE_SECONDS, EVENT_SECONDS, SPLIT_TIMBRES  # noqa: E402
from tgsr.prompts import final_answer_line  # noqa: E402
from tgsr.records import LETTERS, QAExample, write_jsonl  # noqa: E402

QUESTION = "What is the pitch of the tone?"
_SPLIT_STREAM = {"train": 0, "validation": 1}


def make_split(root: Path, split: str, n: int, seed: int) -> Path:
    """``n`` single-tone clips of ``split`` and their questions (pitch i of clip k is k mod 4,
    so the four answers are balanced); kept when already written."""
    qa_path = root / split / "qa.jsonl"
    if qa_path.is_file():
        return qa_path
    (root / split / "audio").mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(n):
        rng = np.random.default_rng([seed, 23, _SPLIT_STREAM[split], k])
        pitch_i = k % len(PITCHES_HZ)
        seconds = float(rng.uniform(*EVENT_SECONDS))
        start = float(rng.uniform(EDGE_SECONDS, CLIP_SECONDS - EDGE_SECONDS - seconds))
        tone = beep_audio(PITCHES_HZ[pitch_i], seconds, float(rng.uniform(-LEVEL_JITTER_DB, LEVEL_JITTER_DB)),
                          ENVELOPES[int(rng.integers(len(ENVELOPES)))], SPLIT_TIMBRES[split][0])
        audio = np.zeros(int(round(CLIP_SECONDS * SAMPLE_RATE)), np.float32)
        a = int(round(start * SAMPLE_RATE))
        audio[a:a + tone.size] = tone
        path = root / split / "audio" / f"single-{split}-{k:05d}.wav"
        save_audio(path, np.clip(audio, -1.0, 1.0))
        choices = list(PITCH_NAMES)
        letter = LETTERS[pitch_i]
        line = final_answer_line(letter, choices)
        rows.append(QAExample(id=f"single-{split}-{k:05d}", audio=str(path), question=QUESTION, choices=choices,
                              answer=letter, answer_text=PITCH_NAMES[pitch_i], duration=CLIP_SECONDS,
                              evidence=[(round(start, 2), round(start + seconds, 2))], task="single_tone",
                              category="lab", source=SOURCE, split=split, rationale=line, rationale_plain=line,
                              meta={"pitch_hz": PITCHES_HZ[pitch_i], "timbre": SPLIT_TIMBRES[split][0]}))
    write_jsonl(qa_path, rows)
    return qa_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("runs/single-tone"))
    ap.add_argument("--train", type=int, default=2000, help="training clips (sines)")
    ap.add_argument("--validation", type=int, default=300, help="validation clips (triangle-like, held out)")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--init", type=Path, default=None, help="start model (default: a new tiny Omni, size s, hop 320)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    root = args.root
    train_qa = make_split(root, "train", args.train, args.seed)
    val_qa = make_split(root, "validation", args.validation, args.seed)
    init = args.init or root / "init"
    if args.init is None and not (init / "config.json").is_file():
        run("model", "tiny", "--family", "qwen2.5-omni", "--size", "s", "--out", init, "--hop-length", 320)
    pitch = root / "pitch"
    train("sft", pitch, [f"tgsr.model={init}", f"tgsr.train_file={train_qa}", "tgsr.target=rationale_plain",
                         "tgsr.prompt_style=direct", f"max_steps={args.steps}"])
    figures = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    for cond in ("own", "swapped"):
        out = root / "eval" / f"pitch-{cond}"
        figures[cond] = evaluate(pitch, out, "synthetic", val_qa, cond, "--prompt", "direct",
                                 "--max-new-tokens", 24)["accuracy"]
        figures[f"{cond}_answers"] = answer_counts(out)
    figures["contrast"] = contrast(root / "eval" / "pitch-own", root / "eval" / "pitch-swapped",
                                   root / "eval" / "pitch-contrast.json")
    (root / "single_tone.json").write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in figures.items() if k != "settings"}, indent=1))


if __name__ == "__main__":
    main()
