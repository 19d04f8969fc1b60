"""The demo's stages: the corpus, the base, STA, SFT, GRPO, the evaluations and the listening check."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from ..errors import TgsrError
from .config import FAMILY, DemoConfig
from .stages import Stage

# ================================================================ stages

def option_order_key(option: str) -> tuple:
    """Natural order of an answer option: counts and ordinals by value, times and time ranges
    by time, voices from low to high, anything else alphabetically."""
    import re

    from ..data.lexicon import NUMBER_WORDS, ORDINALS, VOICE_TYPES

    words = option.lower().split()
    for w in words:
        if w in NUMBER_WORDS:
            return (0, NUMBER_WORDS.index(w), option)
        if w in ORDINALS:
            return (1, ORDINALS.index(w), option)
    nums = [float(x) for x in re.findall(r"\d+(?:\.\d+)?", option)]
    if nums:
        # time ranges: "before X" < "after X but before Y" < "after Y"
        low = "before" in words and "after" not in words
        high = "after" in words and "before" not in words
        return (2, nums[0] - 0.5 if low else nums[0] + 0.5 if high else sum(nums) / len(nums), option)
    for i, v in enumerate(VOICE_TYPES):
        if v in option.lower():
            return (3, i, option)
    return (4, 0, option)


def in_natural_order(ex):
    """The same question with its options in natural order (two < three < four ...), and the
    gold letter and the rationales' final answer line updated to match.

    Why: with options shuffled per question, answering needs two skills, hearing the answer and
    binding it to the letter the prompt gave it. The tiny model does not learn the binding in
    minutes (measured: a constant letter for every question), so the demo lists options in a
    fixed natural order, as many benchmarks list counts or times. The answer then depends on
    the audio alone; letter priors stay visible through the swapped-audio control."""
    from dataclasses import replace as dc_replace

    from ..prompts import final_answer_line
    from ..records import LETTERS

    choices = sorted(ex.choices, key=option_order_key)
    letter = LETTERS[choices.index(ex.answer_text)]
    old, new = final_answer_line(ex.answer, ex.choices), final_answer_line(letter, choices)
    return dc_replace(ex, choices=choices, answer=letter, rationale=ex.rationale.replace(old, new),
                      rationale_plain=ex.rationale_plain.replace(old, new))


def first_claim(rationale: str) -> str:
    """A rationale cut to its first claim and the answer line.

    Why: a tiny model learns a ~40-token reasoning format in a couple of minutes of SFT but
    not the full ~60-150-token rationales (measured: with 60 steps most answers were
    unparseable). The first claim is the one that cites the evidence turn."""
    lines = [ln for ln in rationale.strip().split("\n") if ln.strip()]
    return "\n".join(lines[:1] + lines[-1:]) if len(lines) > 2 else "\n".join(lines)


def make_corpus(cfg: DemoConfig, d: Path) -> dict:
    """Synthetic dialogues; the files the demo trains and tests on are derived views of them:

    * ``<split>/qa_ordered.jsonl``: the questions with options in natural order, rationales cut
      to their first claim and the answer line (``first_claim``);
    * ``train/qa_direct.jsonl``: the same, the reasoning reduced to the answer line (base model);
    * ``<split>/sta_turn.jsonl``: turn-level STA, every turn of every clip, named by speaker
      ordinal only (``ordinal_turn_rows``). Phrase-level STA needs word recognition, which a tiny
      model does not learn in minutes; turns named by voice type ("the deep male voice's turn")
      need absolute pitch, and with them in the mix no listening gap appeared within 600 steps
      (measured, docs/demo.md), while ordinal referents opened one from ~400 steps.
    """
    from ..data.questions import timing_counterfactuals
    from ..data.synth import synthesize
    from ..prompts import final_answer_line
    from ..records import ClipWords, QAExample, read_jsonl, write_jsonl

    s = synthesize(d, cfg.n_train_clips, cfg.n_test_clips, cfg.seed, families=cfg.families,
                   first_test_clip=cfg.first_test_clip,
                   max_turns=cfg.max_turns, max_seconds=cfg.max_seconds)
    # validation: the same held-out voices as test (clip i of a split depends only on the seed,
    # the split and i), dialogues the test split does not score
    v = synthesize(d / "validation-synth", 0, cfg.n_validation_clips, cfg.seed, families=cfg.families,
                   first_test_clip=cfg.first_validation_clip, max_turns=cfg.max_turns, max_seconds=cfg.max_seconds)
    shutil.rmtree(d / "validation", ignore_errors=True)
    (d / "validation-synth" / "test").rename(d / "validation")
    shutil.rmtree(d / "validation-synth")
    for split in ("train", "validation", "test"):
        words = read_jsonl(d / split / "words.jsonl", ClipWords).records
        write_jsonl(d / split / "sta_turn.jsonl", [x for c in words for x in ordinal_turn_rows(c)])
        qa = [in_natural_order(x) for x in read_jsonl(d / split / "qa.jsonl", QAExample).records]
        for x in qa:
            x.rationale, x.rationale_plain = first_claim(x.rationale), first_claim(x.rationale_plain)
            # the pointer and counterfactual citations of the citation-following probe
            probe = timing_counterfactuals(x.task, x.choices, x.answer, x.evidence, x.duration)
            x.meta = {**(x.meta or {}), **(probe or {})}
            if split == "validation":  # its clips were made as test-split clips; name them for what they are
                x.id, x.split = "validation-" + x.id.removeprefix("test-"), "validation"
        write_jsonl(d / split / "qa_ordered.jsonl", qa)
    qa = read_jsonl(d / "train" / "qa_ordered.jsonl", QAExample).records
    for x in qa:
        x.rationale = x.rationale_plain = final_answer_line(x.answer, x.choices)
    write_jsonl(d / "train" / "qa_direct.jsonl", qa)
    return {"clips": {**s.clips, "validation": v.clips.get("test")}, "qa": {**s.qa, "validation": v.qa.get("test")},
            "sta": s.sta, "audio_seconds": {**s.audio_seconds, "validation": v.audio_seconds.get("test")},
            "failures": {**s.failures, **{f"validation/{k}": x for k, x in v.failures.items()}},
            "text_only_baseline": s.text_baseline,
            "voices": {k: x.get("voices") for k, x in s.manifest.get("splits", {}).items()}}


def ordinal_turn_rows(clip) -> list:
    """Turn-level STA rows for every turn of a clip (``ClipWords`` with utterances), each named by
    its speaker's ordinal with the corpus's own naming (``tgsr.data.synth.ordinal_speaker`` and
    ``turn_name``): "the second speaker's turn", "the first speaker's second turn" (speakers
    numbered by first appearance)."""
    from ..data.synth import ordinal_speaker, turn_name
    from ..records import StaExample

    order: dict[str, int] = {}
    for u in clip.utterances:
        order.setdefault(u.speaker, len(order))
    totals = {spk: sum(1 for u in clip.utterances if u.speaker == spk) for spk in order}
    seen: dict[str, int] = {}
    rows = []
    for i, u in enumerate(clip.utterances):
        nth = seen.get(u.speaker, 0)
        seen[u.speaker] = nth + 1
        phrase = turn_name(ordinal_speaker(order[u.speaker]), totals[u.speaker], nth)
        rows.append(StaExample(id=f"{clip.clip_id}-turn{i}", audio=clip.audio, phrase=phrase, start=u.start,
                               end=u.end, source="tgsr-synth", clip_id=clip.clip_id, duration=clip.duration,
                               granularity="turn"))
    return rows


class _LogRecorder:
    """A transformers callback that keeps every logged dict (loss, reward ...) in a JSONL file."""

    def __new__(cls, path: Path):
        from transformers import TrainerCallback

        class Recorder(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs:
                    with open(path, "a", encoding="utf-8") as fh:
                        fh.write(json.dumps({"step": state.global_step, **logs}, default=str) + "\n")

        return Recorder()


def _train_supervised(stage: str, cfg: DemoConfig, d: Path, start: Path, train_file: Path, tgsr: dict) -> dict:
    """One supervised stage from its recipe (``cfg.recipe(stage)``) on one rows file."""
    from ..train import run

    trainer_args, tgsr_args = cfg.train_config(stage, output_dir=d / "model",
                                               tgsr={"model": str(start), "train_file": str(train_file), **tgsr})
    summary = run(cfg.train_stage(stage), trainer_args, tgsr_args, callbacks=[_LogRecorder(d / "log_history.jsonl")])
    return {k: v for k, v in summary.items() if not isinstance(v, (list, dict)) or k == "feature_cache"}


def build_base(cfg: DemoConfig, d: Path, corpus: Stage) -> dict:
    """Random tiny Omni model -> supervised direct answers to the acoustic questions."""
    from ..models.tiny import build_tiny

    init = build_tiny(FAMILY, cfg.model_size, d / "init", seed=cfg.seed, hop_length=cfg.hop_length)
    meta = json.loads((init / "tgsr_tiny.json").read_text())
    if cfg.base_with_sta:
        summary = _train_mixed("base", cfg, d, init, corpus)
    else:
        summary = _train_supervised("base", cfg, d, init, corpus.dir / "train" / "qa_direct.jsonl",
                                    {"target": "rationale_plain", "prompt_style": "direct"})
    shutil.rmtree(init, ignore_errors=True)  # the random weights are not needed again
    return {**summary, "parameters": meta["parameters"], "family": FAMILY, "size": cfg.model_size}


def adopt_base(d: Path, source: Path) -> dict:
    """Use an existing base model folder (e.g. one made by ``tgsr demo --base-only``) as is."""
    src = Path(source)
    weights = src / "model.safetensors"
    if not weights.exists():
        raise TgsrError(f"{src}: not a base model folder (no model.safetensors); make one with "
                        "`tgsr demo --base-only --out DIR` and pass DIR/stages/base-*/model")
    shutil.copytree(src, d / "model", ignore=shutil.ignore_patterns("checkpoint-*", "optimizer.pt"))
    meta_path = src / "tgsr_tiny.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    prov_path = src / "PROVENANCE.json"
    provenance = json.loads(prov_path.read_text()) if prov_path.exists() else {}
    return {"adopted_from": str(src.resolve()), "parameters": meta.get("parameters"), "family": meta.get("family"),
            "size": meta.get("size"), "provenance": provenance}


def _check_base_seed(base_dir: Path, seed: int) -> None:
    """A base trained on another seed's corpus may have heard this corpus's test voices."""
    prov = base_dir / "PROVENANCE.json"
    if not prov.exists():
        return
    made = json.loads(prov.read_text()).get("corpus_seed")
    if made is not None and int(made) != int(seed):
        raise TgsrError(f"{base_dir} was trained on the corpus of seed {made}; with --seed {seed} its training "
                        "voices could be this run's test voices. Use --seed {made}, or --train-base to train a "
                        "base for this seed.".replace("{made}", str(made)))


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def train_sta(cfg: DemoConfig, d: Path, start: Stage, corpus: Stage) -> dict:
    """Stage 1 on turn-level STA rows, with the base task's rows replayed in the same batches.

    Why the replay: trained on STA rows alone, the 1.5 M-parameter model forgets how to answer
    the questions within 60 steps (measured: every answer turned into an STA sentence); a
    7 B LALM does not. Mixing the base model's direct answers back in keeps that ability, so
    what the later stages measure is STA's effect, not forgetting."""
    return _train_mixed("sta", cfg, d, start.model, corpus)


