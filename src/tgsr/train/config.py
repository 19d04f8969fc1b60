"""Training configuration: recipe YAML -> (trainer dataclass, tgsr section).

A recipe is a YAML file whose top-level keys are the trainer's own dataclass fields
(transformers ``TrainingArguments`` for ``sta``/``sft``, TRL ``GRPOConfig`` for ``grpo``) plus
one ``tgsr:`` mapping with what those dataclasses do not know: the model folder and family,
the data files, rewards, audio-encoder freezing, LoRA and feature caching.

Command-line overrides are ``key=value`` pairs; values are parsed as YAML (``1e-5``, ``true``,
``[answer, compaction]``) and ``tgsr.<key>`` addresses the tgsr section, so
``learning_rate=1e-5 tgsr.ablation=no_compaction`` works for any recipe.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from ..errors import TgsrError

STAGES = ("sta", "sft", "grpo")

# GRPO reward presets: the paper's method and its ablations, plus one beyond the paper. Each
# sets ``rewards`` (a ``tgsr.rewards.build_reward_funcs`` spec: name -> weight or
# {weight, **params}) and the prompt style; keys given explicitly in the recipe win.
ABLATIONS: dict[str, dict[str, Any]] = {
    # R = R_answer + R_tg (compaction: C_max = 0.5 for k <= 1, C_min = 0.1 for k >= 5, linear between)
    "paper": {"rewards": {"answer": 1.0, "compaction": 1.0}, "prompt_style": "grounded"},
    # "GRPO w/o grounding": answer reward only, reasoning without timestamp instructions
    "no_grounding": {"rewards": {"answer": 1.0}, "prompt_style": "cot"},
    # "GRPO w/o compaction": R_tg = C_max for any k >= 1
    "no_compaction": {"rewards": {"answer": 1.0, "compaction_flat": 1.0}, "prompt_style": "grounded"},
    # beyond the paper: also reward the overlap of cited spans with the gold evidence
    "grounding_iou": {"rewards": {"answer": 1.0, "compaction": 1.0, "grounding_iou": 1.0},
                      "prompt_style": "grounded"},
}


class _Loader(yaml.SafeLoader):
    """YAML 1.2 scalars: ``5e-6`` is a float (1.1 reads a string) and only true/false are booleans
    (1.1 reads ``save_strategy: no`` as False)."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))

