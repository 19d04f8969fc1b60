#!/usr/bin/env python3
"""One tgsr GRPO step of a Qwen2.5-Omni-7B-shaped thinker on one GPU, split by phase, against floors.

What it runs: tgsr's own Stage-2 trainer, ``tgsr.train.grpo.AudioGRPOTrainer`` (TRL's
GRPOTrainer with the audio carried through every pass), driven by ``trainer.train()`` for
``--warmup + --steps`` optimiser steps, with the model behind tgsr's adapter
(``tgsr.models.qwen_omni.QwenOmniLM``), tgsr's per-clip ``FeatureCache``, tgsr's
``prepare_trainable`` (vision tower frozen, optional LoRA), tgsr's paper rewards
(``answer`` + ``compaction``) and the trainer settings of the 7B recipe
(``recipes/qwen2.5-omni-7b/grpo.yaml`` through ``tgsr.train.config.load_config``: learning rate,
beta, temperature, schedule, optimiser, checkpointing); this script sets only the step's shape,
the model and the data. Nothing of the step is re-implemented here: the phases are
timed by wrapping the trainer's own methods on the instance (synchronising the device at
each boundary):

- feature extraction: ``FeatureCache`` misses (log-mel of each new clip, on the CPU; the G
  copies of a clip and every later pass share it);
- generation: ``AudioGRPOTrainer._generate_single_turn`` (transformers ``generate`` with the
  audio features, KV cache, placeholder suppression);
- old / ref log-probs: the no-grad calls of ``AudioGRPOTrainer._get_per_token_logps_and_entropies``
  inside the generation batch (TRL skips the old-policy pass when generation and optimiser
  steps line up, as at the paper's setting: it then reuses the detached policy log-probs;
  ``--num-iterations 2`` makes it run);
- loss forward / backward: ``compute_loss`` and the rest of ``training_step`` over the
  ``prompts x G / micro_batch`` micro-batches of the step;
- optimiser: gradient clipping, AdamW (``adamw_torch_fused``), scheduler and ``zero_grad``;
- logprob check: tgsr's audio guard (the first generation batch only, i.e. the warm-up step).

The model: ``recipes/qwen2.5-omni-7b/thinker_config.json`` holds the 7B thinker's shapes
(text 28 layers, hidden 3584, 28 query / 4 KV heads, FFN 18944, vocab 152064; audio encoder 32
layers, d_model 1280, 20 heads, FFN 5120, 128 mel bins, output 3584; they equal transformers'
``Qwen2_5OmniThinkerConfig`` defaults except the vision tower's width, 1280 as in the released
checkpoint, 3584 in the defaults). Weights are random bf16, made on the GPU (no hub, no disk).
The tokenizer is tgsr's offline byte-level BPE (``tgsr.models.tiny.build_tokenizer``) with the
special-token ids remapped into the config; the vocabulary and LM head keep the 7B's 152064
rows. The feature extractor is the real one (128 mels, hop 160: 25 frames/s after the conv,
750 audio tokens for 30 s).

Three substitutions, none in the compute: the reference policy of a full fine-tune is a copy
of the policy on the GPU (TRL would read it from a checkpoint folder; random weights have none);
sampled end-of-turn tokens are suppressed so that every row decodes exactly ``--new-tokens``
tokens (the paper-shape timing with "EOS ignored"); and a benchmark-only reward (a hash of each
completion's token ids) joins the paper's rewards, which are 0 for every completion of a random
model: without it the advantages, the loss gradient and AdamW's updates would all be zeros.

Memory: full fine-tuning keeps a bf16 policy, its gradients and AdamW's two states plus a bf16
reference copy (~85 GB for this model before activations). ``--mode auto`` estimates that and
uses LoRA (PEFT, tgsr's default targets) where it does not fit; an out-of-memory error in any
attempt moves down the ladder full -> LoRA -> LoRA with half the micro-batch ... and the output
says which mode ran and why. ``--text-layers N`` runs a shallower model (a smaller shape) by flag.

Ceilings are measured in the same run (METHOD.md): a large device-to-device copy (bytes read +
written over time) and an 8192^3 bf16 matrix product on random data. Floors: generation
>= max_new_tokens x decoded weight bytes / copy bandwidth (the issue's floor; a second floor
adds KV-cache reads and the prefill's FLOPs); log-prob passes and loss forward/backward >= their
FLOPs / the matmul rate (linear layers 2 FLOPs per weight per token, causal attention, the
audio encoder, backward 2x forward for trained weights and 1x for frozen ones that the
gradient must pass through, plus the recomputation of gradient checkpointing).

Variants (``--variants``, each a GRPO step of its own at the same shape, in one call): tgsr's
defaults (``base``: one prefill per prompt), ``per-row-prefill``, ``merge`` (LoRA merged for
decoding), ``compiled`` (``tgsr.compile_decoding``: static cache, decode step under CUDA graphs),
``merge+compiled``, and ``stock-trl``: TRL's own ``GRPOTrainer`` on the same model, recipe and
rewards, timed by the same phase mixin, with text prompts of the same token count (the audio
placeholders replaced by digits; stock TRL drops the audio, so this is a speed reference only).
With more than one variant the output ends with the speed-ups, tgsr's fastest variant against
stock TRL phase by phase, and the goals of issue 17 as ratios of this run.

``--smoke`` runs the same code path with a tiny config on the CPU in well under a minute
(tests/test_gpu_script.py runs it). A short table is printed last; the full record goes to
``$OUT/gpu_grpo_step.json`` when ``$OUT`` is set (or ``--json PATH``).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from transformers import TrainerCallback  # noqa: E402

from tgsr.data.signals import write_speechlike_clips  # noqa: E402
from tgsr.train.checkpointing import recompute_fractions  # noqa: E402
from tgsr.train.common import audio_encoder_modules  # noqa: E402
from tgsr.train.cost_model import (  # noqa: E402
    GiB,
    full_finetune_bytes,
    measure_ceilings,
    model_shape,
    optimizer_bytes,
    step_floors,
)
from tgsr.train.profiling import PhaseProfiler  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "recipes" / "qwen2.5-omni-7b" / "thinker_config.json"
DEFAULT_RECIPE = REPO / "recipes" / "qwen2.5-omni-7b" / "grpo.yaml"
# The paper's Stage-2 settings, used when no recipe is given (--recipe none).
PAPER_GRPO = {"temperature": 0.8, "beta": 0.04, "learning_rate": 5e-6}


try:  # run from a checkout without installing tgsr (the device machine has a bare copy)
    import tgsr  # noqa: F401
except ImportError:
    sys.path.insert(0, str(REPO / "src"))


# The tiny shape of --smoke: same classes and code path, sizes a CPU runs in seconds.
SMOKE_TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=1, vocab_size=4096,
                  rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [4, 6, 6]})
SMOKE_AUDIO = dict(d_model=64, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=128)
SMOKE_VISION = dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, fullatt_block_indexes=[0])

# Variants compared in one run (--variants); each is a full GRPO step of its own at the same shape.
VARIANTS = {
    "base": {"merge_lora": False, "share_prefill": True, "compile_decoding": False,
             "what": "tgsr defaults: one prefill per prompt, dynamic KV cache, LoRA branches in every decode step"},
    "per-row-prefill": {"merge_lora": False, "share_prefill": False, "compile_decoding": False,
                        "what": "tgsr.share_prefill=false: each of the G rows prefilled on its own"},
    "merge": {"merge_lora": True, "share_prefill": True, "compile_decoding": False,
              "what": "tgsr.merge_lora_for_generation: decode on the adapter merged into a weight copy"},
    "compiled": {"merge_lora": False, "share_prefill": True, "compile_decoding": True,
                 "what": "tgsr.compile_decoding: static KV cache, decode step under torch.compile (CUDA graphs)"},
    "merge+compiled": {"merge_lora": True, "share_prefill": True, "compile_decoding": True,
                       "what": "merged LoRA and the compiled decode step"},
    "auto-ckpt": {"merge_lora": False, "share_prefill": True, "compile_decoding": False, "auto_ckpt": True,
                  "what": "tgsr defaults with every_n_layers: auto: after the first step, checkpoint the fewest "
                          "layers that fit the measured peak (tgsr.train.checkpointing)"},
    "stock-trl": {"merge_lora": False, "share_prefill": False, "compile_decoding": False, "stock": True,
                  "what": "stock TRL GRPOTrainer (its own generation and log-prob passes; text prompts of the "
                          "same token count, no audio: a speed reference only)"},
}

QUESTION = "Which speaker talks for the longest time in total, and what do they ask for?"
CHOICES = ["the first speaker, a glass of water", "the second speaker, the bill",
           "the first speaker, the dessert menu", "the third speaker, a window seat"]


# ---------------------------------------------------------------------------- arguments

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Time one tgsr GRPO step (AudioGRPOTrainer) of a Qwen2.5-Omni-7B-shaped thinker with random "
                    "bf16 weights, split into feature extraction, generation, old/ref log-probs, loss forward/"
                    "backward and optimiser, against copy-bandwidth and matmul floors measured in the same run.",
        epilog="Paper per-GPU shape (defaults): 8 prompts x G=8, ~30 s audio (750 audio tokens), 256 new tokens "
               "with EOS ignored, micro-batch 8 (8 micro-batches per optimiser step); trainer settings from the 7B "
               "GRPO recipe (lr 5e-6, beta 0.04, temperature 0.8). --smoke: tiny config on the CPU, seconds. "
               "How to run it on a lent GPU: benchmarks/RESULTS.md.")
    p.add_argument("--smoke", action="store_true", help="tiny config, 2 prompts x G=2, 3 s audio, 8 tokens (CPU ok)")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="thinker config JSON (default: the 7B shapes)")
    p.add_argument("--recipe", default=str(DEFAULT_RECIPE),
                   help="tgsr GRPO recipe whose trainer and tgsr settings the step uses (learning rate, beta, "
                        "temperature, scheduler, LoRA, freezing ...); the step's shape, the model and the data "
                        "are set by this script; 'none': the paper's values")
    p.add_argument("--mode", choices=["auto", "full", "lora"], default="auto",
                   help="full fine-tuning (AdamW) or LoRA; auto: full if the estimate fits the card, else LoRA")
    p.add_argument("--no-fallback", action="store_true", help="fail on out-of-memory instead of moving down the ladder")
    p.add_argument("--prompts", type=int, default=None, help="prompts per step (default 8; smoke 2)")
    p.add_argument("--generations", "-G", type=int, default=None, help="completions per prompt (default 8; smoke 2)")
    p.add_argument("--audio-seconds", type=float, default=None, help="clip length (default 30; smoke 3)")
    p.add_argument("--new-tokens", type=int, default=None,
                   help="tokens generated per completion (default 256; smoke 8)")
    p.add_argument("--micro-batch", type=int, default=None,
                   help="completions per forward/backward (per_device_train_batch_size; default 8; smoke 2)")
    p.add_argument("--num-iterations", type=int, default=1,
                   help="GRPO iterations per generation batch (TRL num_iterations); >1 runs the old-policy pass")
    p.add_argument("--steps", type=int, default=None, help="timed optimiser steps (default 3; smoke 2)")
    p.add_argument("--warmup", type=int, default=1, help="untimed optimiser steps first (default 1)")
    p.add_argument("--text-layers", type=int, default=None, help="override the text decoder depth (a smaller shape)")
    p.add_argument("--lora-r", type=int, default=16, help="LoRA rank when LoRA runs (tgsr default 16)")
    p.add_argument("--no-grad-ckpt", action="store_true",
                   help="disable activation (gradient) checkpointing (on by default, as in the 7B recipe)")
    p.add_argument("--no-logprob-check", action="store_true",
                   help="skip tgsr's sampling-vs-training log-prob check in the warm-up step")
    p.add_argument("--attn", default="sdpa", help="attn_implementation (tgsr default sdpa)")
    p.add_argument("--generation-kwargs", default=None, metavar="JSON",
                   help='extra GRPOConfig.generation_kwargs, e.g. \'{"cache_implementation": "static"}\' '
                        "(the end-token suppression is kept)")
    p.add_argument("--variants", default="base",
                   help="comma-separated generation variants, each timed as its own GRPO step after the first "
                        "one's mode is settled: "
                        + "; ".join(f"{k}: {v['what']}" for k, v in VARIANTS.items())
                        + ". A variant that would not finish before --time-budget is skipped and reported")
    p.add_argument("--copy-gib", type=float, default=None,
                   help="GiB per copy buffer for the bandwidth probe (default 2)")
    p.add_argument("--matmul-n", type=int, default=None, help="matrix size for the bf16 matmul probe (default 8192)")
    p.add_argument("--time-budget", type=float, default=None,
                   help="seconds from the start after which no further timed step begins (at least one timed step "
                        "always runs; default 420 on a GPU, none with --smoke), so one device call returns results")
    p.add_argument("--report", default=None, metavar="JSON",
                   help="print the tables of a saved record (e.g. after a run was cut off) and exit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the full record here (default: $OUT/gpu_grpo_step.json)")
    # test hook: raise an out-of-memory error in the first generation of the first N attempts
    p.add_argument("--inject-oom", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    smoke = args.smoke
    for name, full, tiny in [("prompts", 8, 2), ("generations", 8, 2), ("audio_seconds", 30.0, 3.0),
                             ("new_tokens", 256, 8), ("micro_batch", 8, 2), ("steps", 3, 2),
                             ("copy_gib", 2.0, 1 / 16), ("matmul_n", 8192, 384)]:
        if getattr(args, name) is None:
            setattr(args, name, tiny if smoke else full)
    try:
        args.generation_kwargs = json.loads(args.generation_kwargs) if args.generation_kwargs else {}
    except json.JSONDecodeError as e:
        p.error(f"--generation-kwargs is not JSON: {e}")
    if not isinstance(args.generation_kwargs, dict):
        p.error("--generation-kwargs must be a JSON object")
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown or not args.variants:
        p.error(f"--variants: unknown {unknown}; choose from {', '.join(VARIANTS)}")
    rows = args.prompts * args.generations
    if rows % args.micro_batch:
        p.error(f"--micro-batch {args.micro_batch} must divide prompts x G = {rows}")
    if min(args.prompts, args.generations, args.new_tokens, args.micro_batch, args.steps) < 1 or args.warmup < 0:
        p.error("sizes and --steps must be >= 1, --warmup >= 0")
    if args.generations < 2:
        p.error("GRPO needs G >= 2")
    return args


# ---------------------------------------------------------------------------- clocks and ceilings

class Clock:
    """Host time read after the device finished its queue (METHOD.md: synchronise, then read)."""

    def __init__(self, device):
        import torch

        self.cuda = device.type == "cuda"
        self._sync = torch.cuda.synchronize if self.cuda else (lambda: None)

    def now(self) -> float:
        self._sync()
        return time.perf_counter()


# ---------------------------------------------------------------------------- the model

def thinker_config(path: str, tok, smoke: bool, text_layers: int | None):
    """The thinker config from the JSON (optionally the smoke shape or fewer layers), token ids
    set to the offline tokenizer's (``tgsr.models.tiny.omni_thinker_config``)."""
    from tgsr.models.tiny import omni_thinker_config

    data = json.loads(Path(path).read_text())
    if smoke:
        data["text_config"].update(SMOKE_TEXT)
        data["audio_config"].update(SMOKE_AUDIO)
        data["vision_config"].update(SMOKE_VISION)
    if text_layers is not None:
        data["text_config"]["num_hidden_layers"] = int(text_layers)
        data["text_config"]["max_window_layers"] = int(text_layers)
    hidden = data["text_config"]["hidden_size"]
    data["audio_config"]["output_dim"] = hidden
    data["vision_config"]["out_hidden_size"] = hidden
    return omni_thinker_config(data, tok)


