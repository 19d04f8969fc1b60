"""``run_demo``: the stages in order, the listening gate before GRPO, the base model's provenance."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .. import __version__
from ..data.qa.common import SEEDED_RNG_KEY
from .config import FAMILY, DemoConfig
from .results import _base_had_sta, _check_line, _load, assemble_results, print_summary
from .stages import ModelRow, Stage, StageRunner
from .steps import (
    _check_base_seed,
    _file_digest,
    _max_tokens,
    adopt_base,
    build_base,
    eval_limit,
    evaluate,
    evaluate_timestamps,
    listening_check,
    make_corpus,
    measure_attention,
    measure_attention_same_text,
    measure_behaviours,
    measure_citation_following,
    train_grpo,
    train_sft,
    train_sta,
)

# ================================================================ the pipeline

# The GRPO arms (key, label, reward preset of tgsr.train.config.ABLATIONS, start policy). Against
# "tgsr", "answer_only" removes R_tg alone (same grounded prompt and start); "grounding_f1"
# replaces compaction by a verified grounding reward; "no_grounding" is the paper's w/o-grounding
# arm (plain prompt, answer reward). The paper's "w/o compaction" is not an arm here: when every
# answer cites at most one span (as here), C(k) = C_max for both, and it is the paper's run again.
GRPO_ARMS = (("tgsr", "TGSR: GRPO (answer + compaction)", "paper", "sft_grounded"),
             ("grpo_grounding_f1", "GRPO answer + verified grounding (F1)", "grounding_f1", "sft_grounded"),
             ("grpo_answer_only", "GRPO answer only, grounded prompt (w/o R_tg)", "answer_only", "sft_grounded"),
             ("grpo_no_grounding", "GRPO w/o grounding", "no_grounding", "sft_plain"))

def default_threads(own_load: float = 0.0) -> int:
    """Two threads on an idle 2-core machine; one when other jobs keep the cores busy
    (oversubscribed threads make each step several times slower, measured). ``own_load`` is
    this process's share of the load average (the threads its last stage ran), which is not
    another job: without it the demo's own stages would count as one and hold it at one thread."""
    cores = os.cpu_count() or 1
    try:
        busy = max(0.0, os.getloadavg()[0] - own_load)
    except OSError:
        busy = 0.0
    return max(1, min(2, cores, int(cores - busy + 0.5)))


def _echo(msg: str) -> None:
    print(msg, flush=True)