def _train_mixed(stage: str, cfg: DemoConfig, d: Path, start: Path, corpus: Stage) -> dict:
    """Supervised training on turn-level STA rows and direct-answer rows, shuffled together, with
    the settings of ``cfg.recipe(stage)`` (read as a ``tgsr train sta`` recipe)."""
    from ..train.datasets import sta_and_sft_rows
    from ..train.supervised import run_supervised

    sta_file = corpus.dir / "train" / "sta_turn.jsonl"
    replay_file = corpus.dir / "train" / "qa_direct.jsonl"
    trainer_args, tgsr_args = cfg.train_config(stage, output_dir=d / "model",
                                               tgsr={"model": str(start), "train_file": str(sta_file)})

    def rows(path, limit):
        return sta_and_sft_rows(str(path), str(replay_file), "rationale_plain", "direct", limit,
                                replay=cfg.sta_replay if stage == "sta" else 1)

    _, _, summary = run_supervised("sta", trainer_args, tgsr_args, rows,
                                   callbacks=[_LogRecorder(d / "log_history.jsonl")])
    return {k: v for k, v in summary.items() if not isinstance(v, (list, dict)) or k == "feature_cache"}


def train_sft(cfg: DemoConfig, d: Path, start: Stage, corpus: Stage, target: str, style: str) -> dict:
    return _train_supervised("sft", cfg, d, start.model, corpus.dir / "train" / "qa_ordered.jsonl",
                             {"target": target, "prompt_style": style})