_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+][0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


class ConfigError(TgsrError):
    """A recipe or override that cannot be used; names the file and the key."""


@dataclass
class TgsrArgs:
    """The ``tgsr:`` section shared by all stages."""

    model: str = ""                           # model folder or hub id (HF cache), or the Stage-1 checkpoint
    family: str | None = None                  # qwen2.5-omni | qwen2-audio | audio-flamingo-3 (None: from config)
    train_file: str = ""                       # sta.jsonl (sta) or qa.jsonl (sft, grpo)
    eval_file: str | None = None               # held-out split: STA IoU report, SFT/GRPO eval
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    attn_implementation: str | None = None     # None: the family default (sdpa)
    dtype: str = "auto"                        # auto: float32 on CPU, bfloat16 where bf16 is on
    freeze_audio_encoder: bool = False
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    # LoRA on the language model's projections only; the audio tower stays as it is (or frozen)
    lora_target_modules: str = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
    feature_cache: bool = True                 # log-mel features computed once per clip and reused
    feature_cache_size: int = 4096             # clips kept across steps (LRU); 0 = within a step only
    prompt_style: str = "grounded"             # grounded | cot | direct (GRPO, SFT prompts)
    max_new_tokens: int = 64                   # STA held-out evaluation
    seed_data: int = 0


@dataclass
class StaArgs(TgsrArgs):
    pass


@dataclass
class SftArgs(TgsrArgs):
    target: str = "rationale_plain"            # rationale_plain (paper baseline) | rationale (grounded warm start)


@dataclass
class GrpoArgs(TgsrArgs):
    ablation: str | None = "paper"             # preset from ABLATIONS; None = use the keys below as given
    # reward spec for tgsr.rewards.build_reward_funcs: name -> weight, or name -> {weight: w, **params};
    # the weights become GRPOConfig.reward_weights (unless the recipe sets reward_weights itself)
    rewards: Any = field(default_factory=lambda: {"answer": 1.0, "compaction": 1.0})
    ref_model: str | None = None               # reference policy for the KL term, folder or hub id (default:
                                               # `model`, i.e. pi_0); loaded by tgsr (Omni: the thinker)
    logprob_check_steps: int = 1               # generation batches whose sampling log-probs are checked
    logprob_check_tol: float | None = None     # the audio guard (tgsr.train.audio_guard): max gap in fp32
                                               # (None: 1e-4), mean gap in bf16/fp16 (None: 0.1) plus the
                                               # swapped-audio contrast
    encoder_cache: bool = True                 # frozen audio encoder: outputs once per clip per step (off if it trains)
    merge_lora_for_generation: Any = "auto"    # LoRA: sample from the adapter merged into a weight copy (faster
                                               # decode); auto: when the GPU has room for the copy; true | false


TGSR_CLASSES = {"sta": StaArgs, "sft": SftArgs, "grpo": GrpoArgs}


def trainer_class(stage: str):
    if stage == "grpo":
        from trl import GRPOConfig

        return GRPOConfig
    from transformers import TrainingArguments

    return TrainingArguments


def parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected key=value (e.g. learning_rate=1e-5 or tgsr.lora=true)")
    key, raw = item.split("=", 1)
    key = key.strip().lstrip("-")
    if not key:
        raise ConfigError(f"override {item!r}: empty key")
    try:
        value = yaml_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"override {item!r}: value is not valid YAML: {e}") from None
    return key, value


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: recipe not found")
    try:
        data = yaml_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    if "tgsr" in data and not isinstance(data["tgsr"], dict):
        raise ConfigError(f"{path}: key 'tgsr' must be a mapping")
    return data


def _apply_ablation(tg: dict, where: str) -> dict:
    name = tg.get("ablation", GrpoArgs.ablation)
    if name in (None, "", "none"):
        tg["ablation"] = None
        return tg
    if name not in ABLATIONS:
        raise ConfigError(f"{where}: tgsr.ablation {name!r} is unknown; expected one of {sorted(ABLATIONS)}")
    for k, v in ABLATIONS[name].items():
        tg.setdefault(k, v)
    return tg


def reward_spec(rewards: Any, where: str = "<config>") -> tuple[list, list[float]]:
    """(reward functions, weights) from a ``tgsr.rewards`` spec, with a located error."""
    from ..rewards import build_reward_funcs

    try:
        return build_reward_funcs(rewards)
    except (KeyError, ValueError, TypeError) as e:
        raise ConfigError(f"{where}: tgsr.rewards: {e}") from None