def run_demo(cfg: DemoConfig, out: Path, *, threads: int | None = None, grpo_anyway: bool = False,
             base_model: str | Path | None = None, base_only: bool = False) -> dict:
    """Run (or resume) every stage, write ``OUT/results.json`` and ``OUT/report.html``."""
    import torch

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_threads = threads or default_threads()
    torch.set_num_threads(n_threads)

    def adapt_threads() -> None:  # other jobs come and go: re-decide before each stage
        torch.set_num_threads(default_threads(own_load=torch.get_num_threads()))

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    t_start = time.perf_counter()
    cfg.check_recipes()  # a bad recipe fails now, not after the stages before it have trained
    runner = StageRunner(out, total=None, echo=_echo, before_stage=None if threads else adapt_threads)
    common = {"seed": cfg.seed}

    # 1-2. corpus and base model
    corpus = runner.run("corpus", {**common, "n_train": cfg.n_train_clips, "n_test": cfg.n_test_clips,
                                   "first_test_clip": cfg.first_test_clip,
                                   "families": list(cfg.families), "max_turns": cfg.max_turns,
                                   "max_seconds": cfg.max_seconds},
                        lambda d: make_corpus(cfg, d), title="synthesise the corpus")
    if base_model is not None:
        _check_base_seed(Path(base_model), cfg.seed)
        digest = _file_digest(Path(base_model) / "model.safetensors") if (Path(base_model) / "model.safetensors"
                                                                           ).exists() else "missing"
        base = runner.run("base", {"adopted": digest}, lambda d: adopt_base(d, Path(base_model)),
                          title=f"base model: adopt {base_model}")
    else:
        base = runner.run("base", {**common, "size": cfg.model_size, "hop": cfg.hop_length,
                                   "recipe": cfg.recipe_settings("base"),
                                   **({"with_sta": True} if cfg.base_with_sta else {})},
                          lambda d: build_base(cfg, d, corpus), corpus,
                          title="base model: listening by direct answers" + (" and turn timestamps"
                                                                             if cfg.base_with_sta else ""))
    if base_only:
        return make_base_provenance(cfg, runner, corpus, base, common)

    # 3. Stage 1 gives pi_0; both reasoning SFTs start from it, with the same recipe and steps
    sta = runner.run("sta", {**common, "recipe": cfg.recipe_settings("sta"),
                             **({"replay": cfg.sta_replay} if cfg.sta_replay != 1 else {})},
                     lambda d: train_sta(cfg, d, base, corpus), base, corpus, title="Stage 1: STA (turn level): pi_0")
    sft_plain = runner.run("sft-plain", {**common, "recipe": cfg.recipe_settings("sft")},
                           lambda d: train_sft(cfg, d, sta, corpus, "rationale_plain", "cot"), sta, corpus,
                           title="reasoning SFT without timestamps (from pi_0)")
    sft_grounded = runner.run("sft-grounded", {**common, "recipe": cfg.recipe_settings("sft")},
                              lambda d: train_sft(cfg, d, sta, corpus, "rationale", "grounded"), sta, corpus,
                              title="grounded reasoning SFT (from pi_0)")

    rows = [
        ModelRow("base", "Base (direct answers)", base, "direct", "tiny Omni + supervised direct answers"
                 + (" and turn-level timestamps (ordinal referents)" if _base_had_sta(cfg, base) else "")),
        ModelRow("only_sta", "Only STA (pi_0)", sta, "direct", "base -> STA"),
        ModelRow("sft_plain", "Reasoning SFT w/o timestamps", sft_plain, "cot", "pi_0 -> SFT(plain rationales)"),
        ModelRow("sft_grounded", "Grounded SFT (GRPO start)", sft_grounded, "grounded",
                 "pi_0 -> SFT(grounded rationales)"),
    ]

    def run_evals(row: ModelRow, conditions=("own", "swapped", "silence"), split: str = "test") -> None:
        for cond in conditions:
            name = cond if split == "test" else f"{split}-{cond}"
            if name in row.evals:
                continue
            items = eval_limit(cfg, cond, split)
            row.evals[name] = runner.run(
                f"eval-{row.key}-{name}", {**common, "prompt": row.prompt, "items": items, "split": split,
                                           "max_new_tokens": _max_tokens(cfg, row.prompt)},
                lambda d, row=row, cond=cond: evaluate(cfg, d, row.stage, corpus, row.prompt, cond, split),
                row.stage, corpus, resumable=True, title=f"evaluate {row.label} [{split}, {cond} audio]")

    # 4a. the listening gate on every policy GRPO would start from, on the validation split
    checks = {}
    for row in rows[2:]:
        run_evals(row, ("own", "swapped"), split="validation")
        checks[row.key] = listening_check(row.evals["validation-own"], row.evals["validation-swapped"], cfg.alpha)
        _echo(f"listening gate (validation) for {row.label}: " + _check_line(checks[row.key]))

    # 5. Stage 2: the paper's reward and the arms that take one part of it away, all with the KL
    # term to pi_0 (the paper's reference), each from the SFT policy of its prompt style; with
    # cfg.grpo_seeds > 1 each arm is trained again with the next seeds (rows in seed_rows)
    seed_rows: list[tuple[ModelRow, int, str]] = []   # (row, training seed, start policy key)
    for key, label, ablation, start_key in GRPO_ARMS:
        start = {"sft_grounded": sft_grounded, "sft_plain": sft_plain}[start_key]
        recipe = f"{dict((r.key, r.recipe) for r in rows)[start_key]} -> GRPO({ablation}), KL to pi_0"
        prompt = "cot" if start_key == "sft_plain" else "grounded"
        if not checks[start_key]["passed"] and not grpo_anyway:
            rows.append(ModelRow(key, label, None, prompt, recipe,
                                 skipped=f"not trained: its start policy ({start_key}) failed the listening gate"))
            continue
        for i in range(cfg.grpo_seeds):
            seed = cfg.seed + i
            stage = runner.run(f"grpo-{key}" + (f"-seed{seed}" if i else ""),
                               {**common, "recipe": cfg.recipe_settings("grpo"), "ablation": ablation,
                                "reference": "pi_0", **({"training_seed": seed} if i else {})},
                               lambda d, start=start, ablation=ablation, seed=seed: train_grpo(
                                   cfg, d, start, sta, corpus, ablation, seed=seed),
                               start, sta, corpus, title=f"Stage 2: {label}" + (f" (seed {seed})" if i else ""))
            row = ModelRow(key if not i else f"{key}-seed{seed}", label, stage, prompt, recipe)
            if not i:
                rows.append(row)   # the first seed's run is the arm's row in every table
            seed_rows.append((row, seed, start_key))

    # 4b. every model, every listening condition; the other seeds' GRPO runs with their own audio
    for row in rows:
        if row.stage is not None:
            run_evals(row)
    for row, _, _ in seed_rows:
        run_evals(row, ("own",))

    # citation following (does the answer read its citation?): the GRPO start on the validation
    # split (the gate), then every grounded model on the test's control items, before and after GRPO
    citation = {}

    def follow(row: ModelRow, split: str, label: str) -> None:
        citation[(row.key, split)] = (label, runner.run(
            f"citation-{row.key}-{split}",
            {**common, "items": eval_limit(cfg, "control", split), "item_draw": SEEDED_RNG_KEY},
            lambda d, row=row: measure_citation_following(cfg, d, row.stage, corpus, split), row.stage, corpus,
            resumable=True, title=f"citation following: {label} [{split}]"))

    start_row = next(r for r in rows if r.key == "sft_grounded")
    follow(start_row, "validation", start_row.label)
    follow(start_row, "test", start_row.label)
    for row, seed, start_key in seed_rows:
        if start_key == "sft_grounded":
            follow(row, "test", row.label + (f" (seed {seed})" if cfg.grpo_seeds > 1 else ""))

    # Table 1: timestamps before and after STA
    base_label = ("Base (before Stage 1; its pretraining included turn timestamps)" if _base_had_sta(cfg, base)
                  else "Base (before STA)")
    ts_models = [("base", base_label, base), ("only_sta", "Only STA (after STA)", sta)]
    ts_models += [(r.key, r.label, r.stage) for r in rows if r.key == "tgsr" and r.stage is not None]
    timestamps = {}
    for key, label, stage in ts_models:
        timestamps[key] = (label, runner.run(f"timestamps-{key}", {**common, "items": cfg.timestamp_items},
                                             lambda d, stage=stage: evaluate_timestamps(cfg, d, stage, corpus),
                                             stage, corpus, resumable=True, title=f"timestamps: {label}"))

    # Tables 3 and 4: behaviours and audio attention, on the completions that were scored
    behaviours, attention, attention_same_text = {}, {}, {}
    for row in rows:
        if "own" not in row.evals:
            continue
        attention_same_text[row.key] = runner.run(
            f"attention-same-text-{row.key}", {**common, "items": cfg.attention_items},
            lambda d, row=row: measure_attention_same_text(cfg, d, row.stage, corpus), row.stage, corpus,
            resumable=True, title=f"attention on the reference rationales: {row.label}")
        own = row.evals["own"]
        behaviours[row.key] = runner.run(f"behaviours-{row.key}", common,
                                         lambda d, own=own: measure_behaviours(d, own), own, resumable=True,
                                         title=f"behaviours: {row.label}")
        attention[row.key] = runner.run(f"attention-{row.key}", {**common, "items": cfg.attention_items},
                                        lambda d, row=row, own=own: measure_attention(cfg, d, row.stage, own),
                                        row.stage, own, resumable=True, title=f"attention: {row.label}")

    wall = time.perf_counter() - t_start
    threads_note = str(threads) if threads else f"{n_threads} at the start, re-decided before each stage"
    results = assemble_results(cfg, out, corpus, base, rows, checks, timestamps, behaviours, attention,
                               attention_same_text, seed_rows, citation, runner, wall, threads_note, grpo_anyway)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    from ..report import write_report

    path = write_report(out, results)
    print_summary(results)
    _echo(f"report: {path}  (wall time {wall / 60:.1f} min; regenerate with `tgsr report {out}`)")
    return results