def build_audio_lm(args, device, dtype, folder: Path):
    """QwenOmniLM over a randomly initialised thinker made directly on ``device``."""
    import torch
    from transformers import GenerationConfig, WhisperFeatureExtractor

    from tgsr.models.qwen_omni import QwenOmniLM
    from tgsr.models.templates import family_template
    from tgsr.models.tiny import build_tokenizer

    tok = build_tokenizer("qwen2.5-omni")
    # The released Qwen2.5-Omni feature extractor: Whisper log-mel, 128 bins, hop 160, 30 s chunks.
    fe = WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=30,
                                 n_fft=400, padding_value=0.0, return_attention_mask=True)
    config, original_ids = thinker_config(args.config, tok, args.smoke, args.text_layers)
    torch.manual_seed(args.seed)
    model_cls = QwenOmniLM.model_class()
    with torch.device(device):
        model = model_cls._from_config(config, dtype=dtype, attn_implementation=args.attn)
    model.eval()
    eos = [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")]
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=tok.pad_token_id, do_sample=False)
    # A model folder without weights: the run's record, and the `ref_model` folder tgsr asks for.
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(folder)
    tok.save_pretrained(folder)
    fe.save_pretrained(folder)
    model.config._name_or_path = str(folder)
    lm = QwenOmniLM(model, tok, fe, family_template("qwen2.5-omni"), name_or_path=str(folder))
    bad = [n for n, prm in model.named_parameters() if not torch.isfinite(prm).all()]
    if bad:
        raise RuntimeError(f"non-finite initial weights in {bad[:3]}")
    return lm, original_ids


