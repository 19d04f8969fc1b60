"""The lab's curriculum learnability pilot (docs/demo.md, "The laboratory"), rerunnable.

Does Stage 1 on the lab's events (``sta.jsonl``), reading at a given span (``read_at``) and
grounded SFT make a tiny model answer the lab's questions *because of the audio*, and does its
answer follow its citation? Every step is a tgsr command, run in-process through
``tgsr.cli.main``; everything is measured on the validation split (held-out voices), never test:

1. ``tgsr data lab`` (400 training and 100 validation scenes, ``--read-at validation``);
2. ``tgsr model tiny`` (Qwen2.5-Omni, size s, hop 320);
3. (a) ``tgsr train sta`` on the lab's ``sta.jsonl`` from the random init (pi_0), then
   ``tgsr eval run --benchmark sta`` with own and swapped audio on validation ``sta.jsonl``;
4. (b) ``tgsr train sft`` on the training ``read_at`` questions alone (grounded rationale), from
   the init, then ``tgsr eval run`` on validation ``read_at.jsonl``, own and swapped;
5. (c) ``tgsr train sft`` grounded (``tgsr.target=rationale``, all six families, ``read_at``
   included) from pi_0, then ``tgsr eval run`` own and swapped on validation ``qa.jsonl`` (the
   five test families) and ``read_at.jsonl``, ``tgsr analyze contrast`` for each pair, and
   ``tgsr analyze citation-following`` (the gate) on validation ``qa.jsonl``.

Settings are the ones TINY-LEARNING found to work for tiny models on one CPU thread: the
``recipes/tiny-cpu`` recipes (lr 2e-3, batch 16, cosine, AdamW betas (0.9, 0.98), clip 1.0) with
50 warm-up steps. A finished stage is kept and skipped on a rerun; an interrupted training run
resumes from its last checkpoint and an evaluation from its last item. Usage:

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/lab_pilot.py --root runs/lab-pilot \\
        [--sta-steps 400] [--read-at-steps 250] [--sft-steps 400] [--part sta --part read_at --part sft]

``--scenes tones`` runs the same on the pure-tone scenes (``tgsr data lab --scenes tones``),
``--read-at-every-beep`` asks ``read_at`` of every tone (four rows per scene, in training and in
``validation/read_at.jsonl``), and ``--read-at-target direct`` trains (b) on the answer line alone
(direct prompt) instead of the grounded rationale; (b) also records the letters answered.
``--tone-slots JITTER`` lays the tone scenes out in slots (``tgsr data lab --tone-slots``): one
event per fifth of the clip, moved by at most JITTER seconds, the steps of a curriculum for
reading at a given time when each stage starts from the last (``--read-at-init``).
``--read-at-events 0,4`` asks (b) only of those events (in time order; the first and the last
tone), in training and on validation, and records whether each wrong answer names another tone
that could have been asked (the time misread) or none of them (the pitch misheard).

With ``--read-at-target rationale``, (b) also runs the citation-following probe on its questions
(each other tone's span teacher-forced in place of the rationale's copy of the asked one): does
the answer read at the time in the question or at the citation the model wrote?
``--read-at-cited`` adds each training row asked without its time ("What is the pitch of one of
the beeps? Say first where it sounds."), so that the pitch follows from the model's own
citation alone, and probes those questions too.

``--read-at-init MODEL`` starts (b) from MODEL instead of the random init (a warm start, e.g. the
pitch reader of ``benchmarks/lab_single_tone.py``), and ``--sft-start read_at`` starts (c) from
(b)'s model instead of pi_0 (its folders end in ``-from-read_at``).

``--sft-lr`` sets (c)'s learning rate (a warm start's skill survived the curriculum's steps at
5e-4, a quarter of the recipe's).

``--part grpo`` runs (d): ``tgsr train grpo`` (``recipes/tiny-cpu/grpo.yaml``: G = 8, temperature
0.8, beta 0.04, lr 1e-4) from (c)'s model on the training ``qa.jsonl``, once per ``--grpo-arm``
(the reward presets ``paper``, ``grounding_f1``, ``answer_only``), ``--grpo-steps`` steps, with
the KL term to the model (c) started from (pi_0, or (b)'s reader, which stands in for it;
``--grpo-reference start``: to (c)'s model, GRPO's own start, TRL's default); then
(c)'s measures on every run, and its family accuracy paired against (c)'s. With ``--seed N`` the
runs' folders end in ``-seedN``, beside seed 0's, from the same (c); ``--grpo-lr`` adds
``-lrLR``.

``--part`` runs only the named parts (default: all three, in order); two processes may run
different parts at once once (a) is trained, e.g. ``--part sft`` beside ``--part sta --part
read_at``. Prints the figures and merges them into ROOT/pilot.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from tgsr.cli import main as tgsr  # noqa: E402
from tgsr.data.lab import LabEvent, Scene, pointer_citations  # noqa: E402
from tgsr.eval.metrics import first_cited_span, iou  # noqa: E402
from tgsr.prompts import final_answer_line  # noqa: E402
from tgsr.records import LETTERS, Prediction, QAExample, read_jsonl, write_jsonl  # noqa: E402

RECIPES = Path(__file__).resolve().parent.parent / "recipes" / "tiny-cpu"
TRAINER = ["disable_tqdm=true", "logging_steps=25", "warmup_steps=50", "save_steps=100"]
EVAL = ["--batch-size", "16", "--quiet"]
PARTS = ("sta", "read_at", "sft", "mixed", "grpo")
GRPO_ARMS = ("paper", "grounding_f1", "answer_only")


def run(*argv) -> None:
    argv = [str(a) for a in argv]
    print("$ tgsr " + " ".join(argv), flush=True)
    rc = tgsr(argv)
    if rc:
        sys.exit(f"tgsr {argv[0]} {argv[1]} failed with exit status {rc}")


def train(stage: str, out: Path, overrides: list[str], seed: int) -> None:
    """``tgsr train STAGE``; a finished run (tgsr_summary.json) is kept, an interrupted one resumed."""
    if (out / "tgsr_summary.json").is_file():
        print(f"{out}: trained, kept", flush=True)
        return
    resume = ["--resume"] if any(out.glob("checkpoint-*")) else []
    run("train", stage, "--config", RECIPES / f"{stage}.yaml", *resume, f"output_dir={out}", *TRAINER, f"seed={seed}",
        *overrides)


def lr_override(lr: float | None) -> list[str]:
    """``learning_rate=LR``, or nothing to keep the recipe's."""
    return [] if lr is None else [f"learning_rate={lr}"]


