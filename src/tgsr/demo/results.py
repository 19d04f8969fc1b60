"""The demo's results: tables, curves and example traces for ``results.json`` and the report."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .. import __version__
from .config import FAMILY, DemoConfig
from .stages import ModelRow, Stage, StageRunner
from .tables import (
    AccuracyRow,
    AttentionRow,
    BehaviourRow,
    CitationFollowingRow,
    CitationRow,
    ContrastRow,
    ListeningCheckRow,
    SeedRow,
    StageRow,
    Table,
    TaskAccuracyRow,
    TimestampRow,
    paired_fields,
)

# ================================================================ results and report

def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _check_line(c: dict) -> str:
    verdict = "PASSED" if c["passed"] else "FAILED"
    return (f"{verdict}: own {c['accuracy_own']:.3f} vs chance {c['chance']:.3f} (p={c['p_above_chance']:.3g}) "
            f"and vs swapped {c['accuracy_swapped']:.3f} (p={c['p_above_swapped']:.3g}), n={c['n']}")



SHORT_LABELS = {"base": "base", "only_sta": "only STA", "sft_plain": "SFT plain", "sft_grounded": "grounded SFT",
                "tgsr": "TGSR", "grpo_grounding_f1": "grounding F1", "grpo_answer_only": "w/o R_tg",
                "grpo_no_grounding": "w/o grounding"}

# The paired contrasts the demo reports (A, B, what A - B measures), on the own-audio test runs.
CONTRASTS = (("tgsr", "sft_grounded", "GRPO: TGSR against its start policy"),
             ("tgsr", "grpo_answer_only", "R_tg: answer + compaction against the answer reward alone"),
             ("grpo_grounding_f1", "tgsr", "verified grounding (F1) against compaction"),
             ("tgsr", "grpo_no_grounding", "grounding: grounded against plain GRPO"),
             ("sft_grounded", "sft_plain", "grounded against plain reasoning SFT, both from pi_0"),
             ("only_sta", "base", "Stage 1: after STA against the base (direct answers)"))

DESIGN_NOTES = [
    "Scale: a ~1.5 M-parameter model of the Qwen2.5-Omni thinker architecture, random init, trained for minutes on "
    "one CPU process; G = 4 samples per prompt (paper: 8); learning rates sized for the tiny model. beta = 0.04 and "
    "temperature 0.8 are the paper's.",
    "Questions that turn timing alone answers (which turn is the longest; in which time range the second speaker "
    "starts; when the n-th speaker starts) and turn-level STA with turns named by speaker ordinal ('the second "
    "speaker's turn'): word recognition, voice identity and counting voices stayed at their text priors at this "
    "scale (measured); whether turn-level listening was learned is what the listening check below measures.",
    "Options are listed in natural order (two < three < four, earlier < later, voices low to high), so the answer "
    "depends on hearing, not on binding a shuffled letter to its text, which the tiny model does not learn in minutes.",
    "The base model (the pretrained-LALM analogue: a model that already hears when people talk) is supervised on "
    "direct answers (the shipped one on nothing else: it never saw a timestamp before Stage 1; --base-with-sta adds "
    "turn-level timestamps); see its provenance in the setting. Stage 1 "
    "(STA) replays the base task in its batches, since the tiny model otherwise forgets how to answer.",
    "Rationales are cut to their first claim and the answer line (~40 tokens); a short SFT on them gives the "
    "grounded (and the plain) reasoning format that an instruction-tuned LALM would follow zero-shot.",
    "Both reasoning SFTs start from pi_0 (the STA model) with the same recipe and steps; every GRPO arm keeps its KL "
    "term to pi_0, as the paper does.",
    "GRPO starts only from a policy that passes the listening gate (above chance and above swapped audio) on a "
    "validation split (unseen dialogues of the held-out voices), never on the test items.",
]

def _acc(stage: Stage | None) -> float | None:
    if stage is None:
        return None
    return stage.summary["tgsr"]["accuracy"]


def _read_log(stage: Stage) -> list[dict]:
    path = stage.dir / "log_history.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _series(log: list[dict], key: str) -> dict:
    pts = [(h["step"], h[key]) for h in log if key in h and isinstance(h[key], (int, float))]
    return {"x": [p[0] for p in pts], "y": [p[1] for p in pts]}


def _reward_keys(log: list[dict]) -> tuple[str | None, str | None]:
    """TRL's names for the total reward and the answer reward's mean in the logs."""
    keys = {k for h in log for k in h}
    total = "reward" if "reward" in keys else None
    answer = next((k for k in sorted(keys) if k.startswith("rewards/") and "answer" in k and k.endswith("/mean")),
                  None)
    return total, answer


def _citations_of(stage: Stage) -> dict:
    """Citations per completion and their best IoU with the gold evidence, from the predictions."""
    from ..eval.run import read_predictions
    from ..spans import distinct_spans, find_spans

    preds, _ = read_predictions(stage.dir / "predictions.jsonl")
    return {p.id: {"n": len([s for s in find_spans(p.completion or "") if s.valid]),
                   "distinct": len(distinct_spans(p.completion or ""))} for p in preds}


def _text_baseline(corpus_dir: Path, limit: int) -> dict:
    """The text-only check (``tgsr.data.text_baseline``) on exactly the evaluated questions."""
    from ..data.text_baseline import text_only_baseline
    from ..records import QAExample, read_jsonl

    train = read_jsonl(corpus_dir / "train" / "qa_ordered.jsonl", QAExample).records
    test = read_jsonl(corpus_dir / "test" / "qa_ordered.jsonl", QAExample).records[:limit]
    return text_only_baseline(train, test).to_dict() if test else {}


def _example_traces(cfg: DemoConfig, out: Path, corpus: Stage, rows: list[ModelRow]) -> list[dict]:
    """Reasoning traces of the same test items by the vanilla and the grounded models.

    Items are chosen by a fixed rule, not by outcome: the first test item of each of the
    first ``cfg.examples`` question families, in test-file order."""
    from ..eval.run import read_predictions
    from ..records import QAExample, read_jsonl

    grounded = "tgsr" if any(r.key == "tgsr" and "own" in r.evals for r in rows) else "sft_grounded"
    shown = [r for r in rows if r.key in ("base", "sft_plain", grounded) and "own" in r.evals]
    if not shown:
        return []
    qa = read_jsonl(corpus.dir / "test" / "qa_ordered.jsonl", QAExample).records[: cfg.eval_items]
    picked, seen = [], set()
    for ex in qa:
        if ex.task not in seen:
            seen.add(ex.task)
            picked.append(ex)
        if len(picked) == cfg.examples:
            break
    preds = {r.key: {p.id: p for p in read_predictions(r.evals["own"].dir / "predictions.jsonl")[0]} for r in shown}
    audio_dir = out / "audio"
    audio_dir.mkdir(exist_ok=True)
    examples = []
    for ex in picked:
        dst = audio_dir / Path(ex.audio).name
        shutil.copyfile(ex.audio, dst)  # the report survives deleting the stage folders
        traces = []
        for r in shown:
            p = preds[r.key].get(ex.id)
            if p is None:
                continue
            traces.append({"label": f"{r.label} [{r.prompt} prompt]", "model": r.recipe, "completion": p.completion,
                           "pred_letter": p.pred_letter, "correct": bool(p.correct) if p.error is None else None})
        examples.append({"id": ex.id, "audio": f"audio/{dst.name}", "task": ex.task, "question": ex.question,
                         "choices": ex.choices, "answer": ex.answer, "evidence": [list(e) for e in ex.evidence],
                         "traces": traces})
    return examples


def assemble_results(cfg: DemoConfig, out: Path, corpus: Stage, base: Stage, rows: list[ModelRow],
                     checks: dict, timestamps: dict, behaviours: dict, attention: dict, attention_same_text: dict,
                     seed_rows: list, citation: dict, runner: StageRunner, wall: float, threads: str,
                     grpo_anyway: bool) -> dict:
    """Everything the report shows, as plain JSON (saved as ``results.json``)."""
    labels = {r.key: r.label for r in rows}
    c = corpus.summary
    chance = next((r.evals["own"].summary["chance"] for r in rows if "own" in r.evals), 0.25)
    tb = _text_baseline(corpus.dir, cfg.eval_items)
    notices = []
    if cfg.name == "quick":
        notices.append({"level": "warn", "text": f"--quick: {cfg.eval_items} test questions and a few training steps "
                        "per stage, to see the whole pipeline and the report in a minute. Its numbers are noise by "
                        "design and its listening check is expected to fail; `tgsr demo` (without --quick) is the "
                        "measured setting."})
    for key, chk in checks.items():
        level = "ok" if chk["passed"] else "fail"
        notices.append({"level": level,
                        "text": f"Listening gate (validation split) for '{labels[key]}': " + _check_line(chk)})
    skipped = [r for r in rows if r.skipped]
    if skipped:
        notices.append({"level": "fail", "text": "GRPO was not run for: " + "; ".join(
            f"{r.label} ({r.skipped})" for r in skipped) + ". GRPO from a policy that does not listen learns "
            "answer-letter priors, not listening, so its numbers would show nothing about grounding."})
    if grpo_anyway and any(not chk["passed"] for chk in checks.values()):
        notices.append({"level": "fail", "text": "GRPO was run although a start policy failed the listening check "
                        "(--grpo-anyway): its rows show the mechanics, not evidence of listening."})
    if tb:
        notices.append({"level": "warn", "text": f"A text-only baseline (the most frequent training answer to the "
                        f"same question, no audio) scores {tb.get('accuracy', 0):.3f} on the evaluated test questions "
                        f"against chance {tb.get('chance', chance):.3f}; accuracy above that, and above the "
                        "swapped-audio control, is what listening adds."})

    # Table 2 analogue
    acc_rows = [_accuracy_row(r, cfg.seed) for r in rows]
    tables = [Table("accuracy", "Accuracy on the held-out test with listening controls (Table 2 analogue)",
                    acc_rows, AccuracyRow,
                    caption=f"Own = the item's audio, on the first {cfg.eval_items} test questions (n). The "
                            f"controls run on the first {cfg.control_items} of them (n controls): swapped = another "
                            f"test clip's audio, silence = zeros of the same length; own - swapped is paired on "
                            f"those items, with McNemar's exact two-sided p. Chance = {chance:.3f}. 'no answer' = "
                            f"share of completions with no extractable choice (counted wrong). Test voices are "
                            f"unseen in training.")]

    # per question family
    tasks = sorted({t for r in rows if "own" in r.evals
                    for t in r.evals["own"].summary["tgsr"].get("by", {}).get("task", {})})
    if tasks:
        trows = []
        for r in rows:
            if "own" not in r.evals:
                continue
            by = r.evals["own"].summary["tgsr"]["by"].get("task", {})
            trows.append(TaskAccuracyRow(r.label, {t: by[t]["accuracy"] if t in by else None for t in tasks}))
        tables.append(Table("by_task", "Accuracy by question family (own audio)", trows, TaskAccuracyRow,
                            caption="Per-family n is small; differences of a few items are noise."))

    # Table 1
    ts_rows = []
    for label, st in timestamps.values():
        s = st.summary
        ts_rows.append(TimestampRow(model=label, mean_iou=s.get("mean_iou") or 0, iou_at_07=s.get("iou_at_0.7") or 0,
                                    sed_f1=s.get("sed", {}).get("f1") or 0, no_span=s.get("no_span"),
                                    n=s.get("items")))
    tables.append(Table("timestamps", "Timestamp alignment before and after STA (Table 1 analogue)", ts_rows,
                        TimestampRow,
                        caption="Turn-level STA questions on the held-out test ('When is <the second speaker's "
                                "turn>?'). IoU of the first cited span with the reference (0 when none); SED-F1 is "
                                "event-based (onset collar 0.2 s). 'no span' = answers with no parseable span."))

    # citations in the reasoning (grounded models)
    cite_rows = []
    for r in rows:
        if "own" not in r.evals:
            continue
        cit = _citations_of(r.evals["own"])
        n = len(cit) or 1
        cite_rows.append(CitationRow(model=r.label, citations=sum(v["n"] for v in cit.values()) / n,
                                     distinct_regions=sum(v["distinct"] for v in cit.values()) / n,
                                     answers_citing=sum(1 for v in cit.values() if v["n"] > 0) / n))
    tables.append(Table("citations", "Timestamp citations in the answers (own audio)", cite_rows, CitationRow))

    # citation following: before GRPO (the start policy, validation and test) and after (each GRPO run)
    cf_rows = []
    for (_, split), (label, st) in citation.items():
        s, gate = st.summary["summary"], st.summary["gate"]
        cf_rows.append(CitationFollowingRow(
            model=label, split=split, follow_rate=s["follow_rate"], follow_chance=s["follow_chance"],
            follow_pvalue=s["follow_pvalue"], accuracy_own=s["accuracy_own"], accuracy_gold=s["accuracy_gold_citation"],
            gold_gain=s["gold_gain"], gain_pvalue=(s.get("gold_vs_own") or {}).get("mcnemar", {}).get("pvalue"),
            probed=s["n_probed"], items=s["n_items"], passed=gate["passed"]))
    if cf_rows:
        tables.append(Table("citation_following", "Does the answer follow its citation? (before and after GRPO)",
                            cf_rows, CitationFollowingRow,
                            caption="Grounded prompt, greedy. For each turn_start and start_range item the reference "
                                    "rationale is teacher-forced up to its citation, once as it is (gold) and once "
                                    "with the citation moved to another option's time (counterfactual); the model "
                                    "writes the rest. 'Follows counterfactual' = the answer is the option the moved "
                                    "citation implies (chance = 1 / options; one-sided exact binomial p); 'gold - "
                                    "own' = accuracy with the gold citation minus with the model's own reasoning "
                                    "(McNemar's exact p). longest_turn items are not probed (items - probed). Gate: "
                                    "follows >= 0.6 and above chance at 0.01, and gold - own >= 0.05. Validation = "
                                    "the gate's split; test = the first control items."))

    # Table 3 analogue
    beh_rows = []
    for key, st in behaviours.items():
        b = st.summary

        def mean(m, b=b):
            return (b.get(m) or {}).get("mean")
        beh_rows.append(BehaviourRow(model=labels[key], n=b.get("n_predictions"), accuracy=mean("accuracy"),
                                     regions_explored=mean("regions_explored"), consistency=mean("consistency"),
                                     grounding_iou=mean("grounding_precision"),
                                     n_cited=(b.get("grounding_precision") or {}).get("n")))
    if beh_rows:
        tables.append(Table("behaviours", "Reasoning behaviours (Table 3 analogue)", beh_rows, BehaviourRow,
                            caption="Regions explored = distinct cited regions per answer; consistency = the rule "
                                    "judge's score of whether the reasoning supports the final answer; grounding "
                                    "IoU = mean best IoU of the cited regions with the gold evidence, over answers "
                                    "that cite (n cited). Audiology Verify is not computed: it checks quoted words "
                                    "against a Whisper transcript, and these answers quote no words."))

    # Table 4 analogue (on the same text for every model, and on each model's own answers) and
    # the attention-by-layer plot
    same_rows = [_attention_row(labels[key], st.summary) for key, st in attention_same_text.items()]
    if same_rows:
        tables.append(Table("attention_same_text", "Attention to the audio on the same text for every model "
                            "(Table 4 analogue)", same_rows, AttentionRow,
                            caption=f"The grounded prompt and the reference grounded rationale of the first "
                                    f"{cfg.attention_items} test questions, teacher-forced into every model, so "
                                    f"the models are compared on identical tokens. Attention mass on the audio "
                                    f"block, averaged over heads, layers and tokens, overall and by phase of the "
                                    f"text. Cited-span ratio: the share of the audio attention that falls inside "
                                    f"the cited (gold) span, divided by the span's share of the audio tokens (1 = "
                                    f"no more than elsewhere in the clip)."))
    att_rows, att_summaries = [], {}
    for key, st in attention.items():
        att_rows.append(_attention_row(labels[key], st.summary))
        if st.summary.get("mass", {}).get("all", {}).get("by_layer"):
            att_summaries[SHORT_LABELS.get(key, key)] = st.summary
    figures = []
    if att_rows:
        tables.append(Table("attention", "Attention of generated tokens to the audio, on each model's own answers",
                            att_rows, AttentionRow,
                            caption=f"As above, on the first {cfg.attention_items} own-audio test answers of each "
                                    f"model (teacher-forced re-read of the scored completions). The texts differ "
                                    f"between models (a direct answer line, a plain or a grounded rationale), and "
                                    f"attention shares move with the text: compare models on the table above. "
                                    f"The cited-span ratio is over the answers that cite a span (items citing)."))
    if att_summaries:
        from ..report.plots import plot_audio_by_layer, plot_block_distribution

        plots = out / "plots"
        plot_audio_by_layer(att_summaries, plots / "attention_by_layer.png")
        figures.append({"title": "Audio attention by decoder layer", "path": "plots/attention_by_layer.png",
                        "caption": "attention mass on the audio block at each layer, all generated tokens"})
        plot_block_distribution(att_summaries, plots / "attention_blocks.png", groups=("all",))
        figures.append({"title": "Where generated tokens look", "path": "plots/attention_blocks.png",
                        "caption": "share of attention on system / audio / question / output blocks"})

    seed_table = seed_contrasts(rows, seed_rows, seed=cfg.seed)
    if cfg.grpo_seeds > 1 and seed_table:
        tables.append(Table("grpo_seeds", f"GRPO arms over {cfg.grpo_seeds} training seeds (own audio, test)",
                            seed_table, SeedRow,
                            caption="Each GRPO run against the start policy it was trained from, on the same test "
                                    "items: the paired difference with a percentile bootstrap interval and McNemar's "
                                    "exact test. Seeds change the sampling and the prompt order; the start policy "
                                    "and pi_0 are the same."))

    contrast_rows = arm_contrasts(rows, seed=cfg.seed)
    if contrast_rows:
        tables.append(Table("contrasts", "Paired contrasts between arms (own audio, test)", contrast_rows,
                            ContrastRow,
                            caption="The same test items for both arms: A - B with a paired percentile bootstrap "
                                    "interval (10,000 item resamples) and McNemar's exact two-sided test on the "
                                    "items exactly one arm got right. An item with no parseable answer is wrong."))

    check_rows = [ListeningCheckRow(policy=labels[k], own=v["accuracy_own"], swapped=v["accuracy_swapped"],
                                    chance=v["chance"], p_above_chance=v["p_above_chance"],
                                    p_above_swapped=v["p_above_swapped"], n=v["n"], passed=v["passed"])
                  for k, v in checks.items()]
    tables.append(Table("listening_check", "Listening gate of each GRPO start policy (validation split)",
                        check_rows, ListeningCheckRow,
                        caption=f"On {cfg.validation_items} validation questions: unseen dialogues of the held-out "
                                f"voices, never the test items. One-sided exact tests at alpha = {cfg.alpha}: "
                                "binomial against chance, McNemar (paired, discordant items) against the "
                                "swapped-audio control."))
    tables.append(Table("stages", "Stages", [StageRow(s.name, s.dir.name, s.seconds, s.cached) for s in runner.stages],
                        StageRow, caption="Seconds are those of the run that computed the stage."))

    # curves
    curves = []
    loss_series = {}
    for st, name in [(base, "base (direct answers)")] + [(r.stage, r.label) for r in rows
                                                         if r.stage is not None and r.key in ("only_sta", "sft_plain",
                                                                                               "sft_grounded")]:
        s = _series(_read_log(st), "loss")
        if s["y"]:
            loss_series[name] = s
    if loss_series:
        curves.append({"title": "Supervised training loss", "xlabel": "step", "ylabel": "loss",
                       "series": loss_series})
    reward_series, answer_series = {}, {}
    for r in rows:
        if r.stage is None or not r.key.startswith(("tgsr", "grpo")):
            continue
        log = _read_log(r.stage)
        total, answer = _reward_keys(log)
        if total:
            reward_series[r.label] = _series(log, total)
        if answer:
            answer_series[r.label] = _series(log, answer)
    if reward_series:
        curves.append({"title": "GRPO reward (training batches)", "xlabel": "step", "ylabel": "mean reward",
                       "series": reward_series})
    if answer_series:
        curves.append({"title": "GRPO answer reward = training accuracy", "xlabel": "step", "ylabel": "accuracy",
                       "series": answer_series, "hlines": [{"y": chance, "label": "chance"}]})
    # on the control items, where all three conditions ran
    acc_curve = {row.model: {"x": [0, 1, 2], "y": [row.own_on_controls, row.swapped, row.silence]}
                 for row in acc_rows if row.own_on_controls is not None}

    examples = _example_traces(cfg, out, corpus, rows)
    base_params = base.summary.get("parameters")
    setting = {
        "mode": cfg.name, "seed": cfg.seed, "torch threads": threads,
        "wall time (this run)": f"{wall / 60:.1f} min",
        "time of all stages (cached ones as first run)": f"{sum(st.seconds for st in runner.stages) / 60:.1f} min",
        "load average at the end (1 min)": _load(),
        "tgsr": __version__,
        "corpus": f"{c['clips'].get('train')} train / {c['clips'].get('test')} test clips "
                  f"({c['audio_seconds'].get('train', 0) / 60:.1f} / {c['audio_seconds'].get('test', 0) / 60:.1f} min "
                  f"of espeak-ng dialogue), {c['qa'].get('train')} / {c['qa'].get('test')} questions; "
                  f"test voices unseen in training; test dialogues {cfg.first_test_clip}-"
                  f"{cfg.first_test_clip + cfg.n_test_clips - 1} of seed {cfg.seed}, validation (the gate) "
                  f"{cfg.first_validation_clip}-{cfg.first_validation_clip + cfg.n_validation_clips - 1} of the same "
                  "voices (clips before 136 were looked at while the question families were chosen, or scored by "
                  "earlier designs' runs)",
        "question families": ", ".join(cfg.families),
        "model": f"{FAMILY} architecture (Qwen2_5OmniThinkerForConditionalGeneration), size '{cfg.model_size}', "
                 f"{base_params:,} parameters, random init" if base_params else FAMILY,
        "base": _base_line(cfg, base),
        "STA": _supervised_line(cfg, "sta") + ", turn level",
        "SFT": _supervised_line(cfg, "sft"),
        "GRPO": _grpo_line(cfg),
        "recipes": str(Path(cfg.recipes).resolve()),
        "evaluation": f"first {cfg.eval_items} test questions with their own audio, the swapped and silent "
                      f"controls on the first {cfg.control_items} of them, greedy decoding"
                      + (f"; GRPO arms trained with {cfg.grpo_seeds} seeds" if cfg.grpo_seeds > 1 else ""),
    }
    return {
        "title": f"tgsr demo ({cfg.name}): listen first, then answer, on a tiny model",
        "summary": "Every number below was measured in this run, on a tiny randomly initialised model of the "
                   "Qwen2.5-Omni thinker architecture trained on synthetic dialogues for minutes on a CPU. It "
                   "shows the method's mechanics and the listening controls; it is not a reproduction of the "
                   "paper's numbers on real benchmarks.",
        "setting": setting, "notices": notices, "design": DESIGN_NOTES, "tables": [t.to_dict() for t in tables],
        "curves": curves,
        "figures": figures,
        "examples": examples,
        "accuracy_by_condition": acc_curve, "checks": checks, "config": cfg.to_dict(),
        "footer": _ask_hint(out, rows, examples),
    }


def arm_contrasts(rows: list[ModelRow], *, seed: int = 0) -> list[ContrastRow]:
    """``CONTRASTS`` between the arms that ran (``tgsr.analysis.stats.contrast_runs``)."""
    from ..analysis.stats import contrast_runs

    by_key = {r.key: r for r in rows if "own" in r.evals}
    out = []
    for a, b, question in CONTRASTS:
        if a not in by_key or b not in by_key:
            continue
        c = contrast_runs(by_key[a].evals["own"].dir, by_key[b].evals["own"].dir, seed=seed)
        out.append(ContrastRow(question=question, model_a=by_key[a].label, model_b=by_key[b].label,
                               **paired_fields(c)))
    return out


def seed_contrasts(rows: list[ModelRow], seed_rows: list, *, seed: int = 0) -> list[SeedRow]:
    """Every GRPO training seed's run against its start policy (``contrast_runs``, own audio)."""
    from ..analysis.stats import contrast_runs

    starts = {r.key: r for r in rows if "own" in r.evals}
    out = []
    for row, training_seed, start_key in seed_rows:
        if "own" not in row.evals or start_key not in starts:
            continue
        c = contrast_runs(row.evals["own"].dir, starts[start_key].evals["own"].dir, seed=seed)
        out.append(SeedRow(model=row.label, seed=training_seed, **paired_fields(c)))
    return out