# ---------------------------------------------------------------------------- data

def varied_reward(completions, completion_ids=None, **columns) -> list[float]:
    """Benchmark only: a deterministic value in [0, 1) per completion, from its token ids."""
    out = []
    for i, text in enumerate(completions):
        ids = completion_ids[i] if completion_ids is not None else [ord(ch) for ch in str(text)]
        h = 0
        for t in ids:
            h = (h * 1000003 + int(t) + 1) % 2147483647
        out.append((h % 1000) / 1000.0)
    return out


def grpo_rows(paths: list[str]) -> list[dict]:
    from tgsr.prompts import reasoning_question, user_messages

    prompt = user_messages(reasoning_question(QUESTION, CHOICES, "grounded"))
    return [{"id": f"bench-{i:04d}", "audio": p, "prompt": prompt, "answer": "abcd"[i % 4], "choices": list(CHOICES),
             "evidence": [[1.0, 4.0]], "task": "speaker_longest", "category": "lexical"}
            for i, p in enumerate(paths)]


def text_prompt_like(lm, row: dict, filler: str = "0") -> str:
    """A text prompt with the token count of ``row``'s audio prompt: its chat text with each audio
    placeholder replaced by a digit (stock TRL tokenizes text prompts and never sees audio; the Qwen
    pre-tokenizer makes every digit one token, so the count fits exactly)."""
    from tgsr.audio import load_audio
    from tgsr.train.datasets import clean_conversation

    enc = lm.build_inputs([lm.featurize_one(load_audio(row["audio"]))], [clean_conversation(row["prompt"])],
                          add_generation_prompt=True)
    ids = enc["input_ids"][0].tolist()
    placeholders = set(int(t) for t in lm.suppress_token_ids)
    n_audio = sum(t in placeholders for t in ids)
    head_tail = lm.tokenizer.decode([t for t in ids if t not in placeholders])
    cut = head_tail.find("<|audio_bos|>") + len("<|audio_bos|>") if "<|audio_bos|>" in head_tail else 0
    n = n_audio
    for _ in range(4):  # check the count (another tokenizer might merge the filler)
        text = head_tail[:cut] + filler * n + head_tail[cut:]
        got = len(lm.tokenizer(text, add_special_tokens=False)["input_ids"])
        if got == len(ids):
            break
        n += len(ids) - got
    else:
        raise RuntimeError(f"a text prompt of {len(ids)} tokens could not be made with filler {filler!r}")
    return text