def _instantiate(cls, values: dict, where: str, from_cli: frozenset = frozenset()):
    """``from_cli``: keys set by command-line overrides, so an error names the right source."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - names)
    if unknown:
        import difflib

        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, names, n=1)
            hints.append(f"{k!r}" + (" (a command-line override)" if k in from_cli else "")
                         + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(f"{where}: unknown key(s) for {cls.__name__}: {', '.join(hints)}")
    try:
        from transformers import HfArgumentParser

        (obj,) = HfArgumentParser((cls,)).parse_dict(values)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {cls.__name__}: {e}") from None
    return obj


def load_config(stage: str, path: str | Path | None, overrides: Sequence[str] = (), *,
                extra: dict | None = None):
    """Read a recipe, apply ``key=value`` overrides, return ``(trainer_args, tgsr_args)``.

    ``extra`` is a dict merged like overrides (used by tests and library callers).
    """
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; expected one of {STAGES}")
    data = load_yaml(path) if path is not None else {}
    where = str(path) if path is not None else "<config>"
    tg = dict(data.pop("tgsr", None) or {})
    tr = dict(data)
    merged = [parse_override(o) for o in overrides] + list((extra or {}).items())
    for key, value in merged:
        if key.startswith("tgsr."):
            tg[key[len("tgsr."):]] = value
        elif key == "tgsr" and isinstance(value, dict):
            tg.update(value)
        else:
            tr[key] = value
    if stage == "grpo":
        tg = _apply_ablation(tg, where)
    cli_keys = {k for k, _ in merged}
    tgsr_args = _instantiate(TGSR_CLASSES[stage], tg, where + " [tgsr]",
                             frozenset(k[len("tgsr."):] for k in cli_keys if k.startswith("tgsr.")))
    if not tgsr_args.model:
        raise ConfigError(f"{where}: tgsr.model is required (a model folder, e.g. from `tgsr model tiny`)")
    if not tgsr_args.train_file:
        raise ConfigError(f"{where}: tgsr.train_file is required")
    if stage == "grpo":
        from .lora_merge import merge_policy

        try:
            merge_policy(tgsr_args.merge_lora_for_generation)
        except ValueError as e:
            raise ConfigError(f"{where}: tgsr.{e}") from None
    tr = _cpu_precision(tr)
    tr.setdefault("output_dir", "runs/" + stage)
    tr.setdefault("report_to", "none")
    if stage == "grpo":
        if "gradient_checkpointing" not in tr:  # TRL turns it on by default; tgsr leaves it opt-in
            tr.setdefault("activation_checkpointing", False)
        _, weights = reward_spec(tgsr_args.rewards, where)
        if tr.get("reward_weights") is None:
            tr["reward_weights"] = weights
        elif len(tr["reward_weights"]) != len(weights):
            raise ConfigError(f"{where}: reward_weights has {len(tr['reward_weights'])} entries but tgsr.rewards "
                              f"has {len(weights)} ({tgsr_args.rewards})")
    trainer_args = _instantiate(trainer_class(stage), tr, where,
                                frozenset(k for k in cli_keys if not k.startswith("tgsr")))
    return trainer_args, tgsr_args


def _cpu_precision(tr: dict) -> dict:
    """A recipe run on a machine without a GPU: the shipped GPU recipes run as they are.

    bf16 stays on (bfloat16 autocast on the CPU, as the recipe asks; float32 master weights, see
    ``tgsr.train.common.compute_dtype``), which needs ``use_cpu``; fp16 has no CPU autocast path
    in the Trainer and is refused. Otherwise full precision: TRL's GRPOConfig defaults bf16=True,
    which a recipe that does not ask for it should not get on a CPU. Several processes train over
    gloo (``accelerate launch`` / ``torchrun``); an FSDP launch then really shards
    (``tgsr.train.distributed.ShardedCpuMixin``).
    """
    import torch

    if torch.cuda.is_available():
        return tr
    if tr.get("fp16"):
        raise ConfigError("fp16 training needs a GPU; use bf16: true (or neither) to train on the CPU")
    if tr.get("bf16"):
        tr["use_cpu"] = True
    else:
        tr["bf16"] = False
    tr["fp16"] = False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        tr.setdefault("use_cpu", True)
        tr.setdefault("ddp_backend", "gloo")
    return tr


def dump_config(trainer_args, tgsr_args, path: str | Path) -> None:
    """Write the resolved configuration next to the checkpoints (what was actually run)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tr = {k: v for k, v in trainer_args.to_dict().items() if _yaml_safe(v)}
    doc = {"tgsr": dataclasses.asdict(tgsr_args), **tr}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def _yaml_safe(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool, list, dict))


__all__ = ["ABLATIONS", "STAGES", "ConfigError", "TgsrArgs", "StaArgs", "SftArgs", "GrpoArgs",
           "load_config", "parse_override", "dump_config", "trainer_class", "reward_spec"]