def evaluate(model: Path, out: Path, benchmark: str, meta: Path, condition: str, *extra) -> dict:
    run("eval", "run", "--model", model, "--benchmark", benchmark, "--meta", meta, "--out", out,
        "--audio-condition", condition, *EVAL, *extra)
    m = json.loads((out / "metrics.json").read_text())
    return m["sta"] if benchmark == "sta" else m["tgsr"]


def contrast(a: Path, b: Path, out: Path) -> dict:
    run("analyze", "contrast", a, b, "--out", out)
    return json.loads(out.read_text())


def sta_by_phrase(run_dir: Path) -> dict:
    """Mean IoU per kind of STA phrase (burst, beep by rank, beep by pitch, turn), scored as
    ``tgsr eval`` scores STA (the first valid citation; none counts 0). The ids end in -burst,
    -beepK, -pitchK, -turnK (``tgsr.data.lab.scene_sta``)."""
    ious = defaultdict(list)
    for p in read_jsonl(run_dir / "predictions.jsonl", Prediction, resolve_audio=False).records:
        kind = p.id.rsplit("-", 1)[1].rstrip("0123456789")
        span = None if p.error else first_cited_span(p.completion)
        ious[kind].append(iou(span, tuple(p.meta["ref"])) if span else 0.0)
    return {k: {"n": len(v), "mean_iou": round(sum(v) / len(v), 3)} for k, v in sorted(ious.items())}