def train_grpo(cfg: DemoConfig, d: Path, start: Stage, reference: Stage, corpus: Stage, ablation: str,
               seed: int | None = None) -> dict:
    """GRPO from ``start`` with the KL term to ``reference`` (the demo passes pi_0, the STA model,
    as the paper does; TRL's default would be the start policy itself), trained with ``seed``
    (default: the demo's) for the sampling and the prompt order."""
    import dataclasses

    from ..train import run

    if seed is not None:
        cfg = dataclasses.replace(cfg, seed=seed)
    trainer_args, tgsr_args = cfg.train_config(
        "grpo", output_dir=d / "model",
        tgsr={"model": str(start.model), "ref_model": str(reference.model),
              "train_file": str(corpus.dir / "train" / "qa_ordered.jsonl"), "ablation": ablation})
    summary = run("grpo", trainer_args, tgsr_args, callbacks=[_LogRecorder(d / "log_history.jsonl")])
    return {k: v for k, v in summary.items() if k not in ("logprob_checks",)}


def evaluate(cfg: DemoConfig, d: Path, model: Stage, corpus: Stage, prompt: str, condition: str,
             split: str = "test") -> dict:
    """Accuracy on a held-out split (``tgsr.eval.run``) under one listening condition: ``test``
    for the tables, ``validation`` for the listening gate."""
    from ..eval.run import RunConfig, run_eval

    limit = eval_limit(cfg, condition, split)
    rc = RunConfig(model=str(model.model), benchmark="synthetic", out=str(d), data_root=str(corpus.dir),
                   meta=str(corpus.dir / split / "qa_ordered.jsonl"), batch_size=cfg.eval_batch_size,
                   limit=limit, prompt=prompt,
                   max_new_tokens=_max_tokens(cfg, prompt), audio_condition=condition, seed=cfg.seed)
    m = run_eval(rc)
    return {"tgsr": m["tgsr"], "chance": _chance(corpus.dir, limit, split), "split": split}


