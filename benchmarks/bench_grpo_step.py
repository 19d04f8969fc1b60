"""GRPO step-time breakdown for a tiny model (default Qwen2.5-Omni): feature and encoder caching vs per-copy baselines.

One optimizer step = 8 prompts x G=8 completions (64 rows), 40 new tokens, beta 0.04 (so a
reference pass runs), one CPU thread, timed in CPU seconds of the process (robust on a shared
machine) by the trainer's own profiler (``tgsr.train.profiling``). Phases are exclusive (a
phase's time excludes the phases nested in it):

  features   reading the clip + log-mel extraction (``FeatureCache.get``; a lookup when cached)
  encoder    the audio tower's forward passes (policy and reference; a memo lookup when cached)
  generate   sampling the 64 completions
  score      reward functions
  logprobs   no-grad log-prob passes (reference policy; old policy when it is needed)
  loss_fwd   the policy forward of the loss
  backward   backward pass and optimizer step (the rest of the step)

Modes (each runs the same steps with the same seed):

  stock      baseline: the family's stock featurisation for every copy and every pass, i.e.
             what a trainer that re-runs the processor per sample gets: the Whisper feature
             extractor called as the official Qwen2.5-Omni / Qwen2-Audio processors call it
             (``padding="max_length"``: every clip padded to the 30 s window,
             ``return_attention_mask=True``); AF3: its adapter's per-window call, which is the same
  tgsr       baseline: tgsr's adapter featurises every copy and every pass (own length for
             Omni; for Qwen2-Audio and AF3 this is the same work as ``stock``)
  cached     features once per clip (``FeatureCache``), shared by its G rows and every pass
  cached+enc ``--encoder-cache``: also the frozen audio encoder's outputs once per clip per
             step (``tgsr.train.encoder_cache``). The encoder is then frozen in *every* mode,
             so all modes do the same work apart from what is cached.

    .venv/bin/python benchmarks/bench_grpo_step.py [--steps 3] [--seconds 3] [--size xs] [--hop 320]
        [--family qwen2.5-omni] [--baseline both|stock|tgsr] [--encoder-cache]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

# CPU time of this process: with one torch thread it is the work done, and unlike wall time it
# does not grow when other jobs share the machine's cores.
PHASES = ("features", "encoder", "generate", "score", "logprobs", "loss_fwd", "backward")


def bench_phases(step) -> dict:
    """This table's phases from the trainer's own profile of one step (``tgsr.train.profiling``)."""
    ph = step.phases
    row = {"features": ph.get("features", 0.0), "encoder": ph.get("encoder", 0.0),
           "generate": ph.get("generation", 0.0), "score": ph.get("rewards", 0.0),
           "logprobs": sum(ph.get(k, 0.0) for k in ("old_logprobs", "ref_logprobs", "logprob_check")),
           "loss_fwd": ph.get("loss_forward", 0.0)}
    row["backward"] = step.step_s - sum(row.values())  # backward, optimiser and the rest of the step
    row["total"] = step.step_s
    return row


def stock_featurizer(lm):
    """Per-clip features exactly as the family's official processor computes them."""
    if lm.family == "audio-flamingo-3":
        return lm.featurize_one  # the AF3 adapter already makes the processor's call (30 s windows, max_length)
    fe = lm.feature_extractor

    def featurize(audio):
        # Qwen2_5OmniProcessor / Qwen2AudioProcessor._process_audio: sampling_rate, return_attention_mask=True,
        # padding="max_length" (truncation at the window is the extractor's default).
        out = fe([audio], sampling_rate=fe.sampling_rate, padding="max_length", return_attention_mask=True,
                 return_tensors="pt")
        return {"input_features": out["input_features"].float(), lm.audio_keys[1]: out["attention_mask"].long()}

    return featurize


MODES = {  # name -> (feature cache, featuriser, encoder cache)
    "stock": (False, "stock", False),
    "tgsr": (False, "tgsr", False),
    "cached": (True, "tgsr", False),
    "cached+enc": (True, "tgsr", True),
}