def answer_counts(run_dir: Path) -> dict:
    """How often each letter was answered (None: unparseable), to tell a constant answer from reading."""
    preds = read_jsonl(run_dir / "predictions.jsonl", Prediction, resolve_audio=False).records
    return dict(sorted(Counter(str(p.pred_letter) for p in preds).items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("runs/lab-pilot"))
    ap.add_argument("--train-scenes", type=int, default=400)
    ap.add_argument("--validation-scenes", type=int, default=100)
    ap.add_argument("--sta-steps", type=int, default=400)
    ap.add_argument("--read-at-steps", type=int, default=250)
    ap.add_argument("--sft-steps", type=int, default=400)
    ap.add_argument("--mixed-steps", type=int, default=2000)
    ap.add_argument("--part", action="append", choices=PARTS,
                    help="run only this part (repeatable; default sta, read_at, sft): sta (a), read_at (b), sft (c, "
                         "with the gate), mixed ((a) and (b)'s rows in one run, from --read-at-init), grpo (d, from "
                         "(c)'s model, with the gate after)")
    ap.add_argument("--scenes", choices=["speech", "tones"], default="speech",
                    help="the lab's scene kind (tgsr data lab --scenes): spoken dialogues or pure-tone clips")
    ap.add_argument("--tone-slots", type=float, default=None, metavar="JITTER",
                    help="tone scenes in the slotted layout, events moved by at most JITTER seconds "
                         "(tgsr data lab --tone-slots)")
    ap.add_argument("--read-at-events", default=None, metavar="I,J,...",
                    help="(b) asks read_at only of these events (indices in the scene's time order; with "
                         "--tone-slots, the slots), in training and on validation: e.g. 0,4, the first and the "
                         "last tone, a two-way first step of a curriculum")
    ap.add_argument("--read-at-lr", type=float, default=None,
                    help="(b)'s learning rate (default the recipe's 2e-3); lower keeps more of a warm start")
    ap.add_argument("--sft-lr", type=float, default=None,
                    help="(c)'s learning rate (default the recipe's 2e-3); the reader's curriculum kept its skill "
                         "at 5e-4")
    ap.add_argument("--read-at-every-beep", action="store_true",
                    help="read_at asked of every beep (four rows per scene, tgsr data lab --read-at-every-beep), "
                         "in training and in validation/read_at.jsonl")
    ap.add_argument("--read-at-cited", action="store_true",
                    help="(b) and (c) also train on each read_at row asked without its time (the same rationale), "
                         "so that the pitch must be read at the citation the model writes; the citation-following "
                         "probe then runs on both questions (needs --read-at-target rationale)")
    ap.add_argument("--read-at-target", choices=["rationale", "direct"], default="rationale",
                    help="(b)'s target: the grounded rationale (copy the given span, then the pitch; default) or "
                         "the answer line alone (prompt_style direct), so that every gradient is about the pitch")
    ap.add_argument("--read-at-init", type=Path, default=None, metavar="MODEL_DIR",
                    help="start (b) from this model instead of the random init, e.g. one that already reads the "
                         "pitch of a lone tone (benchmarks/lab_single_tone.py)")
    ap.add_argument("--sft-start", choices=["sta", "read_at"], default="sta",
                    help="(c)'s start model: pi_0 from (a) (default), or the model of (b), which reads at a given "
                         "span, so that the gate tests whether that skill carries over to cited spans "
                         "(written to ROOT/sft-from-read_at)")
    ap.add_argument("--grpo-arm", action="append", choices=GRPO_ARMS,
                    help="(d)'s reward preset (tgsr.ablation; repeatable; default all three): paper (answer + "
                         "compaction), grounding_f1 (answer + verified grounding), answer_only (grounded prompt)")
    ap.add_argument("--grpo-steps", type=int, default=100)
    ap.add_argument("--grpo-lr", type=float, default=None, help="(d)'s learning rate (default the recipe's 1e-4)")
    ap.add_argument("--grpo-reference", choices=["pi_0", "start"], default="pi_0",
                    help="(d)'s KL reference: the model (c) started from (default, pi_0 as in the paper, or (b)'s "
                         "reader standing in for it), or (c)'s model itself, GRPO's start (TRL's default; folders "
                         "end in -kl-start)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="the training runs' seed (data order, init of new heads)")
    args = ap.parse_args()
    if args.read_at_cited and args.read_at_target != "rationale":
        ap.error("--read-at-cited needs --read-at-target rationale: the citation is in the rationale")
    torch.set_num_threads(args.threads)
    root = args.root
    lab, init = root / "lab", root / "init"
    parts = args.part or list(PARTS[:3])
    figures: dict = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                                  if k != "part"}}

    if not (lab / "manifest.json").is_file():
        every = ["--read-at-every-beep"] if args.read_at_every_beep else []
        slots = [] if args.tone_slots is None else ["--tone-slots", args.tone_slots]
        run("data", "lab", "--out", lab, "--train", args.train_scenes, "--validation", args.validation_scenes,
            "--test", 0, "--read-at", "validation", "--scenes", args.scenes, *every, *slots, "--no-progress")
    made = json.loads((lab / "manifest.json").read_text())
    held = (made.get("scenes", "speech"), made.get("read_at_every_beep", False), made.get("tone_slot_jitter"))
    if held != (args.scenes, args.read_at_every_beep, args.tone_slots):
        sys.exit(f"{lab} holds {held[0]} scenes (read_at_every_beep {held[1]}, tone slots {held[2]}); "
                 f"use another --root for these settings")
    if not (init / "config.json").is_file():
        run("model", "tiny", "--family", "qwen2.5-omni", "--size", "s", "--out", init, "--hop-length", 320)

    sta = root / "sta"
    if "sta" in parts:
        part_sta(args, root, init, lab, sta, figures)
    if "read_at" in parts:
        part_read_at(args, root, init, lab, figures)
    if "mixed" in parts:
        part_mixed(args, root, init, lab, figures)
    if "sft" in parts:
        start = sta if args.sft_start == "sta" else root / "read_at"
        if not (start / "tgsr_summary.json").is_file():
            sys.exit(f"{start}: (c)'s start model is not trained yet; run --part {args.sft_start} first")
        part_sft(args, root, lab, start, figures)
    if "grpo" in parts:
        part_grpo(args, root, lab, figures)
    # merged at the end, so that processes running different parts keep each other's figures
    figures_file = root / "pilot.json"
    merged = json.loads(figures_file.read_text()) if figures_file.is_file() else {}
    figures_file.write_text(json.dumps(merged | figures, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in figures.items() if k != "settings"}, indent=1))