def eval_limit(cfg: DemoConfig, condition: str, split: str) -> int:
    """Items of one evaluation: the gate's validation questions, or on test all ``eval_items``
    with the item's own audio and the first ``control_items`` of them under a control."""
    if split == "validation":
        return cfg.validation_items
    return cfg.eval_items if condition == "own" else cfg.control_items


def evaluate_timestamps(cfg: DemoConfig, d: Path, model: Stage, corpus: Stage) -> dict:
    """Table 1: turn-level STA on the held-out test: IoU, IoU >= 0.7, SED-F1."""
    from ..eval.run import RunConfig, run_eval

    rc = RunConfig(model=str(model.model), benchmark="sta", out=str(d), data_root=str(corpus.dir),
                   meta=str(corpus.dir / "test" / "sta_turn.jsonl"), batch_size=cfg.eval_batch_size,
                   limit=cfg.timestamp_items, max_new_tokens=48, seed=cfg.seed)
    return run_eval(rc)["sta"]


def measure_behaviours(d: Path, run: Stage) -> dict:
    """Table 3 from an own-audio evaluation run (``tgsr.analysis.behaviors``).

    Audiology Verify is not computed here: it compares *quoted* words with a Whisper
    transcript of the cited audio, and the demo's reasoning describes voices and timing
    (nothing is quoted), so it would be undefined for every item."""
    from ..analysis.behaviors import run_behaviors

    return run_behaviors(run.dir, d, asr="none", judge="rule", progress=True)


