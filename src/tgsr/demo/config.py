"""The demo's settings: which question families and corpus, and where each stage's training recipe is.

The training settings of the four trained stages (base, STA, SFT, GRPO) are ``tgsr train``
recipes, ``recipes/demo/full/<stage>.yaml`` and ``recipes/demo/quick/<stage>.yaml``, read by
``tgsr.train.config.load_config`` as ``tgsr train`` reads any recipe. The package sees them as
``tgsr/assets/demo_recipes``: in a clone (and ``pip install -e .``) a link to ``recipes/demo``,
in a wheel a copy of it. ``DemoConfig`` holds only what is not a training setting.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

# The families the demo trains and tests on: all three are answered by one skill, hearing when
# each turn starts and ends (turn timing by position or by speaker ordinal), the skill turn-level
# STA teaches. Families that need absolute voice identity (which voice speaks first, highest
# pitch, ...) or counting voices stayed at their text prior in minute-scale training (measured,
# docs/demo.md), so they would only dilute the listening check.
DEMO_FAMILIES = ("longest_turn", "start_range", "turn_start")
FAMILY = "qwen2.5-omni"
# The shipped base model (see docs/demo.md, "The base model"); --train-base trains one instead.
PACKAGED_BASE = Path(__file__).resolve().parent.parent / "assets" / "demo_base"
# The demo's recipes: full/ and quick/, each with base.yaml, sta.yaml, sft.yaml and grpo.yaml.
DEMO_RECIPES = Path(__file__).resolve().parent.parent / "assets" / "demo_recipes"
RECIPE_STAGES = ("base", "sta", "sft", "grpo")
# Bump when a stage's code changes what it writes, so old caches are not reused.
STAGE_CODE_VERSION = 7

# What the demo sets for each stage itself (start model, rows, per-arm target, prompt and reward
# preset); a recipe that set them would be overridden without a word, so it is refused.
DEMO_KEYS = ("output_dir", "seed", "tgsr.model", "tgsr.train_file", "tgsr.target", "tgsr.prompt_style",
             "tgsr.ablation")
_PLACEHOLDER = {"model": "<the stage's start model>", "train_file": "<the demo corpus>"}


# ================================================================ configuration

@dataclass(frozen=True)
class DemoConfig:
    name: str
    seed: int = 0
    recipes: Path = DEMO_RECIPES / "full"   # base.yaml, sta.yaml, sft.yaml, grpo.yaml
    # ``tgsr train`` overrides on top of the recipes, as (stage, "key=value") pairs
    overrides: tuple[tuple[str, str], ...] = ()
    families: tuple[str, ...] = DEMO_FAMILIES
    n_train_clips: int = 500           # the training split the shipped base was trained on
    n_test_clips: int = 600          # ~1050 test questions of the three families (eval_items 1000)
    # Test-split clips 0-79 of this seed were looked at while the question families were chosen,
    # and 80-135 were scored by the runs of earlier designs (docs/demo.md); the demo is scored on
    # fresh dialogues from 200 on (the same unseen voices).
    first_test_clip: int = 200
    # The listening gate runs on a validation split, never on test: unseen dialogues spoken by the
    # held-out (test) voices, clips 140-195 of that split, disjoint from the scored test dialogues.
    n_validation_clips: int = 56
    first_validation_clip: int = 140
    validation_items: int = 96        # validation questions the gate scores (first N, whole clips)
    max_turns: int = 4                # short dialogues (~11 s): attention cost grows with the square
    max_seconds: float = 14.0
    model_size: str = "s"
    hop_length: int = 320
    base_with_sta: bool = False       # also train the base on turn-level STA rows (a listening task)
    sta_replay: int = 1               # Stage 1 repeats the base task's rows this many times in its mix
    eval_items: int = 1000            # test QA items of the own-audio evaluations (first N, whole clips)
    # The swapped- and silent-audio controls run on the first control_items of those items (the
    # paired own - swapped difference is taken on them): a control needs hundreds, not thousands.
    control_items: int = 200
    # GRPO training seeds per arm (seed, seed + 1, ...): every seed's run is evaluated on the test
    # items; the tables other than "grpo_seeds" show the first.
    grpo_seeds: int = 1
    eval_batch_size: int = 64          # greedy decoding of a tiny model: 1.6x the items/s of batch 16 (measured)
    timestamp_items: int = 64         # held-out turn-level STA items for Table 1
    attention_items: int = 8          # test items per model for Table 4
    examples: int = 3                 # reasoning traces shown in the report
    alpha: float = 0.05               # significance level of the listening check

    @classmethod
    def full(cls, seed: int = 0) -> "DemoConfig":
        return cls(name="full", seed=seed)

    @classmethod
    def quick(cls, seed: int = 0) -> "DemoConfig":
        return cls(name="quick", seed=seed, recipes=DEMO_RECIPES / "quick", n_train_clips=16, n_test_clips=10,
                   n_validation_clips=10, validation_items=16, eval_items=16, control_items=16, eval_batch_size=16,
                   timestamp_items=8, attention_items=2, examples=2)

    def __post_init__(self) -> None:
        test = range(self.first_test_clip, self.first_test_clip + self.n_test_clips)
        val = range(self.first_validation_clip, self.first_validation_clip + self.n_validation_clips)
        if self.n_validation_clips < 1 or self.n_test_clips < 1:
            raise ValueError("the demo needs at least one validation and one test clip")
        if not 1 <= self.control_items <= self.eval_items:
            raise ValueError(f"control_items must be between 1 and eval_items ({self.eval_items}), "
                             f"got {self.control_items}")
        if self.sta_replay < 1:
            raise ValueError(f"sta_replay must be at least 1, got {self.sta_replay}")
        if self.grpo_seeds < 1:
            raise ValueError(f"grpo_seeds must be at least 1, got {self.grpo_seeds}")
        if max(test.start, val.start) < min(test.stop, val.stop):
            raise ValueError(f"validation clips {val.start}-{val.stop - 1} overlap the test clips "
                             f"{test.start}-{test.stop - 1}: the gate would look at scored items")

    def with_overrides(self, stage: str, *items: str) -> "DemoConfig":
        """This configuration with ``key=value`` overrides (``tgsr train``'s syntax) on one stage's recipe."""
        _check_stage(stage)
        return dataclasses.replace(self, overrides=self.overrides + tuple((stage, item) for item in items))

    def recipe(self, stage: str) -> Path:
        _check_stage(stage)
        return Path(self.recipes) / f"{stage}.yaml"

    def stage_overrides(self, stage: str) -> list[str]:
        return [item for s, item in self.overrides if s == stage]

    def train_stage(self, stage: str) -> str:
        """The ``tgsr train`` stage whose config code reads the recipe (the trainer it builds)."""
        _check_stage(stage)
        if stage == "base":
            return "sta" if self.base_with_sta else "sft"
        return stage

    def recipe_settings(self, stage: str) -> dict:
        """What a stage's cache key covers: its recipe's settings (the YAML's values, not its
        comments) and the overrides on them, so editing a recipe re-runs that stage."""
        from ..train.config import load_yaml, parse_override

        return {"recipe": load_yaml(self.recipe(stage)),
                "overrides": [list(parse_override(o)) for o in self.stage_overrides(stage)]}

    def train_config(self, stage: str, *, output_dir: str | Path, tgsr: dict):
        """``(trainer_args, tgsr_args)`` of one stage: its recipe with the overrides, read by
        ``tgsr.train.config.load_config``, and what only the demo knows (the output folder, the
        seed, ``tgsr`` keys such as the start model and the training rows). A warm-up longer
        than the run (``--base-steps`` below it) is cut to the run's last step."""
        from ..train.config import ConfigError, load_config, load_yaml

        data = load_yaml(self.recipe(stage))
        taken = [k for k in DEMO_KEYS if (k[len("tgsr."):] in (data.get("tgsr") or {}) if k.startswith("tgsr.")
                                          else k in data)]
        if taken:
            raise ConfigError(f"{self.recipe(stage)}: {', '.join(taken)} set by the demo for each stage; "
                              "remove them from the recipe")
        extra = {"output_dir": str(output_dir), "seed": self.seed, "tgsr": dict(tgsr)}
        load = functools.partial(load_config, self.train_stage(stage), self.recipe(stage),
                                 self.stage_overrides(stage))
        trainer_args, tgsr_args = load(extra=extra)
        last = max(0, trainer_args.max_steps - 1)
        if trainer_args.warmup_steps >= 1 and trainer_args.warmup_steps > last:
            trainer_args, tgsr_args = load(extra={**extra, "warmup_steps": last})
        return trainer_args, tgsr_args

    def trainer_settings(self, stage: str):
        """A stage's trainer arguments as they run (the trainers' defaults filled in): for the
        report, the provenance and the evaluations' token budget. Reading them also checks the
        recipe, so a bad one fails before the first stage trains."""
        import json

        # keyed by the recipe's values too: an edited recipe is read again
        return _trainer_settings(self, stage, json.dumps(self.recipe_settings(stage), sort_keys=True, default=str))

    def check_recipes(self) -> None:
        for stage in RECIPE_STAGES:
            self.trainer_settings(stage)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["recipes"] = str(Path(self.recipes).resolve())
        d["recipe_settings"] = {stage: self.recipe_settings(stage) for stage in RECIPE_STAGES}
        return d


@functools.lru_cache(maxsize=32)
def _trainer_settings(cfg: DemoConfig, stage: str, _settings: str):
    return cfg.train_config(stage, output_dir="<the stage folder>/model", tgsr=_PLACEHOLDER)[0]


def _check_stage(stage: str) -> None:
    if stage not in RECIPE_STAGES:
        raise ValueError(f"unknown demo stage {stage!r}; expected one of {RECIPE_STAGES}")