def part_sta(args, root: Path, init: Path, lab: Path, sta: Path, figures: dict) -> None:
    """(a) Stage 1 on the lab's events and turns: pi_0; its localisation, own vs swapped audio."""
    val = lab / "validation"
    train("sta", sta, [f"tgsr.model={init}", f"tgsr.train_file={lab / 'train' / 'sta.jsonl'}",
                       f"tgsr.eval_file={val / 'sta.jsonl'}", "tgsr.max_eval_samples=64",
                       f"max_steps={args.sta_steps}"], args.seed)
    figures["sta"] = {}
    for cond in ("own", "swapped"):
        out = root / "eval" / f"sta-{cond}"
        m = evaluate(sta, out, "sta", val / "sta.jsonl", cond, "--max-new-tokens", 48)
        figures["sta"][cond] = {"items": m["items"], "mean_iou": m["mean_iou"], "iou_at_0.7": m["iou_at_0.7"],
                                "no_span": m["no_span"], "by_phrase": sta_by_phrase(out)}


def asked_events(args) -> set[int] | None:
    return None if args.read_at_events is None else {int(i) for i in args.read_at_events.split(",")}


def read_at_rows(args, root: Path, lab: Path) -> Path:
    """The training split's ``read_at`` rows alone (ROOT/train_read_at.jsonl), with the answer
    line as the whole target under ``--read-at-target direct``, of ``--read-at-events`` only."""
    events = asked_events(args)
    rows = [x for x in read_jsonl(lab / "train" / "qa.jsonl", QAExample).records if x.task == "read_at"
            and (events is None or x.meta["asked_event"] in events)]
    if args.read_at_target == "direct":  # the reasoning reduced to the answer line, as the demo's base is trained
        for x in rows:
            x.rationale = x.rationale_plain = final_answer_line(x.answer, x.choices)
    if args.read_at_cited:
        rows += [cited_copy(x) for x in rows]
    only = root / "train_read_at.jsonl"
    write_jsonl(only, rows)
    return only