def measure_attention(cfg: DemoConfig, d: Path, model: Stage, run: Stage) -> dict:
    """Table 4: block attention of the completions that were scored (teacher-forced re-read)."""
    from ..analysis.attention import jobs_from_run, run_attention
    from ..models import load_model

    jobs = jobs_from_run(run.dir)[: cfg.attention_items]
    lm = load_model(model.model)
    return run_attention(lm, jobs, d, max_new_tokens=_max_tokens(cfg, "grounded"))


def measure_attention_same_text(cfg: DemoConfig, d: Path, model: Stage, corpus: Stage) -> dict:
    """Table 4 on one text for every model: the grounded prompt and the reference grounded
    rationale of the first ``attention_items`` test questions, teacher-forced. Each model's own
    completions differ in length and form (a direct answer line, a plain or a grounded
    rationale), and attention shares move with the text; on the same text they compare models.
    The reference cites the gold evidence, so the cited-span ratio is defined for every item."""
    from ..analysis.attention import jobs_from_qa, run_attention
    from ..models import load_model
    from ..records import QAExample, read_jsonl

    qa = read_jsonl(corpus.dir / "test" / "qa_ordered.jsonl", QAExample).records[: cfg.attention_items]
    jobs = jobs_from_qa(qa, prompt="grounded", teacher_force="rationale")
    return run_attention(load_model(model.model), jobs, d, max_new_tokens=_max_tokens(cfg, "grounded"))


def measure_citation_following(cfg: DemoConfig, d: Path, model: Stage, corpus: Stage, split: str = "test") -> dict:
    """Does the answer follow the citation (``tgsr.analysis.citation_following``)? On the
    validation questions (the gate) or the test's control items, with the grounded prompt: the
    ``turn_start`` and ``start_range`` items carry a pointer and counterfactual citations
    (``tgsr.data.questions.timing_counterfactuals``); ``longest_turn`` items are counted as not
    probed."""
    from ..analysis.citation_following import citation_gate, run_citation_following
    from ..models import load_model
    from ..records import QAExample, read_jsonl

    # the questions of a control run: the gate's validation items, or the test's first control_items
    qa = read_jsonl(corpus.dir / split / "qa_ordered.jsonl", QAExample).records[:eval_limit(cfg, "control", split)]
    summary = run_citation_following(load_model(model.model), qa, d, prompt="grounded",
                                     max_new_tokens=_max_tokens(cfg, "grounded"), batch_size=cfg.eval_batch_size,
                                     seed=cfg.seed)
    return {"summary": summary, "gate": citation_gate(summary).to_dict(), "split": split}


def _max_tokens(cfg: DemoConfig, prompt: str) -> int:
    """Evaluation token budget: a direct answer line, or a rationale as long as GRPO samples."""
    return 24 if prompt == "direct" else cfg.trainer_settings("grpo").max_completion_length


def _chance(corpus_dir: Path, limit: int, split: str = "test") -> float:
    from ..records import QAExample, read_jsonl

    qa = read_jsonl(corpus_dir / split / "qa_ordered.jsonl", QAExample).records[:limit]
    return sum(1.0 / len(x.choices) for x in qa) / len(qa)


# ================================================================ the listening check

def listening_check(own: Stage, swapped: Stage, alpha: float) -> dict:
    """``tgsr.analysis.listening.listening_gate`` of a policy's own- and swapped-audio runs: above
    chance (exact binomial) and above the swapped-audio control (exact McNemar), one-sided."""
    from ..analysis.listening import listening_gate_runs

    return listening_gate_runs(own.dir, swapped.dir, alpha=alpha)