def stock_trainer(lm, funcs, trainer_args, rows: list[dict], reference, peft_config):
    """Stock TRL ``GRPOTrainer`` on the same model, settings and rewards, only timed by phase
    (``tgsr.train.profiling.GRPOPhaseTiming``): the speed reference of the comparison."""
    from datasets import Dataset
    from trl import GRPOTrainer

    from tgsr.train.grpo import _reference_through_tgsr
    from tgsr.train.profiling import GRPOPhaseTiming

    class TimedStockGRPOTrainer(GRPOPhaseTiming, GRPOTrainer):
        pass

    prompt = text_prompt_like(lm, rows[0])
    text_rows = [{**{k: v for k, v in r.items() if k not in ("prompt", "audio")}, "prompt": prompt} for r in rows]
    with _reference_through_tgsr(reference, lm.family, trainer_args):
        return TimedStockGRPOTrainer(model=lm.model, reward_funcs=funcs, args=trainer_args,
                                     train_dataset=Dataset.from_list(text_rows), processing_class=lm.tokenizer,
                                     peft_config=peft_config)


# ---------------------------------------------------------------------------- one attempt

def with_totals(seconds: dict) -> dict:
    """The profiler's phases plus the two sums the report shows."""
    return {**seconds, "loss_fwd_bwd": seconds["loss_forward"] + seconds["backward"]}


class RunControl(TrainerCallback):
    """Benchmark control only: an injected out-of-memory error (tests the fallback ladder) and
    stopping early when the next generation cycle would pass ``--time-budget``."""

    def __init__(self, profiler: PhaseProfiler, *, inject_oom: bool, per_cycle: int, untimed_steps: int,
                 deadline: float | None):
        self.profiler, self.inject_oom, self.per_cycle = profiler, inject_oom, per_cycle
        self.untimed_steps, self.deadline = untimed_steps, deadline
        self.stopped_early = False

    def on_step_begin(self, args, state, control, **kwargs):
        if self.inject_oom:
            import torch

            self.inject_oom = False
            raise torch.OutOfMemoryError("injected out-of-memory error (--inject-oom)")

    def on_step_end(self, args, state, control, **kwargs):
        steps = self.profiler.steps
        done = len(steps)
        if (self.deadline is not None and done > self.untimed_steps and done % self.per_cycle == 0
                and time.perf_counter() + self.per_cycle * steps[-1].step_s > self.deadline):
            self.stopped_early = True
            control.should_training_stop = True


