"""Training configuration: recipe YAML -> (trainer dataclass, tgsr section).

A recipe is a YAML file whose top-level keys are the trainer's own dataclass fields
(transformers ``TrainingArguments`` for ``sta``/``sft``, TRL ``GRPOConfig`` for ``grpo``) plus
one ``tgsr:`` mapping with what those dataclasses do not know: the model folder and family,
the data files, rewards, audio-encoder freezing, LoRA and feature caching.

Command-line overrides are ``key=value`` pairs; values are parsed as YAML (``1e-5``, ``true``,
``[answer, compaction]``) and ``tgsr.<key>`` addresses the tgsr section, so
``learning_rate=1e-5 tgsr.ablation=no_compaction`` works for any recipe.

Every value is checked against its dataclass field's type before anything is built (``check_value``):
an integer field takes integers (``1e3`` too, as 1000), a number field numbers, a boolean field only
``true``/``false``, a list field a list of the element type; counts below their minimum (``tgsr.``
fields: ``metadata={"min": ...}``; the trainers' own: ``TRAINER_MINIMUMS``) are refused. The error
names the key, the value, where it came from and the expected type.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence, Union

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
    # beyond the paper: a verified grounding reward, precision and recall of the cited spans
    # against the evidence, in place of compaction (citing only an easy span pays less)
    "grounding_f1": {"rewards": {"answer": 1.0, "grounding_f1": 0.5}, "prompt_style": "grounded"},
    # the grounded prompt with the answer reward only: against "paper", isolates R_tg
    "answer_only": {"rewards": {"answer": 1.0}, "prompt_style": "grounded"},
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


def _field(default: Any = dataclasses.MISSING, help: str = "", *, factory: Any = dataclasses.MISSING,
           **bounds: float):
    """A ``tgsr:`` field with its help text (listed by ``tgsr train fields``) and value bounds."""
    return field(default=default, default_factory=factory, metadata={"help": help, **bounds})


@dataclass
class TgsrArgs:
    """The ``tgsr:`` section shared by all stages."""

    model: str = _field("", "model folder or hub id (resolved through the HF cache); GRPO: the Stage-1 "
                            "checkpoint pi_0")
    family: str | None = _field(None, "qwen2.5-omni | qwen2-audio | audio-flamingo-3; null: read from the "
                                      "model's config.json")
    train_file: str = _field("", "training rows: sta.jsonl (sta) or qa.jsonl (sft, grpo)")
    eval_file: str | None = _field(None, "held-out split: the STA IoU report (sta), evaluation loss (sft, grpo)")
    max_train_samples: int | None = _field(None, "use the first N training rows (null: all)", min=1)
    max_eval_samples: int | None = _field(None, "use the first N held-out rows (null: all)", min=1)
    attn_implementation: str | None = _field(None, "attention kernel (eager, sdpa, flash_attention_2); null: "
                                                   "the family default (sdpa)")
    dtype: str = _field("auto", "weights' dtype at load: auto (float32 on the CPU, bfloat16 where bf16 is on), "
                                "float32, bfloat16, float16")
    freeze_audio_encoder: bool = _field(False, "keep the audio tower's weights fixed")
    lora: bool = _field(False, "train LoRA adapters (PEFT) instead of all weights")
    lora_r: int = _field(16, "LoRA rank of the adapter matrices", min=1)
    lora_alpha: int = _field(32, "LoRA scaling alpha", min=1)
    lora_dropout: float = _field(0.05, "dropout on the LoRA branch", min=0.0, max=1.0)
    lora_target_modules: str = _field(
        r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
        "regex of the modules that get LoRA: the language model's projections (the audio tower stays as it is)")
    feature_cache: bool = _field(True, "compute each clip's log-mel features once and reuse them")
    feature_cache_size: int = _field(4096, "clips whose features are kept across steps (LRU); 0: within a step "
                                           "only", min=0)
    prompt_style: str = _field("grounded", "question prompt: grounded | cot | direct (sft, grpo)")
    max_new_tokens: int = _field(64, "new tokens per output in the STA held-out evaluation", min=1)
    seed_data: int = _field(0, "seed of the data order and subsampling", min=0)


@dataclass
class StaArgs(TgsrArgs):
    pass


@dataclass
class SftArgs(TgsrArgs):
    target: str = _field("rationale_plain", "training target: rationale_plain (the paper's SFT baseline, no "
                                            "times) | rationale (grounded warm start)")


@dataclass
class GrpoArgs(TgsrArgs):
    ablation: str | None = _field("paper", "reward preset from ABLATIONS (paper, no_grounding, "
                                           "no_compaction, grounding_iou ...); null: the keys below as given")
    rewards: Any = _field(help="reward spec for tgsr.rewards.build_reward_funcs: name -> weight, or name -> "
                               "{weight: w, **params}; the weights become GRPOConfig.reward_weights unless the "
                               "recipe sets them", factory=lambda: {"answer": 1.0, "compaction": 1.0})
    ref_model: str | None = _field(None, "reference policy of the KL term, folder or hub id, loaded by tgsr "
                                         "(Omni: the thinker); null: `model`, i.e. pi_0")
    logprob_check_steps: int = _field(1, "generation batches whose sampling log-probs the audio guard checks",
                                      min=0)
    logprob_check_tol: float | None = _field(None, "audio guard tolerance: max gap in fp32 (null: 1e-4), mean "
                                                   "gap in bf16/fp16 (null: 0.1) with the swapped-audio contrast",
                                             min=0.0)
    encoder_cache: bool = _field(True, "a frozen audio encoder's outputs once per clip per step (off when it "
                                       "trains)")
    merge_lora_for_generation: Any = _field("auto", "LoRA: sample from the adapter merged into a weight copy "
                                                    "(faster decoding); auto: when the GPU has room; true | false")
    share_prefill: bool = _field(True, "the G completions of a prompt share one prefill, the KV cache copied "
                                       "to its G rows after it (tgsr.train.decoding)")
    compile_decoding: bool = _field(False, "a static KV cache and the decode step under torch.compile "
                                           "(reduce-overhead: CUDA graphs); compiles once per cache length, "
                                           "on accelerators")
    auto_checkpointing: bool = _field(False, "set by activation_checkpointing_kwargs: {every_n_layers: auto}: "
                                             "after the first step checkpoint the fewest layers that fit the "
                                             "measured peak (tgsr.train.checkpointing)")


def field_help(stage: str) -> list[dict[str, str]]:
    """Every ``tgsr:`` field of a stage: name, type, default and help (``tgsr train fields``)."""
    import json

    cls = TGSR_CLASSES[stage]
    types = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        rows.append({"name": f.name, "type": describe_type(types[f.name]), "default": json.dumps(default),
                     "help": f.metadata.get("help", "")})
    return rows


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


# Counts of the trainers' own dataclasses (TrainingArguments, GRPOConfig) and their least sensible
# value: below it transformers or TRL would fail later with a traceback, or quietly do something
# else (a negative batch size, a negative sample count). ``max_steps: -1`` is the Trainer's "unset".
TRAINER_MINIMUMS: dict[str, float] = {
    "per_device_train_batch_size": 1, "per_device_eval_batch_size": 1, "gradient_accumulation_steps": 1,
    "eval_accumulation_steps": 1, "max_steps": -1, "num_train_epochs": 0, "warmup_steps": 0, "logging_steps": 0,
    "save_steps": 0, "eval_steps": 0, "save_total_limit": 0, "seed": 0, "data_seed": 0, "dataloader_num_workers": 0,
    "learning_rate": 0, "num_generations": 1, "num_generations_eval": 1, "max_completion_length": 1,
    "generation_batch_size": 1, "steps_per_generation": 1, "num_iterations": 1, "top_k": 0,
}


class _Mismatch(Exception):
    pass


def _coerce(value: Any, tp: Any) -> Any:
    """``value`` as an instance of the annotation ``tp``, or ``_Mismatch``."""
    if tp is Any or tp is object:
        return value
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        enums = [a for a in args if isinstance(a, type) and issubclass(a, enum.Enum)]
        if enums and str in args and isinstance(value, str):  # ``SaveStrategy | str``: a string names a member
            if any(value in [m.value for m in e] for e in enums):
                return value
            raise _Mismatch
        for arg in args:
            if arg is not type(None):
                try:
                    return _coerce(value, arg)
                except _Mismatch:
                    pass
        raise _Mismatch
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise _Mismatch
    if tp is type(None):
        if value is None:
            return None
        raise _Mismatch
    if isinstance(value, bool) and tp is not bool:  # a bool is an int to Python, never to a recipe
        raise _Mismatch
    if tp is bool or tp is str:
        if isinstance(value, tp):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():  # 1e3 reads as a float
            return int(value)
        raise _Mismatch
    if tp is float:
        if isinstance(value, (int, float)):
            return float(value)
        raise _Mismatch
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        elem = args[0] if args and args[-1] is not Ellipsis or len(args) == 2 else Any
        return [_coerce(v, elem) for v in value]
    if origin is dict or tp is dict:
        if isinstance(value, dict):
            return value
        raise _Mismatch
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, tp) or value in [m.value for m in tp]:
            return value
        raise _Mismatch
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise _Mismatch
    return value  # a typing construct not listed above: the dataclass checks it


_PLURAL = {int: "integers", float: "numbers", str: "strings", bool: "true/false values"}


def describe_type(tp: Any) -> str:
    """An annotation in words, e.g. ``int | None`` -> "an integer or null"."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        enums = any(isinstance(a, type) and issubclass(a, enum.Enum) for a in args)
        words = list(dict.fromkeys(describe_type(a) for a in args
                                   if a is not type(None) and not (enums and a is str)))
        return " or ".join(words + (["null"] if type(None) in args else []))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (list, tuple) or tp in (list, tuple):
        return f"a list of {_PLURAL.get(args[0], 'values')}" if args else "a list"
    if origin is dict or tp is dict:
        return "a mapping"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    named = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    if tp in named:
        return named[tp]
    return f"a {getattr(tp, '__name__', tp)}"