def run_mode(model_dir: Path, rows: list[dict], out: Path, *, mode: str, freeze_encoder: bool, steps: int,
             new_tokens: int) -> tuple[list[dict], int, int]:
    from datasets import Dataset

    from tgsr.rewards import build_reward_funcs
    from tgsr.train.common import audio_encoder_modules, freeze, load_audio_lm
    from tgsr.train.config import load_config
    from tgsr.train.grpo import AudioGRPOTrainer
    from tgsr.train.profiling import PhaseProfiler

    feature_cache, featuriser, encoder_cache = MODES[mode]
    args, tg = load_config("grpo", None, [], extra={
        "tgsr.model": str(model_dir), "tgsr.train_file": "unused", "output_dir": str(out),
        "per_device_train_batch_size": 64, "num_generations": 8, "max_completion_length": new_tokens,
        "generation_kwargs": {"min_new_tokens": new_tokens}, "temperature": 0.8, "beta": 0.04,
        "learning_rate": 1e-5, "max_steps": steps + 1, "logging_steps": 1, "save_strategy": "no",
        "seed": 0, "disable_tqdm": True})
    lm = load_audio_lm(str(model_dir), tg, args)
    if freeze_encoder:
        freeze(audio_encoder_modules(lm.model))
    funcs, weights = build_reward_funcs(tg.rewards)
    args.reward_weights = weights
    trainer = AudioGRPOTrainer(lm, funcs, args, Dataset.from_list(rows), ref_model=str(model_dir),
                               feature_cache=feature_cache, logprob_check_steps=0, encoder_cache=encoder_cache,
                               featurize=stock_featurizer(lm) if featuriser == "stock" else None)
    if freeze_encoder and trainer.ref_model is not None:
        trainer.ref_model.requires_grad_(False)  # as the trainer does with encoder caching on
    prof = trainer.profile(PhaseProfiler(clock=time.process_time))
    trainer.train()
    fc = trainer.feature_cache
    encodes = sum(c.misses for c in trainer.encoder_caches)
    # the first step pays one-off costs (allocations, first featurisations)
    return [bench_phases(st) for st in prof.steps[1:]], fc.misses, encodes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=3, help="timed steps per mode and round (after a warm-up step)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds, each running every mode")
    ap.add_argument("--seconds", type=float, default=3.0, help="clip length in seconds")
    ap.add_argument("--size", default="xs", choices=("xs", "s", "m"), help="tiny model size")
    ap.add_argument("--new-tokens", type=int, default=40)
    ap.add_argument("--hop", type=int, default=320, choices=(160, 320),
                    help="log-mel hop of the tiny model: 320 (tgsr's tiny default) or 160 (the real models')")
    ap.add_argument("--family", default="qwen2.5-omni",
                    choices=("qwen2.5-omni", "qwen2-audio", "audio-flamingo-3"))
    ap.add_argument("--baseline", default="both", choices=("both", "stock", "tgsr"),
                    help="uncached baseline(s): the stock processor's per-copy featurisation, tgsr's, or both")
    ap.add_argument("--encoder-cache", action="store_true",
                    help="also run cached+enc (frozen encoder outputs once per clip per step); freezes the "
                         "encoder in every mode")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from tgsr.data.signals import write_speechlike_clips
    from tgsr.models import load_model
    from tgsr.models.tiny import build_tiny
    from tgsr.prompts import reasoning_question, user_messages

    baselines = ["stock", "tgsr"] if args.baseline == "both" else [args.baseline]
    modes = baselines + ["cached"] + (["cached+enc"] if args.encoder_cache else [])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = build_tiny(args.family, args.size, tmp / "model", seed=0, hop_length=args.hop)
        # A fresh clip for every prompt of every step, as within an epoch: the cached modes pay one
        # featurisation (and one encoder run) per clip and step, never a free ride on an earlier step.
        clips = write_speechlike_clips(tmp / "clips", 8 * (args.steps + 1), args.seconds)
        rows = [{"id": f"q{i}", "audio": str(p), "answer": "a", "choices": ["high", "low"],
                 "prompt": user_messages(reasoning_question("Is the tone high or low?", ["high", "low"]))}
                for i, p in enumerate(clips)]
        # The stock features must describe the same audio as tgsr's: compare their valid frames.
        from tgsr.audio import load_audio

        lm = load_model(model_dir)
        wav = load_audio(clips[0])
        ours, stock = lm.featurize_one(wav), stock_featurizer(lm)(wav)
        n = int(ours[lm.audio_keys[1]].sum())
        feat_diff = (ours["input_features"][..., :n] - stock["input_features"][..., :n]).abs().max().item()
        stock_frames, ours_frames = stock["input_features"].shape[-1], ours["input_features"].shape[-1]
        del lm
        steps: dict[str, list[dict]] = {m: [] for m in modes}
        featurisations, encodes = {}, {}
        # Alternate the modes so that load from other jobs on a shared machine hits all alike.
        for r in range(args.rounds):
            for mode in modes:
                rows_, n_feat, n_enc = run_mode(model_dir, rows, tmp / f"out{r}{mode}", mode=mode,
                                                freeze_encoder=args.encoder_cache, steps=args.steps,
                                                new_tokens=args.new_tokens)
                steps[mode] += rows_
                featurisations[mode], encodes[mode] = n_feat, n_enc
        # The fastest step of each mode: the least disturbed measurement of the same work.
        results = {m: min(steps[m], key=lambda row: row["total"]) for m in modes}

    print(f"GRPO step, tiny {args.family} ({args.size}, hop {args.hop}), 8 prompts x G=8, {args.seconds:g} s clips, "
          f"{args.new_tokens} new tokens, beta 0.04, 1 thread, fastest of {args.steps * args.rounds} steps per mode, "
          f"audio encoder {'frozen' if args.encoder_cache else 'trained'}")
    print(f"features per clip: stock {stock_frames} frames, tgsr {ours_frames} ({n} valid); max |diff| on the "
          f"valid frames {feat_diff:.2g}")
    print(f"{'phase':<10} " + " ".join(f"{m:>10}" for m in modes) + "   (CPU seconds per step)")
    for k in (*PHASES, "total"):
        print(f"{k:<10} " + " ".join(f"{results[m][k]:>10.3f}" for m in modes))
    print(f"featurisations in one run of {args.steps + 1} steps: "
          + ", ".join(f"{m} {featurisations[m]}" for m in modes))
    if args.encoder_cache:
        print(f"encoder runs (policy + reference towers) in one run of {args.steps + 1} steps with the memo: "
              f"{encodes['cached+enc']}")
    for fast in [m for m in modes if m.startswith("cached")]:
        for base in baselines:
            ratio = results[fast]["total"] / results[base]["total"]
            print(f"{fast} / {base} step time: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