# the time is not in the question: only the rationale's own citation says where to read
CITED_QUESTION = "What is the pitch of one of the beeps? Say first where it sounds."


def cited_copy(x: QAExample) -> QAExample:
    """``x`` asked without its time (``--read-at-cited``): the same rationale, so the pitch follows
    from the citation the model writes, not from the question."""
    return replace(x, id=f"{x.id}-cited", question=CITED_QUESTION, meta={**x.meta, "family": "read_at_cited"})


def part_read_at(args, root: Path, init: Path, lab: Path, figures: dict) -> None:
    """(b) Reading at a given span, alone, from the init: the pitch of the beep from X to Y."""
    val = lab / "validation"
    direct = args.read_at_target == "direct"
    only = read_at_rows(args, root, lab)
    read_at = root / "read_at"
    style = "direct" if direct else "grounded"
    start = args.read_at_init or init
    train("sft", read_at, [f"tgsr.model={start}", f"tgsr.train_file={only}",
                           f"tgsr.target={'rationale_plain' if direct else 'rationale'}",
                           f"tgsr.prompt_style={style}", f"max_steps={args.read_at_steps}",
                           *lr_override(args.read_at_lr)], args.seed)
    figures["read_at_alone"] = {"target": args.read_at_target, "start": str(start), "lr": args.read_at_lr,
                                "rows": len(read_jsonl(only, QAExample).records)}
    events = asked_events(args)
    questions = val / "read_at.jsonl"
    if events is not None:  # beside the full file, so that its relative audio paths still resolve
        kept = [x for x in read_jsonl(questions, QAExample).records if x.meta["asked_event"] in events]
        questions = val / f"read_at-events-{'-'.join(map(str, sorted(events)))}.jsonl"
        write_jsonl(questions, kept)
    for cond in ("own", "swapped"):
        m = evaluate(read_at, root / "eval" / f"read_at-alone-{cond}", "synthetic", questions, cond,
                     "--prompt", style, "--max-new-tokens", 24 if direct else 48)
        figures["read_at_alone"][cond] = m["accuracy"]
        figures["read_at_alone"][f"{cond}_answers"] = answer_counts(root / "eval" / f"read_at-alone-{cond}")
    if events is not None and len(events) > 1:
        figures["read_at_alone"]["own_outcomes"] = pointer_outcomes(root / "eval" / "read_at-alone-own",
                                                                    questions, events)
    figures["read_at_alone"]["contrast"] = contrast(root / "eval" / "read_at-alone-own",
                                                    root / "eval" / "read_at-alone-swapped",
                                                    root / "eval" / "read_at-alone-contrast.json")
    if not direct:  # the rationale repeats the asked span: which of the two times does the answer read?
        asked = [("", questions)]
        if args.read_at_cited:
            cited = questions.with_name(questions.stem + "-cited.jsonl")
            write_jsonl(cited, [cited_copy(x) for x in read_jsonl(questions, QAExample).records])
            asked.append(("-cited", cited))
        for tag, path in asked:
            cf = root / f"citation-read_at{tag}"
            figures["read_at_alone"][f"citation_following{tag}"] = follow(read_at, read_at_probes(path), cf, 48)