def check_value(cls, key: str, value: Any, *, name: str | None = None, minimum: float | None = None) -> Any:
    """``value`` for field ``key`` of dataclass ``cls``, converted where lossless (an integral float
    for an integer); ``ValueError`` naming ``name`` (default ``key``), the value and the expected type."""
    import json

    name = name or key
    shown = json.dumps(value, default=str)  # as a recipe writes it: true, "abc", [1, 2]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    tp = typing.get_type_hints(cls)[key]
    try:
        value = _coerce(value, tp)
    except _Mismatch:
        raise ValueError(f"{name}={shown}: expected {describe_type(tp)}") from None
    if minimum is None:
        minimum = fields[key].metadata.get("min")
    maximum = fields[key].metadata.get("max")
    numbers = value if isinstance(value, list) else [value]
    for v in numbers:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if minimum is not None and v < minimum:
                unset = " (-1: not set)" if minimum == -1 else ""
                raise ValueError(f"{name}={shown}: must be at least {minimum}{unset}")
            if maximum is not None and v > maximum:
                raise ValueError(f"{name}={shown}: must be at most {maximum}")
    return value


def _instantiate(cls, values: dict, where: str, from_cli: frozenset = frozenset(), *, prefix: str = "",
                 minimums: dict | None = None):
    """``from_cli``: keys set by command-line overrides, so an error names the right source;
    ``prefix`` names the section in messages (``tgsr.``); ``minimums``: least values by key."""
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
    checked = {}
    for key, value in values.items():
        try:
            checked[key] = check_value(cls, key, value, name=prefix + key, minimum=(minimums or {}).get(key))
        except ValueError as e:
            source = " (a command-line override)" if key in from_cli else ""
            raise ConfigError(f"{where}: {e}{source}") from None
    try:
        obj = cls(**checked)  # what HfArgumentParser.parse_dict does, once the keys and types are known good
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
    if _take_auto_every_n_layers(tr, stage, where):
        tg["auto_checkpointing"] = True
    tgsr_args = _instantiate(TGSR_CLASSES[stage], tg, where + " [tgsr]",
                             frozenset(k[len("tgsr."):] for k in cli_keys if k.startswith("tgsr.")), prefix="tgsr.")
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
                                frozenset(k for k in cli_keys if not k.startswith("tgsr")), minimums=TRAINER_MINIMUMS)
    return trainer_args, tgsr_args


