"""``tgsr data import | align | sta | align-report``: Stage-1 data from real speech; ``tgsr data qa``: Stage 2;
``tgsr data merge``: one training file from several corpora."""

from __future__ import annotations

import argparse
import sys

from ..runlog import locks_output

BACKENDS = ("whisper-timestamped", "faster-whisper", "pocketsphinx")


def register(tree) -> None:
    data = tree.group("data", "Build training data: synthetic corpora, real-speech alignment, STA examples.")

    p = data.command("import", "Read a corpus in its native layout and write a manifest of clips to align.",
                     locks_output()(_cmd_import))
    p.add_argument("corpus", choices=("librispeech", "meld", "covost2", "manifest"))
    p.add_argument("--root", required=True, help="corpus folder (for 'manifest': a .jsonl/.csv file or a folder)")
    p.add_argument("--out", required=True, help="manifest.jsonl to write")
    p.add_argument("--errors", help="errors file (default: <out>.errors.jsonl)")
    p.add_argument("--no-check-audio", action="store_true",
                   help="do not open audio headers (faster on slow disks; align reports bad files later)")
    p.add_argument("--splits", help="meld: only these splits, comma-separated (train,dev keeps the test split, "
                                    "tgsr's benchmark, out of training data); clips only from split-named folders")

    p = data.command("align", "Word-level timestamps for every clip of a manifest (resumable, parallel).",
                     locks_output()(_cmd_align))
    p.add_argument("--manifest", required=True, help="manifest.jsonl from 'tgsr data import'")
    p.add_argument("--backend", required=True, choices=BACKENDS, help="aligner (see docs/data-preparation.md)")
    p.add_argument("--model", help="Whisper: a .pt file, a faster-whisper folder, or a name (tiny.en, base offline); "
                                   "pocketsphinx: an acoustic model folder (default: bundled en-us)")
    p.add_argument("--out", required=True, help="words.jsonl to write (appended to when resuming)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (each loads its own model; default 1)")
    p.add_argument("--errors", help="errors file (default: <out>.errors.jsonl)")
    p.add_argument("--retry-failed", action="store_true", help="retry clips listed in the errors file")
    p.add_argument("--vad", choices=("auto", "on", "off"), default="auto",
                   help="Whisper backends: cut clips into speech chunks with silero-vad (auto: clips > 30 s)")
    p.add_argument("--language", help="Whisper backends: language code (default: en)")
    p.add_argument("--beam-size", type=int,
                   help="Whisper backends: beam size (default: greedy for whisper-timestamped, 5 for faster-whisper)")
    p.add_argument("--limit", type=int, help="stop after this many clips (trial runs)")

    p = data.command("sta", "Sample phrases with their time spans: Stage-1 STA examples.", locks_output()(_cmd_sta))
    p.add_argument("--words", required=True, help="words.jsonl from 'tgsr data align' or 'tgsr data synth'")
    p.add_argument("--out", required=True, help="sta.jsonl to write")
    p.add_argument("--errors", help="errors file: malformed lines, repeated clip ids (default: <out>.errors.jsonl)")
    p.add_argument("--phrase-len", default="3-12", help="phrase length in words, MIN-MAX (default 3-12)")
    p.add_argument("--per-clip", type=int, default=4, help="phrases per clip (default 4)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed, combined with each clip id (default 0)")
    p.add_argument("--max-pause", type=float, default=1.0,
                   help="a pause longer than this (s) ends a phrase (default 1.0)")
    p.add_argument("--min-confidence", type=float, default=0.4,
                   help="drop words whose aligner confidence is below this (default 0.4)")

    p = data.command("qa", "Stage-2 multiple-choice questions (qa.jsonl) from MELD, CoTA or any manifest.",
                     locks_output()(_cmd_qa))
    p.add_argument("source", choices=("meld", "cota", "manifest"))
    p.add_argument("--root", required=True, help="meld: the MELD folder (CSVs + MELD.Raw clips); cota: a "
                   ".json/.jsonl/.parquet file or folder; manifest: a .jsonl/.csv file or folder")
    p.add_argument("--out", required=True, help="qa.jsonl to write")
    p.add_argument("--errors", help="errors file (default: <out>.errors.jsonl)")
    p.add_argument("--words", help="meld, manifest: words.jsonl from 'tgsr data align', for grounded rationales")
    p.add_argument("--split", default="train", help="meld: train or dev (test is refused: it is the benchmark)")
    p.add_argument("--kinds", default="emotion,sentiment,dialogue",
                   help="meld: question kinds, comma-separated (default: emotion,sentiment,dialogue)")
    p.add_argument("--max-seconds", type=float, default=30.0, help="meld: longest dialogue part in seconds (30)")
    p.add_argument("--gap", type=float, default=0.3, help="meld: silence between concatenated utterances (0.3 s)")
    p.add_argument("--seed", type=int, default=0, help="meld: seed of the letter schedule and question forms (0)")
    p.add_argument("--audio-root", help="cota: folder that relative audio paths are under (default: the file's)")

    p = data.command("merge", "Merge record files of one kind (one per corpus) into one training file.",
                     locks_output()(_cmd_merge))
    p.add_argument("inputs", nargs="+", help="files to merge, in order (the first of a repeated id is kept)")
    p.add_argument("--kind", required=True, choices=("qa", "sta", "words", "manifest"))
    p.add_argument("--out", required=True, help="merged file to write")
    p.add_argument("--errors", help="errors file (default: <out>.errors.jsonl)")

    p = data.command("align-report", "Word-boundary error of aligned words against reference timings.",
                     _cmd_report)
    p.add_argument("--words", required=True, help="words.jsonl to check")
    p.add_argument("--reference", required=True, help="words.jsonl with reference timings (same clip_ids)")


