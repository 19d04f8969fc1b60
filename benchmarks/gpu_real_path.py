#!/usr/bin/env python3
"""The real-checkpoint path on a GPU, as a user runs it: one prepared device call.

For a folder laid out like ``Qwen/Qwen2.5-Omni-7B`` on the hub (``tgsr model hub-layout``: the hub's
config, template, tokenizer ids and sharded thinker + talker + vocoder weights; random bf16 weights
at the 7B width), this runs the shipped recipes through the ``tgsr`` command, in each mode:

- ``single``: one process (``tgsr train ...``);
- ``deepspeed``: ``accelerate launch --config_file recipes/accelerate/deepspeed_zero3.yaml --num_processes N``;
- ``fsdp``: ``accelerate launch --config_file recipes/accelerate/fsdp.yaml --num_processes N``;

and for each: Stage-1 STA (``--sta-steps`` steps, held-out IoU on the saved folder), ``tgsr eval run``
on the STA folder, GRPO from it (``--grpo-steps`` steps, the KL reference and the audio guard as in
the recipe), ``tgsr eval run`` on the GRPO folder; then each saved folder is reloaded and must hold
exactly the weights the run says it wrote (``saved_weights_digest``). Only sizes are overridden
(steps, batch, completion length, items). The report (``--report``) has each command's wall time,
return code and the summaries' key fields.

The shape: the 7B thinker's width; its depth (``--text-layers``, default: the most of the real 28
that fit the GPU's memory at ~18 bytes per parameter for full fine-tuning with float32 master
weights or DeepSpeed's, plus headroom). Data: a small ``tgsr data synth`` corpus made here
(``--data``, carried with the run) or made there.

``--smoke`` runs the same commands on the CPU with the tiny hub layout (2 processes for the
sharded modes), to prepare the device call; the test suite runs it in single mode.

Device call (after `bash benchmarks/fetch_gpu_wheels.sh` and
`python benchmarks/gpu_real_path.py --prepare-data .gpu_real/data` here):
    run(command="python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && \\
        PYTHONPATH=/tmp/site:src python3 benchmarks/gpu_real_path.py --data .gpu_real/data \\
        --report $OUT/real_path.json", carry=[".whl", ".gpu_real"], timeout_s=480)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "recipes"
REPO_ID = "Qwen/Qwen2.5-Omni-7B"
MODES = ("single", "deepspeed", "fsdp")
LAUNCH_CONFIG = {"deepspeed": "deepspeed_zero3.yaml", "fsdp": "fsdp.yaml"}
BYTES_PER_PARAM = 18     # float32 master + grad + AdamW (16) and a bf16 reference (2)
HEADROOM_BYTES = 30e9    # activations (checkpointed), KV cache, the reloaded folder for STA's held-out eval


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, from {MODES}")
    p.add_argument("--work", type=Path, default=Path("/tmp/tgsr-real-path"), help="scratch folder")
    p.add_argument("--data", type=Path, help="a `tgsr data synth` corpus (default: made in --work)")
    p.add_argument("--prepare-data", type=Path, metavar="DIR", help="only write the corpus to DIR, then exit")
    p.add_argument("--text-layers", type=int, help="language-model depth (default: the most that fit)")
    p.add_argument("--sta-steps", type=int, default=5)
    p.add_argument("--grpo-steps", type=int, default=2)
    p.add_argument("--eval-items", type=int, default=16)
    p.add_argument("--processes", type=int, default=None, help="processes of the sharded modes (default: GPUs, "
                                                                 "or 2 on the CPU)")
    p.add_argument("--budget-s", type=float, default=440.0, help="stop starting new modes after this many seconds")
    p.add_argument("--smoke", action="store_true", help="tiny hub layout on the CPU (prepares the device call)")
    p.add_argument("--report", type=Path, help="write the JSON report here")
    return p.parse_args(argv)


def make_corpus(out: Path) -> Path:
    from tgsr.data.synth import synthesize

    if not (out / "train" / "sta.jsonl").exists():
        synthesize(out, n_train=16, n_test=16, seed=0, progress=False)
    return out


def choose_text_layers(requested: int | None) -> int | None:
    """The most language-model layers (of 28) that fit the GPU for full fine-tuning."""
    import torch

    from tgsr.models.hub_layout import hub_config

    if requested is not None or not torch.cuda.is_available():
        return requested
    cfg = hub_config(REPO_ID, "full")["thinker_config"]
    text = cfg["text_config"]
    h, ffn, vocab = text["hidden_size"], text["intermediate_size"], text["vocab_size"]
    kv = h // text["num_attention_heads"] * text["num_key_value_heads"]
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * ffn
    fixed = 2 * vocab * h + 0.64e9 + 0.67e9  # embeddings + LM head, audio and vision towers
    free, _ = torch.cuda.mem_get_info()
    fit = int((free - HEADROOM_BYTES) / BYTES_PER_PARAM - fixed) // per_layer
    return max(1, min(text["num_hidden_layers"], fit))


def run(cmd: list[str], log: Path, env: dict) -> dict:
    t0 = time.time()
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
    wall = time.time() - t0
    tail = log.read_text(errors="replace").splitlines()[-15:]
    print(f"  [{'ok' if proc.returncode == 0 else 'rc ' + str(proc.returncode)}] {wall:7.1f} s  "
          f"{' '.join(shlex.quote(c) for c in cmd[-6:])}", flush=True)
    return {"cmd": cmd, "rc": proc.returncode, "wall_s": round(wall, 1), "log": str(log),
            **({} if proc.returncode == 0 else {"tail": tail})}


def train_cmd(mode: str, stage: str, processes: int, overrides: list[str]) -> list[str]:
    tgsr = ["-m", "tgsr", "train", stage, "--config", str(RECIPES / "qwen2.5-omni-7b" / f"{stage}.yaml"), *overrides]
    if mode == "single":
        return [sys.executable, *tgsr]
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    if not Path(accelerate).exists():
        accelerate = "accelerate"
    return [accelerate, "launch", "--config_file", str(RECIPES / "accelerate" / LAUNCH_CONFIG[mode]),
            "--num_processes", str(processes), "--main_process_port", str(29400 + MODES.index(mode)), *tgsr]


def eval_cmd(model: Path, benchmark: str, data: Path, out: Path, items: int, smoke: bool) -> list[str]:
    cmd = [sys.executable, "-m", "tgsr", "eval", "run", "--model", str(model), "--benchmark", benchmark,
           "--data-root", str(data), "--limit", str(items), "--batch-size", str(items), "--out", str(out), "--quiet",
           "--max-new-tokens", "8" if smoke else "64"]
    return cmd


def check_folder(folder: Path) -> dict:
    """Reload a saved folder; its weights must be the ones the run wrote."""
    from tgsr.models import load_model
    from tgsr.train.common import state_digest

    summary = json.loads((folder / "tgsr_summary.json").read_text())
    lm = load_model(folder, dtype="bfloat16")
    digest = state_digest(lm.model.state_dict())
    out = {"reloads": True, "digest_matches": digest == summary["saved_weights_digest"],
           "sharding": summary.get("sharding"), "rank_parameters": summary.get("rank_parameters"),
           "global_step": summary.get("global_step"), "train_runtime_s": summary.get("train_runtime_s")}
    for key in ("heldout_n", "heldout_mean_iou", "loss_type", "reference_model"):
        if key in summary:
            out[key] = summary[key]
    if summary.get("logprob_checks"):
        out["audio_guard"] = summary["logprob_checks"][0]
    del lm
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.prepare_data:
        make_corpus(args.prepare_data)
        print(f"corpus in {args.prepare_data}")
        return 0
    import torch

    from tgsr.models.hub_layout import build_hub_layout

    t_start = time.time()
    on_gpu = torch.cuda.is_available() and not args.smoke
    if not on_gpu and not args.smoke:
        print("no GPU visible: run with --smoke to exercise the commands on the CPU", file=sys.stderr)
        return 2
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad:
        print(f"unknown modes {bad}; expected {MODES}", file=sys.stderr)
        return 2
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    data = make_corpus(args.data or work / "data")
    layers = choose_text_layers(args.text_layers) if on_gpu else None
    model = work / ("omni-full" if on_gpu else "omni-xs")
    t0 = time.time()
    if not (model / "model.safetensors.index.json").exists():
        build_hub_layout(REPO_ID, model, size="full" if on_gpu else "xs", device="cuda" if on_gpu else None,
                         text_layers=layers)
    report = {"device": torch.cuda.get_device_name() if on_gpu else "cpu (smoke)", "text_layers": layers,
              "build_s": round(time.time() - t0, 1), "modes": {}}
    print(f"hub-layout {REPO_ID}: {report['device']}, text layers {layers or 'xs'}, built in {report['build_s']} s")
    processes = args.processes or (torch.cuda.device_count() if on_gpu else 2)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    if args.smoke:
        env["OMP_NUM_THREADS"] = "1"
    sizes_sta = [f"max_steps={args.sta_steps}", "save_strategy=no", "logging_steps=1", "disable_tqdm=true",
                 f"tgsr.max_eval_samples={args.eval_items}", "tgsr.max_new_tokens=32"]
    sizes_grpo = [f"max_steps={args.grpo_steps}", "save_strategy=no", "logging_steps=1", "disable_tqdm=true",
                  "gradient_accumulation_steps=1", f"max_completion_length={8 if args.smoke else 64}"]
    if args.smoke:  # bf16 on a CPU is slow: the fewest rows that still run every pass
        sizes_sta += ["per_device_train_batch_size=2", "gradient_accumulation_steps=1"]
        sizes_grpo += ["per_device_train_batch_size=2", "num_generations=2"]
    else:  # 1 prompt x G=8 per step, as the recipe's per-device micro-batch
        sizes_sta += ["per_device_train_batch_size=4", "gradient_accumulation_steps=1"]
        sizes_grpo += ["per_device_train_batch_size=8"]
    for mode in modes:
        if time.time() - t_start > args.budget_s:
            report["modes"][mode] = {"skipped": f"time budget of {args.budget_s:.0f} s spent"}
            print(f"{mode}: skipped (time budget)")
            continue
        print(f"{mode}:")
        root = work / mode
        root.mkdir(exist_ok=True)
        steps = {}
        sta, grpo = root / "sta", root / "grpo"
        data_args = [f"tgsr.train_file={data}/train/sta.jsonl", f"tgsr.eval_file={data}/test/sta.jsonl"]
        steps["sta"] = run(train_cmd(mode, "sta", processes, [f"tgsr.model={model}", *data_args, f"output_dir={sta}",
                                                               *sizes_sta]), root / "sta.log", env)
        if steps["sta"]["rc"] == 0:
            steps["sta_check"] = check_folder(sta)
            steps["eval_sta"] = run(eval_cmd(sta, "sta", data, root / "eval_sta", args.eval_items, args.smoke),
                                    root / "eval_sta.log", env)
            steps["grpo"] = run(train_cmd(mode, "grpo", processes,
                                          [f"tgsr.model={sta}", f"tgsr.ref_model={sta}",
                                           f"tgsr.train_file={data}/train/qa.jsonl", f"output_dir={grpo}",
                                           *sizes_grpo]), root / "grpo.log", env)
            if steps["grpo"]["rc"] == 0:
                steps["grpo_check"] = check_folder(grpo)
                steps["eval_grpo"] = run(eval_cmd(grpo, "synthetic", data, root / "eval_grpo", args.eval_items,
                                                  args.smoke), root / "eval_grpo.log", env)
        report["modes"][mode] = steps
    report["total_s"] = round(time.time() - t_start, 1)
    ok = all(s.get("rc", 0) == 0 for m in report["modes"].values() for s in m.values() if isinstance(s, dict)) and \
        all(m.get(c, {}).get("digest_matches", True) for m in report["modes"].values() for c in ("sta_check",
                                                                                                 "grpo_check"))
    report["ok"] = ok
    print(json.dumps({m: {k: (v.get("rc") if "rc" in v else v) for k, v in s.items()} if "skipped" not in s else s
                      for m, s in report["modes"].items()}, indent=1, default=str))
    print(f"total {report['total_s']} s, {'all passed' if ok else 'FAILED'}")
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=1, default=str) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