def run_attempt(args, device, dtype, work: Path, plan: dict, clock: Clock, ceilings: dict, log,
                variant: str = "base", logprob_check: bool = True) -> dict:
    import torch
    from datasets import Dataset

    from tgsr.train.common import prepare_trainable
    from tgsr.train.config import load_config, reward_spec
    from tgsr.train.grpo import AudioGRPOTrainer

    lora, micro = plan["mode"] == "lora", plan["micro_batch"]
    rows_per_step = args.prompts * args.generations
    ga = rows_per_step // micro
    total_steps = args.warmup + args.steps
    lm, original_ids = build_audio_lm(args, device, dtype, work / "model")
    shape = model_shape(lm.model)
    log(f"model: {shape['total_params'] / 1e9:.3f} B parameters (text {shape['text_params'] / 1e9:.3f} B, "
        f"audio {shape['audio_params'] / 1e9:.3f} B, vision {shape['vision_params'] / 1e9:.3f} B frozen), "
        f"{str(dtype).replace('torch.', '')} on {device}")
    eos = [int(e) for e in lm.eos_token_ids]
    extra = {
        "tgsr.model": str(work / "model"), "tgsr.ref_model": str(work / "model"), "tgsr.train_file": "in-memory",
        "tgsr.lora": lora,
        "tgsr.lora_r": args.lora_r, "tgsr.lora_alpha": 2 * args.lora_r, "tgsr.attn_implementation": args.attn,
        # the audio guard keeps every sampling logit of one generation batch: warm-up step only
        "tgsr.logprob_check_steps": 1 if (logprob_check and not args.no_logprob_check and args.warmup >= 1) else 0,
        "tgsr.merge_lora_for_generation": VARIANTS[variant]["merge_lora"],  # forced on or off, not auto
        "tgsr.share_prefill": VARIANTS[variant]["share_prefill"],
        "tgsr.compile_decoding": VARIANTS[variant]["compile_decoding"],
        "output_dir": str(work / "run"), "per_device_train_batch_size": micro, "gradient_accumulation_steps": ga,
        "num_generations": args.generations, "num_iterations": args.num_iterations,
        "max_completion_length": args.new_tokens, "max_steps": total_steps * args.num_iterations,
        "logging_steps": 1, "save_strategy": "no", "seed": args.seed, "disable_tqdm": True, "report_to": "none",
        "bf16": dtype == torch.bfloat16, "fp16": False, "activation_checkpointing": not args.no_grad_ckpt,
        **({"activation_checkpointing_kwargs": {"every_n_layers": "auto"}}
           if VARIANTS[variant].get("auto_ckpt") and not args.no_grad_ckpt else {}),
        "dataloader_num_workers": 0, "log_completions": False,
        # EOS ignored: end tokens join the suppressed placeholders, so every row decodes the full length
        "generation_kwargs": {**args.generation_kwargs,
                              "suppress_tokens": eos},
    }
    if device.type == "cpu":
        extra["use_cpu"] = True
    recipe = None if args.recipe.lower() == "none" else args.recipe
    if recipe is None:
        extra.update(PAPER_GRPO)
    trainer_args, tg = load_config("grpo", recipe, [], extra=extra)
    _, peft_config, params = prepare_trainable(lm.model, tg, trainer_args, wrap_lora=False)
    funcs, weights = reward_spec(tg.rewards)
    # A random model's gibberish scores 0 on the paper's rewards for every completion: zero
    # advantages, an all-zero loss gradient, and backward/AdamW timed on zeros. A benchmark-only
    # reward (a hash of each completion's token ids) keeps the group advantages non-zero.
    funcs, weights = list(funcs) + [varied_reward], list(weights) + [1.0]
    trainer_args.reward_weights = weights
    n_clips = args.prompts * total_steps  # a fresh clip per prompt per step: a cold feature cache, as in an epoch
    with clock_phase(clock) as t_data:
        paths = write_speechlike_clips(work / "audio", n_clips, args.audio_seconds, args.seed)
    log(f"wrote {n_clips} clips of {args.audio_seconds:g} s in {t_data():.1f} s")
    policy = lm.model
    # The reference policy of a full fine-tune: random weights have no checkpoint folder, so the
    # trainer gets an identical copy of the policy (same compute as a reference read from disk).
    reference = copy.deepcopy(policy) if peft_config is None and trainer_args.beta != 0.0 else None
    if VARIANTS[variant].get("stock"):
        trainer = stock_trainer(lm, funcs, trainer_args, grpo_rows(paths), reference, peft_config)
    else:
        trainer = AudioGRPOTrainer(lm, funcs, trainer_args, Dataset.from_list(grpo_rows(paths)),
                                   ref_model=reference, peft_config=peft_config,
                                   feature_cache=True, logprob_check_steps=tg.logprob_check_steps,
                                   merge_lora_for_generation=tg.merge_lora_for_generation,
                                   share_prefill=tg.share_prefill, compile_decoding=tg.compile_decoding,
                                   auto_checkpointing=tg.auto_checkpointing, logprob_check_tol=float("inf"))
    generate_every = trainer.args.steps_per_generation * trainer.num_iterations
    old_expected = trainer.args.gradient_accumulation_steps % generate_every != 0
    ckpt = bool(getattr(trainer.args, "activation_checkpointing", None) or trainer.args.gradient_checkpointing)
    prof = trainer.profile(PhaseProfiler(device))
    control = RunControl(prof, inject_oom=plan.get("inject_oom", False), per_cycle=trainer.num_iterations,
                         untimed_steps=args.warmup * trainer.num_iterations, deadline=args.deadline)
    trainer.add_callback(control)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    lora_params = sum(p.numel() for n, p in trainer.model.named_parameters() if "lora_" in n)
    trainable_audio = any(p.requires_grad for _, tower in audio_encoder_modules(
        trainer.accelerator.unwrap_model(trainer.model)) for p in tower.parameters())
    log(f"variant {variant}: {VARIANTS[variant]['what']}")
    log(f"trainer: mode={plan['mode']} micro_batch={micro} grad_accum={ga} steps_per_generation="
        f"{trainer.args.steps_per_generation} num_iterations={trainer.num_iterations} old_pass={old_expected} "
        f"ref={'copy of the policy' if trainer.ref_model is not None else 'adapter disabled'} "
        f"trainable={trainable / 1e6:.1f} M grad_ckpt={ckpt} lr={trainer.args.learning_rate:g} beta={trainer.beta:g} "
        f"temperature={trainer.temperature:g} recipe={recipe}")
    t0 = clock.now()
    trainer.train()
    train_s = clock.now() - t0
    opt_bytes = optimizer_bytes(trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer")
                                else trainer.optimizer)
    # Group optimiser steps into generation cycles (one generation + num_iterations steps).
    cycles = []
    per = trainer.num_iterations
    for i in range(0, len(prof.steps) - len(prof.steps) % per, per):
        group = [with_totals(st.seconds()) for st in prof.steps[i:i + per]]
        merged = {k: sum(g[k] for g in group) for k in group[0]}
        gens = [g for st in prof.steps[i:i + per] for g in st.generations]
        peaks = {}
        for st in prof.steps[i:i + per]:
            for k, v in st.peaks_gib.items():
                peaks[k] = max(peaks.get(k, 0.0), v)
        cycles.append({"phases": merged, "generations": gens, "peaks_gib": peaks})
    timed = cycles[args.warmup:]
    if not timed:
        raise RuntimeError(f"no timed steps recorded ({len(prof.steps)} optimiser steps seen)")
    med = {k: statistics.median(c["phases"][k] for c in timed) for k in timed[0]["phases"]}
    spread = {k: (min(c["phases"][k] for c in timed), max(c["phases"][k] for c in timed)) for k in med}
    gens = timed[0]["generations"]
    comp = [c for g in gens for c in g["completion_tokens"]]
    eos_ignored = bool(comp) and all(c == args.new_tokens for c in comp)
    audio_frames = int(round(args.audio_seconds * 16000 / 160)) // 2  # encoder frames after the stride-2 conv
    # after training: what the timed steps checkpointed (every_n_layers: auto plans after the first step)
    recompute = recompute_fractions(trainer.accelerator.unwrap_model(trainer.model)) if ckpt \
        else {"text": 0.0, "audio": 0.0}
    planner = getattr(trainer, "checkpoint_planner", None)
    fl = step_floors(shape, gens, ceilings, elt_bytes=torch.finfo(dtype).bits // 8, lora=lora,
                     recompute=recompute["text"], audio_recompute=recompute["audio"],
                     audio_frames_per_row=audio_frames, trainable_audio=trainable_audio, lora_params=lora_params,
                     opt_bytes=opt_bytes, generations_per_prompt=args.generations)
    checks = list(getattr(trainer, "logprob_checks", []))  # stock TRL has no audio guard
    result = {
        "variant": variant, "variant_what": VARIANTS[variant]["what"],
        "generation_kwargs": {k: v for k, v in trainer_args.generation_kwargs.items() if k != "suppress_tokens"},
        "generation_merged_lora": getattr(trainer, "generation_merged_lora", None),
        "mode": plan["mode"], "reason": plan["reason"], "micro_batch": micro, "grad_accum": ga,
        "num_iterations": trainer.num_iterations, "old_pass_runs": old_expected,
        "reference": "copy of the policy" if trainer.ref_model is not None else "LoRA adapter disabled",
        "grad_ckpt": ckpt, "recompute_fraction": recompute,
        "checkpoint_plan": planner.plan.summary() if planner is not None and planner.plan is not None else None,
        "trainable_params": trainable, "recipe": recipe,
        "hyperparameters": {"learning_rate": trainer.args.learning_rate, "beta": trainer.beta,
                            "temperature": trainer.temperature,
                            "lr_scheduler_type": _name(trainer.args.lr_scheduler_type),
                            "optim": _name(trainer.args.optim), "max_grad_norm": trainer.args.max_grad_norm,
                            "loss_type": trainer.args.loss_type},
        "lora_params": lora_params, "trainable_audio_encoder": trainable_audio, "params_summary": params,
        "shape": shape, "config_token_ids_remapped_from": original_ids, "eos_ignored": eos_ignored,
        "median_s": med, "min_max_s": spread, "per_cycle": [c["phases"] for c in cycles],
        "peaks_gib": timed[-1]["peaks_gib"], "timed_steps": len(timed), "stopped_early": control.stopped_early,
        "floors": fl, "logprob_checks": checks, "train_s": train_s,
        "feature_cache": trainer.feature_cache.stats() if hasattr(trainer, "feature_cache") else None,
        "tokens_per_s_generation": fl["completion_tokens_total"] / med["generation"] if med["generation"] else None,
    }
    return result


def _name(value) -> str:
    return str(getattr(value, "value", value))