def _cmd_import(args: argparse.Namespace) -> int:
    from ..data.importers import run_importer, write_import
    from ..errors import TgsrError

    options = {}
    if args.splits:
        if args.corpus != "meld":
            raise TgsrError("--splits is for meld only")
        options["splits"] = tuple(s.strip() for s in args.splits.split(",") if s.strip())
    try:
        result = run_importer(args.corpus, args.root, check_audio=not args.no_check_audio, **options)
    except ValueError as e:
        raise TgsrError(str(e)) from None
    errors_path = write_import(result, args.out, args.errors)
    print(f"{args.corpus}: {len(result.items)} clips -> {args.out}; {len(result.errors)} problems -> {errors_path}")
    # Show the first problems here too, so a wrong --root is obvious without opening the file.
    for err in result.errors[:5]:
        where = ":".join(str(x) for x in (err.get("path"), err.get("line")) if x is not None)
        clip = f" (clip {err['clip']})" if err.get("clip") else ""
        print(f"problem: {where}{clip}: {err['reason']}", file=sys.stderr)
    if len(result.errors) > 5:
        print(f"... and {len(result.errors) - 5} more in {errors_path}", file=sys.stderr)
    if result.converted:
        kinds = sorted({f"{c['sample_rate']} Hz x{c['channels']}" for c in result.converted})
        print(f"note: {len(result.converted)} clip(s) are not 16 kHz mono ({', '.join(kinds)}); "
              f"they are converted to 16 kHz mono when read")
    return 0 if result.items or not result.errors else 1


def _cmd_align(args: argparse.Namespace) -> int:
    from ..data.pipeline import align_manifest

    options: dict = {}
    if args.backend != "pocketsphinx":
        options["vad"] = {"auto": "auto", "on": True, "off": False}[args.vad]
        if args.language:
            options["language"] = args.language
        if args.beam_size:
            options["beam_size"] = args.beam_size
    summary = align_manifest(args.manifest, args.out, backend=args.backend, model=args.model,
                             workers=args.workers, errors_path=args.errors, retry_failed=args.retry_failed,
                             options=options, progress=sys.stderr.isatty(), limit=args.limit)
    print(summary.line())
    if summary.failed:
        top = ", ".join(f"{k} ({v})" for k, v in sorted(summary.reasons.items(), key=lambda kv: -kv[1])[:3])
        print(f"failures are listed in {summary.errors_path}: {top}")
    return 0


