"""The private TRL / transformers hooks tgsr's trainers override, checked when they are imported.

``AudioGRPOTrainer`` and ``AudioSupervisedTrainer`` override private methods (the audio must reach
passes that TRL and the Trainer do not expose) and, while TRL's constructor runs, swap TRL's
reference-model factory. A framework upgrade that renames a parameter would otherwise surface as
a ``TypeError`` deep inside ``train()``, or, worse, a keyword silently ignored. Each hook's
parameters are compared with the ones tgsr was written against (TRL 1.16.0, transformers 5.24.0);
a difference fails at import with the hook, what changed and the versions to install.
"""

from __future__ import annotations

import inspect
from typing import Any

from ..errors import TgsrError

SUPPORTED = "trl==1.16.0 and transformers==5.24.0"

# "module:qualified.name" -> the parameter names (in order) tgsr's override relies on
HOOKS: dict[str, tuple[str, ...]] = {
    "trl.trainer.grpo_trainer:GRPOTrainer._generate_and_score_completions": ("self", "inputs"),
    "trl.trainer.grpo_trainer:GRPOTrainer._tokenize_prompts": ("self", "prompts"),
    "trl.trainer.grpo_trainer:GRPOTrainer._generate_single_turn": (
        "self", "prompt_ids", "images", "multimodal_fields", "num_generations", "has_tool_images"),
    "trl.trainer.grpo_trainer:GRPOTrainer._get_per_token_logps_and_entropies": (
        "self", "model", "input_ids", "attention_mask", "logits_to_keep", "batch_size", "compute_entropy",
        "compute_aux_loss"),
    "trl.trainer.grpo_trainer:GRPOTrainer._calculate_rewards": ("self", "inputs", "prompts", "completions",
                                                                "completion_ids_list"),
    "trl.trainer.grpo_trainer:GRPOTrainer.training_step": ("self", "model", "inputs", "num_items_in_batch"),
    "trl.trainer.grpo_trainer:GRPOTrainer.compute_loss": ("self", "model", "inputs", "return_outputs",
                                                          "num_items_in_batch"),
    "trl.trainer.grpo_trainer:create_model_from_path": ("model_id", "architecture"),
    "trl.models:unwrap_model_for_generation": ("model", "accelerator", "gather_deepspeed3_params",
                                               "generation_kwargs", "gradient_checkpointing_kwargs"),
    "transformers.trainer:Trainer._save": ("self", "output_dir", "state_dict"),
    "transformers.trainer:Trainer._save_checkpoint": ("self", "model", "trial"),
    "transformers.trainer:Trainer._get_output_dir": ("self", "trial"),
    "transformers.trainer:Trainer._load_from_checkpoint": ("self", "resume_from_checkpoint", "model"),
    "transformers.trainer:Trainer.create_accelerator_and_postprocess": ("self",),
    "transformers.trainer:Trainer.compute_loss": ("self", "model", "inputs", "return_outputs", "num_items_in_batch"),
}


def _resolve(path: str) -> Any:
    import importlib

    module, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def check_hooks(hooks: dict[str, tuple[str, ...]] | None = None) -> None:
    """Raise ``TgsrError`` naming every hook whose leading parameters differ from what tgsr expects."""
    problems = []
    for path, expected in (HOOKS if hooks is None else hooks).items():
        try:
            params = tuple(inspect.signature(_resolve(path)).parameters)
        except (ImportError, AttributeError) as e:
            problems.append(f"{path}: missing ({e})")
            continue
        if params[:len(expected)] != expected:
            problems.append(f"{path}: parameters {params[:len(expected)]}, tgsr expects {expected}")
    if problems:
        import transformers
        import trl

        raise TgsrError(f"installed trl {trl.__version__} / transformers {transformers.__version__} changed hooks tgsr "
                        f"overrides; install {SUPPORTED}:\n  " + "\n  ".join(problems))


__all__ = ["HOOKS", "SUPPORTED", "check_hooks"]
