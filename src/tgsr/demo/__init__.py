"""``tgsr demo``: the whole method end to end on a CPU, in minutes, with a report.

One function per stage, run in order by ``run_demo``:

1. ``make_corpus``      synthetic dialogues (acoustic question families), test split with unseen voices
2. ``build_base``       a tiny Qwen2.5-Omni-architecture model given basic listening by a short
                        supervised stage on direct answers: the analogue of a pretrained LALM
3. ``train_sta``        Stage 1, Supervised Timestamp Alignment (turn level: what tiny models learn)
4. ``train_sft``        reasoning SFT: plain rationales (the paper's baseline) or grounded ones
                        (a short format warm start: a from-scratch model cannot follow the citation
                        instruction zero-shot the way an instruction-tuned LALM does)
5. ``train_grpo``       Stage 2, GRPO with R_answer + R_tg (compaction), and the ablations
6. ``evaluate``         every model on the held-out test with its own audio, swapped audio and silence
7. ``evaluate_timestamps`` / ``measure_attention`` / ``measure_behaviours``: Tables 1, 4 and 3
8. ``assemble_results`` -> ``OUT/results.json`` -> ``OUT/report.html``

The training settings of the base, STA, SFT and GRPO stages are ``tgsr train`` recipes,
``recipes/demo/full|quick/<stage>.yaml``, read by ``tgsr.train.config`` (``DemoConfig.train_config``).
Every stage runs in ``OUT/stages/<name>-<hash>/``, where the hash covers the stage's settings
(for a training stage its recipe's values) and the hashes of the stages it reads, and is
marked done by ``stage.json`` at the end. A re-run skips finished stages, so a killed demo
resumes at the stage it was in (evaluations resume item by item). GRPO starts only from a
policy whose accuracy is above chance *and* above its swapped-audio control (one-sided exact
tests); otherwise the GRPO rows are not run and the report says so.
"""


from .config import (
    DEMO_FAMILIES,
    DEMO_RECIPES,
    FAMILY,
    PACKAGED_BASE,
    RECIPE_STAGES,
    STAGE_CODE_VERSION,
    DemoConfig,
)
from .pipeline import default_threads, make_base_provenance, run_demo
from .results import assemble_results, print_summary
from .stages import ModelRow, Stage, StageRunner
from .steps import (
    _check_base_seed,
    adopt_base,
    build_base,
    evaluate,
    evaluate_timestamps,
    first_claim,
    listening_check,
    make_corpus,
    measure_attention,
    measure_behaviours,
    option_order_key,
    ordinal_turn_rows,
    train_grpo,
    train_sft,
    train_sta,
)

__all__ = [
    "DEMO_FAMILIES",
    "DEMO_RECIPES",
    "FAMILY",
    "PACKAGED_BASE",
    "RECIPE_STAGES",
    "STAGE_CODE_VERSION",
    "DemoConfig",
    "ModelRow",
    "default_threads",
    "make_base_provenance",
    "run_demo",
    "assemble_results",
    "print_summary",
    "Stage",
    "StageRunner",
    "_check_base_seed",
    "adopt_base",
    "build_base",
    "evaluate",
    "evaluate_timestamps",
    "first_claim",
    "listening_check",
    "make_corpus",
    "measure_attention",
    "measure_behaviours",
    "option_order_key",
    "ordinal_turn_rows",
    "train_grpo",
    "train_sft",
    "train_sta",
]