def _cmd_sta(args: argparse.Namespace) -> int:
    from ..data.sta import StaOptions, build_sta, parse_phrase_len
    from ..errors import TgsrError

    try:
        lo, hi = parse_phrase_len(args.phrase_len)
    except ValueError as e:
        raise TgsrError(str(e)) from None
    opts = StaOptions(min_words=lo, max_words=hi, per_clip=args.per_clip, max_pause=args.max_pause,
                      min_confidence=args.min_confidence, seed=args.seed)
    summary, errors = build_sta(args.words, args.out, opts, errors_path=args.errors)
    for err in errors[:5]:
        print(f"skipped: {err}", file=sys.stderr)
    print(f"{summary.examples} STA examples from {summary.clips} clips -> {args.out} "
          f"({summary.clips_without_phrase} clips had no usable phrase, "
          f"{summary.words_dropped_low_confidence} low-confidence words dropped, "
          f"{summary.bad_records} malformed lines and {summary.duplicates} repeated clip ids skipped; "
          f"problems -> {summary.errors_path})")
    return 0


def _cmd_qa(args: argparse.Namespace) -> int:
    from ..errors import TgsrError

    if args.source == "meld":
        from ..data.qa.meld import MeldOptions, build_meld_qa

        kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
        opts = MeldOptions(split=args.split, kinds=kinds, max_seconds=args.max_seconds, gap=args.gap, seed=args.seed)
        summary = build_meld_qa(args.root, args.out, opts, words=args.words, errors_path=args.errors,
                                progress=sys.stderr.isatty())
    elif args.source == "cota":
        from ..data.qa.cota import build_cota_qa

        summary = build_cota_qa(args.root, args.out, audio_root=args.audio_root, errors_path=args.errors)
    else:
        from ..data.qa.manifest import build_manifest_qa

        summary = build_manifest_qa(args.root, args.out, words=args.words, errors_path=args.errors)
    print(summary.line())
    print(summary.letter_line())
    if summary.problems:
        top = ", ".join(f"{k} ({v})" for k, v in summary.reasons.most_common(3))
        print(f"problems are listed in {summary.errors_path}: {top}", file=sys.stderr)
    if not summary.questions:
        raise TgsrError(f"no question was written to {args.out}; see {summary.errors_path}")
    return 0


def _cmd_merge(args: argparse.Namespace) -> int:
    from ..data.merge import merge_records
    from ..errors import TgsrError

    summary = merge_records(args.inputs, args.out, args.kind, errors_path=args.errors)
    print(summary.line())
    if not summary.records:
        raise TgsrError(f"nothing was written to {args.out}; see {summary.errors_path}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from ..data.align.evaluate import BoundaryReport
    from ..errors import TgsrError
    from ..records import ClipWords, read_jsonl

    loaded = read_jsonl(args.words, ClipWords, on_error="skip")
    for err in loaded.errors[:5]:  # skipped lines are named, not silently counted as missing clips
        print(f"skipped: {err}", file=sys.stderr)
    if len(loaded.errors) > 5:
        print(f"... and {len(loaded.errors) - 5} more malformed lines in {args.words}", file=sys.stderr)
    hyp = {c.clip_id: c for c in loaded.records}
    ref = {c.clip_id: c for c in read_jsonl(args.reference, ClipWords)}
    if ref and not set(ref) & set(hyp):
        raise TgsrError(f"no clip of {args.reference} is in {args.words}: the files share no clip_id")
    report = BoundaryReport()
    missing = 0
    for clip_id, r in ref.items():
        h = hyp.get(clip_id)
        if h is None:
            missing += 1
            report.ref_words += len(r.words)
            continue
        report.add(h.words, r.words)
    d = report.as_dict()
    print(f"clips: {len(ref)} in the reference, {missing} missing from {args.words}")
    if not d["matched"]:
        print(f"words matched: 0/{d['ref_words']}; no boundary error to report")
        return 0
    print(f"words matched: {d['matched']}/{d['ref_words']}; mean abs boundary error {d['mean_abs_ms']} ms "
          f"(median {d['median_abs_ms']} ms, {100 * d['within_50ms']:.0f}% within 50 ms)")
    return 0