def _accuracy_row(r: ModelRow, seed: int) -> AccuracyRow:
    """One row of Table 2: own audio on every test item, the controls on the first items, and
    own against swapped paired on those."""
    from ..analysis.stats import contrast_runs

    m = r.evals["own"].summary["tgsr"] if "own" in r.evals else {}
    paired = None
    if "own" in r.evals and "swapped" in r.evals:
        paired = contrast_runs(r.evals["own"].dir, r.evals["swapped"].dir, seed=seed, on_items_of_b=True)
    return AccuracyRow(
        model=r.label, recipe=r.recipe, prompt=r.prompt, own=_acc(r.evals.get("own")), n=m.get("items"),
        no_answer=(m.get("unparseable", 0) / m["items"]) if m.get("items") else None,
        own_on_controls=paired["accuracy_a"] if paired else None, swapped=_acc(r.evals.get("swapped")),
        silence=_acc(r.evals.get("silence")),
        own_minus_swapped=paired["interval"]["difference"] if paired else None,
        p_own_vs_swapped=paired["mcnemar"]["pvalue"] if paired else None, n_controls=paired["n"] if paired else None,
        note=r.skipped or "")


def _attention_row(model: str, a: dict) -> AttentionRow:
    """A Table 4 row from a ``run_attention`` summary: audio mass by phase and the cited-span ratio."""
    sec, span = a.get("mass", {}), a.get("span_ratio", {})

    def audio(group):
        m = sec.get(group, {}).get("mean")
        return m.get("audio") if m else None
    return AttentionRow(model=model, overall=audio("all"), reasoning=audio("reasoning"),
                        timestamp=audio("timestamp"), answer=audio("answer"),
                        span_ratio=span.get("all", {}).get("mean"),
                        span_ratio_answer=span.get("answer", {}).get("mean"),
                        items_citing=span.get("n_with_span"), items=a.get("n_items"), failed=a.get("n_failed"))