@contextlib.contextmanager
def clock_phase(clock: Clock):
    t0 = clock.now()
    box = {}
    yield lambda: box.setdefault("t", clock.now() - t0)


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def plans_for(args, shape_estimate: float | None, total_mem: float | None) -> list[dict]:
    """The attempts in order: full fine-tuning where asked for (auto: where the estimate fits),
    then LoRA with the micro-batch halved after each out-of-memory error (--no-fallback: the
    first attempt only)."""
    reason = "requested"
    full = args.mode == "full"
    if args.mode == "auto":
        full = True
        reason = "auto"
        if shape_estimate is not None and total_mem is not None:
            # ~12 GiB and 10% of the card kept for activations, KV cache and the allocator's slack
            full = shape_estimate + 12 * GiB < 0.9 * total_mem
            reason = (f"auto: full fine-tuning needs ~{shape_estimate / GiB:.0f} GiB before activations (bf16 policy"
                      f" + reference + grads + AdamW states) on a {total_mem / GiB:.0f} GiB card")
    ladder = [{"mode": "full", "micro_batch": args.micro_batch, "reason": reason}] if full else []
    rows = args.prompts * args.generations
    mb = args.micro_batch
    while mb >= 1:
        ladder.append({"mode": "lora", "micro_batch": mb,
                       "reason": reason if not full else "fallback after out-of-memory in full fine-tuning"})
        nxt = mb // 2
        while nxt > 1 and rows % nxt:
            nxt -= 1
        mb = nxt
    return ladder[:1] if args.no_fallback else ladder


# ---------------------------------------------------------------------------- report

def fmt_s(x):
    return "-" if x is None else f"{x:.3f}"


def fmt_rate(x: float, unit: str) -> str:
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M")):
        if x >= scale:
            return f"{x / scale:.2f} {prefix}{unit}"
    return f"{x:.0f} {unit}"


def ckpt_text(res: dict) -> str:
    if not res["grad_ckpt"]:
        return "off"
    rf = res["recompute_fraction"]
    out = f"on ({rf['text']:.0%} of decoder layers, {rf['audio']:.0%} of audio-encoder layers checkpointed"
    plan = res.get("checkpoint_plan")
    if plan:
        out += f"; auto plan: {plan['checkpointed']}, predicted peak {plan['predicted_peak'] / 2 ** 30:.1f} of " \
               f"{plan['usable'] / 2 ** 30:.1f} GiB usable, {plan['reason']}"
    return out + ")"


