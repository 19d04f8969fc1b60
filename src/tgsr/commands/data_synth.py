"""``tgsr data synth``: build the synthetic spoken-dialogue corpus."""

from __future__ import annotations

import argparse

from ..runlog import locks_output


def _names(value: str) -> list[str]:
    names = [x.strip() for x in value.split(",") if x.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one engine, e.g. espeak or espeak,festival,piper")
    return names


def _range(value: str) -> tuple[int, int]:
    try:
        parts = [int(x) for x in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or MIN,MAX, got {value!r}") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected N or MIN,MAX, got {value!r}")
    return parts[0], parts[1]


def register(tree) -> None:
    p = tree.group("data", "Build and prepare data: synthetic corpus, alignment, STA targets.").command(
        "synth", "Synthesize spoken dialogues with exact word timings, STA targets and multiple-choice questions.",
        handler=locks_output(folder=True)(run))
    p.add_argument("--out", required=True, help="output folder (DIR/train, DIR/test, DIR/manifest.json)")
    p.add_argument("--n-train", type=int, default=200, help="training clips (default 200)")
    p.add_argument("--n-test", type=int, default=50, help="test clips (default 50)")
    p.add_argument("--seed", type=int, default=0, help="the same seed and options give byte-identical output")
    p.add_argument("--engines", type=_names, default=["espeak"],
                   help="comma-separated TTS engines: espeak (bundled), festival, piper; 'auto' = all installed")
    p.add_argument("--noise-snr", type=float, default=None, help="add white noise at this SNR in dB")
    p.add_argument("--vocab-size", type=int, default=None,
                   help="content words in the lexicon (8-64; small lexicons make lexical tasks learnable)")
    p.add_argument("--families", type=_names, default=None,
                   help="comma-separated question families (default: all); see docs/synthetic-corpus.md")
    p.add_argument("--phrases-per-clip", type=int, default=3, help="phrase-level STA examples per clip")
    p.add_argument("--phrase-words", type=_range, default=(2, 4), help="phrase length in words: N or MIN,MAX")
    p.add_argument("--turns-per-clip", type=int, default=2, help="turn-level STA examples per clip")
    p.add_argument("--max-turns", type=int, default=8, help="most turns in a dialogue (default 8)")
    p.add_argument("--max-seconds", type=float, default=30.0, help="longest clip in seconds (default 30)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    import time

    from ..data.synth import synthesize
    from ..data.tts import available_engines

    engines = available_engines() if args.engines == ["auto"] else args.engines
    t0 = time.perf_counter()
    s = synthesize(args.out, args.n_train, args.n_test, args.seed, engines=engines, noise_snr=args.noise_snr,
                   vocab_size=args.vocab_size, families=args.families, phrases_per_clip=args.phrases_per_clip,
                   phrase_words=args.phrase_words, turns_per_clip=args.turns_per_clip,
                   max_turns=args.max_turns, max_seconds=args.max_seconds, progress=not args.no_progress)
    wall = time.perf_counter() - t0
    audio = sum(s.audio_seconds.values())
    for split in s.clips:
        fail = f", {s.failures[split]} failed (see {split}/failures.jsonl)" if s.failures.get(split) else ""
        print(f"{split}: {s.clips[split]} clips ({s.audio_seconds[split] / 60:.1f} min of audio), "
              f"{s.qa[split]} questions, {s.sta[split]} STA examples{fail}")
    tb = s.text_baseline
    if tb:
        print(f"text-only baseline (most frequent answer text given the question, fit on train): "
              f"{tb['accuracy']:.3f} on {tb['n']} test questions, chance {tb['chance']:.3f}")
    print(f"wrote {args.out} with {'+'.join(engines)} in {wall:.1f} s ({audio / max(wall, 1e-9):.0f}x real time)")
    return 1 if sum(s.failures.values()) and not sum(s.clips.values()) else 0