def _base_had_sta(cfg: DemoConfig, base: Stage) -> bool:
    """Was the base trained on turn-level STA rows too (``--base-with-sta``, or a shipped base
    whose provenance says so)?"""
    if base.summary.get("adopted_from"):
        return bool((base.summary.get("provenance") or {}).get("training", {}).get("with_turn_sta"))
    return cfg.base_with_sta


def _base_line(cfg: DemoConfig, base: Stage) -> str:
    prov = base.summary.get("provenance")
    if base.summary.get("adopted_from"):
        if not prov:
            return f"adopted from {base.summary['adopted_from']} (no PROVENANCE.json)"
        t, chk = prov.get("training", {}), prov.get("listening_check", {})
        line = (f"shipped checkpoint made by `{prov.get('made_by')}`: {t.get('steps')} steps x batch "
                f"{t.get('batch_size')}, lr {t.get('lr')}, direct answers"
                f"{' and turn-level timestamps (ordinal referents)' if t.get('with_turn_sta') else ''}, on "
                f"{prov.get('train_clips')} training dialogues of corpus seed {prov.get('corpus_seed')} (same voice "
                f"split, so this run's test voices are unseen), {(t.get('seconds') or 0) / 60:.0f} min on a CPU")
        if chk:
            line += (f"; its own listening check: own {chk.get('accuracy_own', 0):.3f} vs swapped "
                     f"{chk.get('accuracy_swapped', 0):.3f} (n={chk.get('n')})")
        return line
    return (f"trained in this run: {_supervised_line(cfg, 'base')}, "
            f"direct answers" + (" and turn-level timestamps (ordinal referents)" if cfg.base_with_sta else ""))