def table(res: dict, ceilings: dict, env: dict, args) -> str:
    med, fl = res["median_s"], res["floors"]
    bw, rate = ceilings["copy_bandwidth_Bps"], ceilings["matmul_flops"]
    n_timed = res["timed_steps"]
    lines = [
        f"card: {env['device_name']} | torch {env['torch']} | transformers {env['transformers']} | trl {env['trl']}",
        f"mode: {res['mode']} ({res['reason']}); micro-batch {res['micro_batch']} x {res['grad_accum']} accumulation; "
        f"grad ckpt {ckpt_text(res)}; reference: {res['reference']}",
        f"variant: {res['variant']} ({res['variant_what']}); generation on merged LoRA: "
        f"{res['generation_merged_lora']}" + (f"; generation_kwargs {json.dumps(res['generation_kwargs'])}"
                                              if res["generation_kwargs"] else ""),
        f"step: {args.prompts} prompts x G={args.generations}, {args.audio_seconds:g} s audio, "
        f"{fl['prompt_tokens_mean']:.0f} prompt tokens (mean), {fl['new_tokens']} new tokens "
        f"({'EOS ignored: every row full length' if res['eos_ignored'] else 'WARNING: some rows ended early'}); "
        f"median of {n_timed} steps after {args.warmup} warm-up"
        + (" (stopped early to fit --time-budget)" if res["stopped_early"] else ""),
        f"ceilings: copy {fmt_rate(bw, 'B/s')} (read+write), {ceilings['matmul_dtype']} matmul "
        f"{fmt_rate(rate, 'FLOP/s')} ({ceilings['matmul_n']}^3, random data)",
        "",
        f"{'phase':<26}{'median s':>10}{'floor s':>10}{'x floor':>9}  floor basis",
    ]

    def row(name, t, floor, basis):
        ratio = f"{t / floor:.1f}" if floor and t else "-"
        lines.append(f"{name:<26}{fmt_s(t):>10}{fmt_s(floor):>10}{ratio:>9}  {basis}")

    row("feature extraction (CPU)", med["features"], None, f"log-mel of {args.prompts} new clips, CPU")
    row("generation", med["generation"], fl["generation_floor_s"],
        f"{fl['new_tokens']} x {fl['decoded_weight_bytes'] / 1e9:.2f} GB weights / copy bw "
        f"(+KV+prefill: {fl['generation_floor_with_kv_prefill_s']:.3f} s)")
    if res["old_pass_runs"]:
        row("old log-probs", med["old_logprobs"], fl["logprob_pass_floor_s"], "forward FLOPs / matmul rate")
    else:
        lines.append(f"{'old log-probs':<26}{'skipped':>10}{'':>10}{'':>9}  on-policy: TRL reuses the detached "
                     "policy log-probs (--num-iterations 2 runs it)")
    row("ref log-probs", med["ref_logprobs"], fl["logprob_pass_floor_s"], "forward FLOPs / matmul rate")
    row("loss forward", med["loss_forward"], None, "")
    row("loss backward", med["backward"], None, "")
    row("loss fwd+bwd", med["loss_fwd_bwd"], fl["loss_fwd_bwd_floor_s"],
        f"{fl['loss_fwd_bwd_flops'] / 1e12:.3g} TFLOP / matmul rate"
        + (" (incl. ckpt recompute)" if res["grad_ckpt"] else ""))
    row("optimizer (AdamW)", med["optimizer"], fl.get("optimizer_floor_s"), "bytes moved / copy bw")
    row("rewards", med["rewards"], None, "")
    row("other", med["other"], None, "clipping, scheduler, zero_grad, tokenising, logging")
    if med.get("logprob_check"):
        row("logprob check", med["logprob_check"], None, "tgsr audio guard")
    peak = max(res["peaks_gib"].values(), default=0.0)
    row("step total", med["step"], None, f"peak {peak:.1f} GiB allocated" if peak else "")
    hp = res["hyperparameters"]
    lines.append(f"recipe: {res['recipe'] or 'none (paper values)'}: lr {hp['learning_rate']:g}, beta {hp['beta']:g}, "
                 f"temperature {hp['temperature']:g}, {hp['optim']}, loss {hp['loss_type']}")
    peaks = res["peaks_gib"]
    if any(peaks.values()):
        lines.append("peak GiB allocated: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(peaks.items())))
    if res["logprob_checks"]:
        c = res["logprob_checks"][0]
        lines.append(f"audio guard (warm-up step): training pass vs sampling log-probs, max |diff| {c['max']:.3g}, "
                     f"mean {c['mean']:.3g} over {c['tokens']:.0f} tokens")
    if res["tokens_per_s_generation"]:
        lines.append(f"generation throughput: {res['tokens_per_s_generation']:.0f} tokens/s over "
                     f"{fl['rows']} rows")
    return "\n".join(lines)


COMPARED_PHASES = ("generation", "old_logprobs", "ref_logprobs", "rewards", "loss_forward", "backward", "optimizer",
                   "other", "step")


def comparison(variants: dict) -> str:
    """One line per variant with its speed-up over the first; then tgsr's fastest variant against stock
    TRL, phase by phase, and the issue's goals as ratios of this run."""
    names = list(variants)
    ok = {n: v for n, v in variants.items() if "median_s" in v}
    ran = next(iter(ok.values()), {})
    lines = [f"variants ({ran.get('mode')}, micro-batch {ran.get('micro_batch')}; speed-up against "
             f"{names[0] if names else '-'}, same card, same run):",
             f"{'variant':<16}{'generation s':>13}{'x floor':>9}{'ref s':>8}{'loss f+b s':>11}{'step s':>9}"
             f"{'gen speed-up':>14}{'step speed-up':>15}"]
    first = ok.get(names[0]) if names else None
    for n in names:
        v = variants[n]
        if "median_s" not in v:
            lines.append(f"{n:<16}{v.get('skipped') or v.get('error') or 'not run'}")
            continue
        med, fl = v["median_s"], v["floors"]
        gen_x = med["generation"] / fl["generation_floor_s"] if fl["generation_floor_s"] else float("nan")
        su = (f"{first['median_s']['generation'] / med['generation']:.2f}x" if first else "-")
        ssu = (f"{first['median_s']['step'] / med['step']:.2f}x" if first else "-")
        lines.append(f"{n:<16}{med['generation']:>13.3f}{gen_x:>9.1f}{med['ref_logprobs']:>8.3f}"
                     f"{med['loss_fwd_bwd']:>11.3f}{med['step']:>9.3f}{su:>14}{ssu:>15}")
    tgsr_runs = {n: v for n, v in ok.items() if not VARIANTS.get(n, {}).get("stock")}
    stock = next((v for n, v in ok.items() if VARIANTS.get(n, {}).get("stock")), None)
    if tgsr_runs:
        best_name = min(tgsr_runs, key=lambda n: tgsr_runs[n]["median_s"]["step"])
        best = tgsr_runs[best_name]
        lines += compile_lines(ok)
        lines += ["", f"goals, tgsr {best_name}:"] + goal_lines(best, stock)
        if stock is not None:
            lines += ["", f"tgsr {best_name} / stock TRL, by phase (seconds; ratio < 1: tgsr faster):",
                      f"{'phase':<14}{'tgsr s':>10}{'stock s':>10}{'tgsr/stock':>12}"]
            for ph in COMPARED_PHASES:
                t, r = best["median_s"].get(ph, 0.0), stock["median_s"].get(ph, 0.0)
                ratio = f"{t / r:.2f}" if r > 0 else "-"
                lines.append(f"{ph:<14}{t:>10.3f}{r:>10.3f}{ratio:>12}")
    return "\n".join(lines)


def compile_lines(ok: dict) -> list[str]:
    """Compiled decoding: its one-off cost against its saving per step. The cost is the compiled variant's
    extra warm-up generation time (warm-up minus its timed median), less the same difference of its eager
    twin (first-step costs both pay); the saving is the eager median minus the compiled one."""
    out = []
    for name, run in ok.items():
        if not VARIANTS.get(name, {}).get("compile_decoding"):
            continue
        twin = next((n for n, v in ok.items() if not VARIANTS.get(n, {}).get("compile_decoding")
                     and not VARIANTS.get(n, {}).get("stock")
                     and VARIANTS.get(n, {}).get("merge_lora") == VARIANTS[name]["merge_lora"]), None)
        if twin is None or len(run["per_cycle"]) <= run["timed_steps"]:
            out.append(f"  {name}: compile cost not measured (needs an eager twin and a warm-up step)")
            continue

        def warm_extra(v):
            return v["per_cycle"][0]["generation"] - v["median_s"]["generation"]
        cost = warm_extra(run) - warm_extra(ok[twin])
        saving = ok[twin]["median_s"]["generation"] - run["median_s"]["generation"]
        even = f"pays back after {cost / saving:.1f} steps" if saving > 0 else "no saving per step: never pays back"
        out.append(f"  {name} vs {twin}: compilation {cost:.1f} s once (per cache length), generation "
                   f"{saving:+.3f} s per step saved; {even}")
    return ["", "compiled decoding, one-off cost vs per-step saving:"] + out if out else []


def goal_lines(run: dict, stock: dict | None) -> list[str]:
    """Generation vs its floor with KV reads and prefill (goal <= 2x), the step vs the sum of its phase
    floors (goal <= 1.5x), the step vs stock TRL's (goal <= 0.6x)."""
    med, fl = run["median_s"], run["floors"]
    gen_floor = fl["generation_floor_with_kv_prefill_s"]
    nograd_passes = int(med.get("ref_logprobs", 0) > 0) + int(med.get("old_logprobs", 0) > 0)
    floors = (gen_floor + fl["loss_fwd_bwd_floor_s"] + fl.get("optimizer_floor_s", 0.0)
              + fl["logprob_pass_floor_s"] * nograd_passes)
    out = [f"  generation / floor with KV + prefill: {med['generation'] / gen_floor:.2f}x (goal <= 2)"
           if gen_floor else "  generation floor: not measured",
           f"  step / sum of phase floors: {med['step'] / floors:.2f}x (goal <= 1.5)" if floors else
           "  phase floors: not measured"]
    if stock is not None:
        out.append(f"  step / stock TRL step: {med['step'] / stock['median_s']['step']:.2f}x (goal <= 0.6)")
    else:
        out.append("  step / stock TRL step: not run (add stock-trl to --variants)")
    return out


def environment(device) -> dict:
    import torch
    import transformers

    env = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
           "device": str(device)}
    for name in ("trl", "peft", "accelerate", "datasets"):
        try:
            env[name] = __import__(name).__version__
        except Exception as e:  # reported, not fatal here: the trainer import fails later with the cause
            env[name] = f"unavailable ({type(e).__name__})"
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(device_name=props.name, capability=f"{props.major}.{props.minor}",
                   total_memory_gib=props.total_memory / GiB, multiprocessors=props.multi_processor_count,
                   cuda=torch.version.cuda)
    else:
        env.update(device_name=f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                               f"{torch.get_num_threads()} torch threads)")
    return env