def follow(model: Path, questions: Path, out: Path, max_new_tokens: int, *more) -> dict:
    """``tgsr analyze citation-following`` of ``model`` on ``questions`` (resumed in ``out``): its
    headline figures, and the summary's keys ``more``."""
    run("analyze", "citation-following", "--model", model, "--data", questions, "--out", out,
        "--batch-size", 16, "--max-new-tokens", max_new_tokens, "--quiet")
    summary = json.loads((out / "citation_following.json").read_text())
    return {k: summary[k] for k in ("n_items", "n_probed", "n_skipped", "follow_rate", "follow_chance",
                                    "follow_pvalue", "stays_gold_rate", "accuracy_own", "accuracy_gold_citation",
                                    *more)}


def read_at_probes(questions: Path) -> Path:
    """``questions`` with the lab's pointer and counterfactual citations in ``meta`` (a lab made
    before ``read_at`` had them gets them here, from ``tgsr.data.lab.pointer_citations``), beside
    it. The probe then teacher-forces another tone's span after a question that names the asked
    one: following it means the answer reads at the model's own citation; staying with the gold
    answer, at the question's time."""
    rows = read_jsonl(questions, QAExample).records
    for x in rows:
        if "counterfactuals" not in x.meta:
            scene = Scene(clip_id=x.id, split=x.split, audio=x.audio, duration=x.duration, turns=[],
                          events=[LabEvent(**e) for e in x.meta["scene"]["events"]], kind=x.meta["scene_kind"])
            x.meta.update(pointer_citations(scene, x.task, x.meta, x.answer_text, x.evidence))
    out = questions.with_name(questions.stem + "-probes.jsonl")
    write_jsonl(out, rows)
    return out


def pointer_outcomes(run_dir: Path, questions: Path, events: set[int]) -> dict:
    """Own-audio answers by what they name: the asked tone's pitch, the pitch of another tone
    that could have been asked (the time was misread), or neither (the pitch was misheard)."""
    items = {x.id: x for x in read_jsonl(questions, QAExample).records}
    out = Counter()
    for p in read_jsonl(run_dir / "predictions.jsonl", Prediction).records:
        item = items[p.id]
        scene = [LabEvent(**e) for e in item.meta["scene"]["events"]]
        # options are in natural order, so a tone's letter is its pitch rank
        others = {LETTERS[scene[i].pitch_index] for i in events
                  if scene[i].kind == "beep" and i != item.meta["asked_event"]}
        out["asked" if p.correct else "another asked tone" if p.pred_letter in others else "neither"] += 1
    return dict(out)


