"""``tgsr data lab``: build the demo's laboratory corpus (``tgsr.data.lab``) and check it."""

from __future__ import annotations

import argparse

from ..runlog import locks_output


def register(tree) -> None:
    p = tree.group("data", "Build and prepare data: synthetic corpus, alignment, STA targets.").command(
        "lab", "Synthesize the lab corpus: spoken dialogues (or, with --scenes tones, silence) with beeps and a "
               "noise burst between the turns, questions about the pitch at located evidence (see docs/demo.md, "
               "'The laboratory').",
        handler=locks_output(folder=True)(run))
    p.add_argument("--out", required=True, help="output folder (DIR/<split>/qa.jsonl, scenes.jsonl, audio/)")
    p.add_argument("--train", type=int, default=200, help="training scenes (default 200)")
    p.add_argument("--validation", type=int, default=50, help="validation scenes, held-out voices (default 50)")
    p.add_argument("--test", type=int, default=100, help="test scenes, other held-out voices (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-turns", type=int, default=3, help="most turns in a dialogue (default 3)")
    p.add_argument("--probe", choices=["validation", "test"],
                   help="also fit the bag-of-frames probe and the text-only baseline on train and score them on "
                        "this split (writes DIR/probe.json)")
    p.add_argument("--read-at", choices=["validation", "test"], action="append", default=[],
                   help="also write SPLIT/read_at.jsonl: one 'pitch of the beep from X to Y' question per scene of "
                        "this held-out split, to measure reading at a given span (repeatable)")
    p.add_argument("--scenes", choices=["speech", "tones"], default="speech",
                   help="speech: spoken dialogues with the events between the turns (default); tones: 6 s clips "
                        "of the events alone, held-out timbres instead of voices (tgsr.data.lab_tones)")
    p.add_argument("--read-at-every-beep", action="store_true",
                   help="ask read_at of every beep of a scene (four rows per scene) instead of one random beep, "
                        "in train/qa.jsonl and in the --read-at files")
    p.add_argument("--tone-slots", type=float, default=None, metavar="JITTER",
                   help="tone scenes only: one event per fifth of the clip, centred and moved by at most JITTER "
                        "seconds, so that a written time names a slot (a curriculum for reading at a given time)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    import json
    import time
    from pathlib import Path

    from ..data.lab import make_lab
    from ..errors import TgsrError
    from ..records import QAExample, read_jsonl

    t0 = time.perf_counter()
    (Path(args.out) / "probe.json").unlink(missing_ok=True)  # never leave a check of an older corpus
    sizes = {"train": args.train, "validation": args.validation, "test": args.test}
    s = make_lab(args.out, sizes, args.seed, max_turns=args.max_turns, read_at_splits=tuple(args.read_at),
                 scenes=args.scenes, read_at_every_beep=args.read_at_every_beep,
                 tone_slot_jitter=args.tone_slots, progress=not args.no_progress)
    for split in s.clips:
        fail = f", {s.failures[split]} failed (see {split}/failures.jsonl)" if s.failures.get(split) else ""
        read_at = s.manifest["splits"][split].get("read_at_questions")
        extra = f" (+{read_at} read_at questions in {split}/read_at.jsonl)" if read_at is not None else ""
        print(f"{split}: {s.clips[split]} scenes, {s.qa[split]} questions{extra}{fail}")
    tb = s.text_baseline
    if tb:
        print(f"text-only baseline (fit on train): {tb['accuracy']:.3f} on {tb['n']} test questions, "
              f"chance {tb['chance']:.3f}")
    if args.probe:
        from ..data.frame_probe import bag_of_frames_probe
        from ..data.text_baseline import text_only_baseline

        train = read_jsonl(Path(args.out) / "train" / "qa.jsonl", QAExample).records
        held = read_jsonl(Path(args.out) / args.probe / "qa.jsonl", QAExample).records
        if not train or not held:
            raise TgsrError(f"--probe {args.probe} needs training and {args.probe} questions")
        out = {"split": args.probe, "text_only": text_only_baseline(train, held).to_dict()}
        for feature in ("clip", "evidence"):
            out[feature] = bag_of_frames_probe(train, held, feature).to_dict()
        (Path(args.out) / "probe.json").write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
        for name, label in (("text_only", "text-only baseline"), ("clip", "bag-of-frames probe, clip log-mel"),
                            ("evidence", "control: the probe on log-mel at the evidence")):
            r = out[name]
            print(f"{label}: {r['accuracy']:.3f} on {r['n']} {args.probe} questions, chance {r['chance']:.3f}")
    print(f"wrote {args.out} in {time.perf_counter() - t0:.1f} s")
    return 1 if sum(s.failures.values()) and not sum(s.clips.values()) else 0