def print_report(path: str) -> int:
    """The tables of a saved record: each variant that ran, then the comparison."""
    rec = json.loads(Path(path).read_text())
    variants = rec.get("variants") or ({"base": rec["result"]} if rec.get("result") else {})
    args = argparse.Namespace(**{**rec["args"], "variants": list(variants) or rec["args"].get("variants", [])})
    for res in variants.values():
        if "median_s" in res:
            print()
            print(table(res, rec["ceilings"], rec["env"], args))
    ran = [v for v in variants.values() if "median_s" in v]
    if not ran:
        print(f"{path}: no variant finished; attempts: {rec.get('attempts')}")
        return 1
    if len(variants) > 1:
        print()
        print(comparison(variants))
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.report:
        return print_report(args.report)
    t_start = time.perf_counter()
    import torch

    if not torch.cuda.is_available() and not args.smoke:
        print("error: no CUDA device; this benchmark needs a GPU (use --smoke for the CPU check of the code path)",
              file=sys.stderr)
        return 2
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.time_budget is None and device.type == "cuda" and not args.smoke:
        args.time_budget = 420.0
    args.deadline = t_start + args.time_budget if args.time_budget else None
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    log = lambda msg: print(f"[gpu_grpo_step] {msg}", flush=True)  # noqa: E731
    env = environment(device)
    log(f"device: {env['device_name']}; torch {env['torch']}, transformers {env['transformers']}, trl {env['trl']}, "
        f"peft {env['peft']}")
    clock = Clock(device)
    with clock_phase(clock) as t_ceil:
        ceilings = measure_ceilings(device, args.copy_gib, args.matmul_n, dtype)
    log(f"ceilings ({t_ceil():.1f} s): copy {fmt_rate(ceilings['copy_bandwidth_Bps'], 'B/s')}, matmul "
        f"{fmt_rate(ceilings['matmul_flops'], 'FLOP/s')}")

    estimate = total_mem = None
    if device.type == "cuda":
        from transformers import Qwen2_5OmniThinkerForConditionalGeneration

        from tgsr.models.tiny import build_tokenizer

        cfg, _ = thinker_config(args.config, build_tokenizer("qwen2.5-omni"), args.smoke, args.text_layers)
        with torch.device("meta"):
            meta_shape = model_shape(Qwen2_5OmniThinkerForConditionalGeneration._from_config(cfg))
        estimate = full_finetune_bytes(meta_shape, 2, 4)
        total_mem = torch.cuda.get_device_properties(device).total_memory
    ladder = plans_for(args, estimate, total_mem)
    attempts, variants = [], {}
    record = {"env": env, "ceilings": ceilings, "attempts": attempts, "variants": variants, "args": vars(args),
              "smoke": args.smoke}
    with tempfile.TemporaryDirectory(prefix="tgsr-gpu-grpo-") as tmp:
        # The first variant settles the mode: down the out-of-memory ladder until one attempt runs.
        first = args.variants[0]
        result = None
        for i, plan in enumerate(ladder):
            plan = {**plan, "inject_oom": i < args.inject_oom}
            log(f"attempt {i + 1}: variant {first} mode={plan['mode']} micro_batch={plan['micro_batch']} "
                f"({plan['reason']})")
            try:
                t_var = time.perf_counter()
                result = run_attempt(args, device, dtype, Path(tmp) / f"attempt{i + 1}", plan, clock, ceilings, log,
                                     variant=first, logprob_check=True)
                result["wall_s"] = time.perf_counter() - t_var
                attempts.append({**plan, "outcome": "ok"})
                break
            except Exception as e:  # noqa: BLE001 - out-of-memory moves down the ladder, anything else stops
                oom = _is_oom(e)
                attempts.append({**plan, "outcome": "out of memory" if oom else f"error: {type(e).__name__}: {e}"})
                if not oom or args.no_fallback:
                    traceback.print_exc()
                    _write_json(args, record)
                    return 1
                log(f"out of memory in attempt {i + 1} ({plan['mode']}, micro-batch {plan['micro_batch']}); "
                    "moving down the ladder")
            finally:
                _free(device)
        if result is None:
            log("every attempt ran out of memory; try --text-layers N for a smaller shape")
            _write_json(args, record)
            return 1
        if len(attempts) > 1:
            result["reason"] = (f"{result['reason']}; fell back after out-of-memory in: "
                                + ", ".join(f"{a['mode']}/mb{a['micro_batch']}" for a in attempts[:-1]))
        record["result"] = variants[first] = result
        path = _write_json(args, record)
        if path:
            log(f"full record: {path}")
        print()
        print(table(result, ceilings, env, args), flush=True)
        settled = {k: v for k, v in attempts[-1].items() if k in ("mode", "micro_batch", "reason")}
        # Later variants: same mode and micro-batch, no audio guard (it was checked once), skipped
        # when the last variant's wall time no longer fits before the deadline.
        last_wall = result["wall_s"]
        for name in args.variants[1:]:
            if name in variants:
                continue
            left = args.deadline - time.perf_counter() if args.deadline else None
            compiles = VARIANTS.get(name, {}).get("compile_decoding")
            need = 1.15 * last_wall + (90 if compiles else 0)  # compilation of the decode step
            if left is not None and left < need:
                variants[name] = {"skipped": f"skipped: {left:.0f} s left before --time-budget, ~{need:.0f} s needed"}
                log(f"variant {name}: {variants[name]['skipped']}")
                continue
            try:
                t_var = time.perf_counter()
                res = run_attempt(args, device, dtype, Path(tmp) / name.replace("+", "_"),
                                  {**settled, "inject_oom": False}, clock, ceilings, log,
                                  variant=name, logprob_check=False)
                res["wall_s"] = last_wall = time.perf_counter() - t_var
                variants[name] = res
                print()
                print(table(res, ceilings, env, args), flush=True)
            except Exception as e:  # noqa: BLE001 - one variant failing must not lose the others
                traceback.print_exc()
                variants[name] = {"error": f"error: {type(e).__name__}: {str(e)[:300]}"}
                log(f"variant {name} failed: {variants[name]['error']}")
            finally:
                _free(device)
                _write_json(args, record)
    if len(args.variants) > 1:
        path = _write_json(args, record)
        if path:
            log(f"full record: {path}")
        print()
        print(comparison(variants))
    return 0


def _free(device) -> None:
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _write_json(args, record: dict) -> str | None:
    path = args.json or (os.path.join(os.environ["OUT"], "gpu_grpo_step.json") if os.environ.get("OUT") else None)
    if not path:
        return None
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(record, indent=2, default=str) + "\n")
    return path


if __name__ == "__main__":
    sys.exit(main())