def _supervised_line(cfg: DemoConfig, stage: str) -> str:
    t = cfg.trainer_settings(stage)
    return f"{t.max_steps} steps x batch {t.per_device_train_batch_size}, lr {t.learning_rate}"


def _grpo_line(cfg: DemoConfig) -> str:
    t = cfg.trainer_settings("grpo")
    prompts = t.per_device_train_batch_size * t.gradient_accumulation_steps // t.num_generations
    return (f"{t.max_steps} steps x {prompts} prompts x G={t.num_generations}, lr {t.learning_rate}, "
            f"beta {t.beta}, temperature {t.temperature}")


def _ask_hint(out: Path, rows: list[ModelRow], examples: list[dict]) -> str:
    """A ready-to-run ``tgsr ask`` command for the grounded model on a shown clip."""
    import shlex

    grounded = next((r for r in rows if r.key == "tgsr" and r.stage is not None), None) or next(
        (r for r in rows if r.key == "sft_grounded" and r.stage is not None), None)
    if grounded is None or not examples:
        return ""
    ex = examples[0]
    cmd = ["tgsr", "ask", str(grounded.stage.model), str(out / ex["audio"]), ex["question"]]
    for c in ex["choices"]:
        cmd += ["--choice", c]
    return f"Ask the {grounded.label} model yourself: " + " ".join(shlex.quote(x) for x in cmd) + " --html answer.html"


def print_summary(results: dict) -> None:
    """The accuracy table on the terminal."""
    from rich.console import Console
    from rich.table import Table as RichTable

    acc = next(t for t in results["tables"] if t["id"] == "accuracy")
    table = RichTable(title=acc["title"])
    # the numbers' columns never wrap (the model's name does), so the table reads in 80 columns
    cols = ["model", "own", "n", "swapped", "silence", "own - swapped", "n controls"]
    for cname in cols:
        table.add_column(cname, justify="left" if cname == "model" else "right", no_wrap=cname != "model")
    for row in acc["rows"]:
        cells = [row[c] for c in cols]
        table.add_row(*[("-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)) for v in cells])
    console = Console()
    console.print(table)
    for n in results["notices"]:
        console.print(f"[{'green' if n['level'] == 'ok' else 'red' if n['level'] == 'fail' else 'yellow'}]"
                      f"{n['level'].upper()}[/]: {n['text']}", highlight=False)