def part_mixed(args, root: Path, init: Path, lab: Path, figures: dict) -> None:
    """Both directions of the pointer in one run: Stage 1's rows (phrase -> time) and ``read_at``
    (time -> pitch) shuffled together, from ``--read-at-init`` (or the init), with (a)'s recipe;
    then (a)'s and (b)'s evaluations on validation, own against swapped audio."""
    from tgsr.train.config import load_config
    from tgsr.train.datasets import sta_and_sft_rows
    from tgsr.train.supervised import run_supervised

    val, out = lab / "validation", root / "mixed"
    direct = args.read_at_target == "direct"
    style = "direct" if direct else "grounded"
    only = read_at_rows(args, root, lab)
    start = args.read_at_init or init
    if not (out / "tgsr_summary.json").is_file():
        trainer_args, tgsr_args = load_config("sta", RECIPES / "sta.yaml", [
            *TRAINER, f"seed={args.seed}", f"output_dir={out}", f"tgsr.model={start}",
            f"tgsr.train_file={lab / 'train' / 'sta.jsonl'}",
            f"tgsr.eval_file={val / 'sta.jsonl'}", f"max_steps={args.mixed_steps}"])

        def rows(path, limit):
            return sta_and_sft_rows(path, str(only), "rationale_plain" if direct else "rationale", style, limit)

        print(f"$ mixed training from {start}: {lab / 'train' / 'sta.jsonl'} + {only}", flush=True)
        run_supervised("sta", trainer_args, tgsr_args, rows, resume=any(out.glob("checkpoint-*")))
    block = figures["mixed"] = {"start": str(start), "steps": args.mixed_steps, "read_at_target": args.read_at_target}
    for cond in ("own", "swapped"):
        m = evaluate(out, root / "eval" / f"mixed-read_at-{cond}", "synthetic", val / "read_at.jsonl", cond,
                     "--prompt", style, "--max-new-tokens", 24 if direct else 48)
        block[f"read_at_{cond}"] = m["accuracy"]
        block[f"read_at_{cond}_answers"] = answer_counts(root / "eval" / f"mixed-read_at-{cond}")
        sta_out = root / "eval" / f"mixed-sta-{cond}"
        m = evaluate(out, sta_out, "sta", val / "sta.jsonl", cond, "--max-new-tokens", 48)
        block[f"sta_{cond}"] = {"mean_iou": m["mean_iou"], "iou_at_0.7": m["iou_at_0.7"], "no_span": m["no_span"],
                                "items": m["items"], "by_phrase": sta_by_phrase(sta_out)}
    block["read_at_contrast"] = contrast(root / "eval" / "mixed-read_at-own", root / "eval" / "mixed-read_at-swapped",
                                         root / "eval" / "mixed-read_at-contrast.json")


def part_sft(args, root: Path, lab: Path, start: Path, figures: dict) -> None:
    """(c) Grounded SFT from pi_0 (or from (b)) on all six families: accuracy own vs swapped, the gate."""
    val = lab / "validation"
    tag = "" if args.sft_start == "sta" else "-from-read_at"
    sft = root / f"sft{tag}"
    rows = lab / "train" / "qa.jsonl"
    if args.read_at_cited:  # (b)'s questions without their time stay in the mix beside the families
        qa = read_jsonl(rows, QAExample).records
        rows = root / "train_sft.jsonl"
        write_jsonl(rows, qa + [cited_copy(x) for x in qa if x.task == "read_at"])
    train("sft", sft, [f"tgsr.model={start}", f"tgsr.train_file={rows}", "tgsr.target=rationale",
                       "tgsr.prompt_style=grounded", f"max_steps={args.sft_steps}",
                       *lr_override(args.sft_lr)], args.seed)
    measure_grounded(sft, f"sft{tag}", f"citation{tag}", root, val, figures)


def measure_grounded(model: Path, name: str, probe_dir: str, root: Path, val: Path, figures: dict) -> None:
    """A grounded model on validation: the families and read_at, own against swapped audio
    (figures NAME_qa, NAME_read_at), and the citation-following gate on the families (probes in
    ROOT/PROBE_DIR; figures citation_following / citation_gate with PROBE_DIR's suffix)."""
    for family, meta in (("qa", val / "qa.jsonl"), ("read_at", val / "read_at.jsonl")):
        block = figures[f"{name}_{family}"] = {}
        for cond in ("own", "swapped"):
            m = evaluate(model, root / "eval" / f"{name}-{family}-{cond}", "synthetic", meta, cond,
                         "--prompt", "grounded", "--max-new-tokens", 96)
            block[cond] = {"accuracy": m["accuracy"], "items": m["items"], "unparseable": m["unparseable"],
                           "by_task": {t: v["accuracy"] for t, v in m["by"]["task"].items()}}
        block["contrast"] = contrast(root / "eval" / f"{name}-{family}-own",
                                     root / "eval" / f"{name}-{family}-swapped",
                                     root / "eval" / f"{name}-{family}-contrast.json")
    cf = root / probe_dir
    suffix = probe_dir.removeprefix("citation")
    figures[f"citation_following{suffix}"] = follow(model, val / "qa.jsonl", cf, 96, "n_failed", "gold_gain",
                                                    "gold_vs_own", "per_task")
    figures[f"citation_gate{suffix}"] = json.loads((cf / "citation_gate.json").read_text())
    timeless = val / "read_at-cited-probes.jsonl"  # written by (b) with --read-at-cited
    if timeless.is_file():  # does the answer still read at the model's own citation when no time is asked?
        cf = root / f"{probe_dir}-read_at-cited"
        figures[f"citation_following{suffix}-read_at-cited"] = follow(model, timeless, cf, 48)