def _take_auto_every_n_layers(tr: dict, stage: str, where: str) -> bool:
    """``every_n_layers: auto`` is tgsr's (``tgsr.train.checkpointing``): the Trainer starts with every
    layer checkpointed, the plan follows the first step's measured peak."""
    from .checkpointing import AUTO

    found = False
    for key in ("activation_checkpointing_kwargs", "gradient_checkpointing_kwargs"):
        kwargs = tr.get(key)
        if isinstance(kwargs, dict) and kwargs.get("every_n_layers") == AUTO:
            if stage != "grpo":
                raise ConfigError(f"{where}: {key}.every_n_layers: auto is planned by the GRPO trainer; "
                                  f"give {stage} an integer")
            tr[key] = {k: v for k, v in kwargs.items() if k != "every_n_layers"}
            found = True
    if found and not (tr.get("activation_checkpointing") or tr.get("gradient_checkpointing")):
        raise ConfigError(f"{where}: every_n_layers: auto needs activation_checkpointing: true")
    return found


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
    """Write the resolved configuration next to the checkpoints (what was actually run), in a
    form ``load_config`` reads back to the same arguments."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tr = {k: v for k, v in trainer_args.to_dict().items() if _yaml_safe(v)}
    if tr.get("steps_per_generation") is not None:
        # GRPOConfig derives generation_batch_size from steps_per_generation (and the process
        # count) and refuses a file that sets both; the steps are the setting to keep
        tr.pop("generation_batch_size", None)
    doc = {"tgsr": dataclasses.asdict(tgsr_args), **tr}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def _yaml_safe(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool, list, dict))


__all__ = ["ABLATIONS", "STAGES", "field_help", "TRAINER_MINIMUMS", "ConfigError", "TgsrArgs", "StaArgs", "SftArgs",
           "GrpoArgs", "check_value", "describe_type", "load_config", "parse_override", "dump_config", "trainer_class",
           "reward_spec"]