def make_base_provenance(cfg: DemoConfig, runner: StageRunner, corpus: Stage, base: Stage, common: dict,
                         made_by: str | None = None) -> dict:
    """``--base-only``: check that the base listens and write ``PROVENANCE.json`` beside its weights."""
    import platform
    import sys

    row = ModelRow("base", "Base (direct answers)", base, "direct", "base")
    evals = {cond: runner.run(f"eval-base-validation-{cond}",
                              {**common, "prompt": "direct", "items": cfg.validation_items, "split": "validation",
                               "max_new_tokens": _max_tokens(cfg, "direct")},
                              lambda d, cond=cond: evaluate(cfg, d, base, corpus, "direct", cond, "validation"),
                              base, corpus, resumable=True, title=f"evaluate {row.label} [validation, {cond} audio]")
             for cond in ("own", "swapped")}
    check = listening_check(evals["own"], evals["swapped"], cfg.alpha)
    _echo("listening check of the base model: " + _check_line(check))
    prov = {
        "made_by": made_by or ("tgsr demo --base-only " + " ".join(sys.argv[sys.argv.index("--base-only") + 1:])
                               if "--base-only" in sys.argv else "tgsr.demo.run_demo(base_only=True)"),
        "tgsr_version": __version__, "corpus_seed": cfg.seed, "train_clips": cfg.n_train_clips,
        "test_clips": cfg.n_test_clips, "families": list(cfg.families), "max_turns": cfg.max_turns,
        "max_seconds": cfg.max_seconds, "model": {"family": FAMILY, "size": cfg.model_size, "hop": cfg.hop_length,
                                                   "parameters": base.summary.get("parameters")},
        "training": {**_supervised_summary(cfg, "base"), "recipe": cfg.recipe_settings("base"),
                     "target": "Final answer: (x) <choice>", "prompt": "direct",
                     "with_turn_sta": cfg.base_with_sta,
                     "seconds": base.seconds, "threads": torch_threads()},
        "listening_check": check, "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                              "load_average_1min": _load()},
    }
    (base.model / "PROVENANCE.json").write_text(json.dumps(prov, indent=2) + "\n", encoding="utf-8")
    _echo(f"base model: {base.model} (provenance in PROVENANCE.json)")
    return prov


def _supervised_summary(cfg: DemoConfig, stage: str) -> dict:
    """Steps, batch, learning rate and warm-up of a supervised stage, as they run."""
    t = cfg.trainer_settings(stage)
    return {"steps": t.max_steps, "batch_size": t.per_device_train_batch_size, "lr": t.learning_rate,
            "warmup_steps": t.warmup_steps}


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