def part_grpo(args, root: Path, lab: Path, figures: dict) -> None:
    """(d) GRPO from (c)'s model on the training questions (the families and read_at), one run per
    reward preset, the KL term to the model (c) started from (pi_0, or (b)'s reader standing in
    for it); then the same measures as (c), and each run's accuracy paired against (c)'s."""
    tag = "" if args.sft_start == "sta" else "-from-read_at"
    start, sft = (root / "sta" if args.sft_start == "sta" else root / "read_at"), root / f"sft{tag}"
    for model in (start, sft):
        if not (model / "tgsr_summary.json").is_file():
            sys.exit(f"{model}: (d) needs (c) and its start trained first (--part sft)")
    if not (root / "eval" / f"sft{tag}-qa-own" / "metrics.json").is_file():
        sys.exit(f"{sft}: (d) pairs its runs against (c)'s evaluation; run --part sft first")
    val = lab / "validation"
    for arm in args.grpo_arm or GRPO_ARMS:
        reference = start if args.grpo_reference == "pi_0" else sft
        name = (f"grpo-{arm}{tag}" + ("-kl-start" if args.grpo_reference == "start" else "")
                + (f"-lr{args.grpo_lr:g}" if args.grpo_lr else "") + (f"-seed{args.seed}" if args.seed else ""))
        model = root / name
        train("grpo", model, [f"tgsr.model={sft}", f"tgsr.ref_model={reference}",
                              f"tgsr.train_file={lab / 'train' / 'qa.jsonl'}", f"tgsr.ablation={arm}",
                              f"max_steps={args.grpo_steps}", "logging_steps=1", "save_steps=25",
                              *lr_override(args.grpo_lr)], args.seed)
        figures[f"{name}_training"] = {"arm": arm, "start": str(sft), "reference": str(reference),
                                       "steps": args.grpo_steps, "lr": args.grpo_lr, "rewards": reward_means(model)}
        measure_grounded(model, name, f"citation-{name}", root, val, figures)
        figures[f"{name}_qa"]["against_start"] = contrast(root / "eval" / f"{name}-qa-own",
                                                          root / "eval" / f"sft{tag}-qa-own",
                                                          root / "eval" / f"{name}-qa-against-start.json")


def reward_means(run_dir: Path) -> dict:
    """Each logged reward (the total and every reward function's) averaged over the first and
    the last tenth of a GRPO run's steps, from its last checkpoint's log history."""
    states = sorted(run_dir.glob("checkpoint-*/trainer_state.json"), key=lambda f: int(f.parent.name.split("-")[1]))
    logs = [e for e in json.loads(states[-1].read_text())["log_history"] if "reward" in e] if states else []
    keys = [k for k in (logs[0] if logs else {}) if k == "reward" or (k.startswith("rewards/") and k.endswith("/mean"))]
    tenth = max(1, len(logs) // 10)
    return {k: {"first": round(sum(e[k] for e in logs[:tenth]) / tenth, 4),
                "last": round(sum(e[k] for e in logs[-tenth:]) / tenth, 4)} for k in keys} | {"logged_steps": len(logs)}


if __name__ == "__main__":
    main()
