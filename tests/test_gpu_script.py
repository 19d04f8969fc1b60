"""benchmarks/gpu_grpo_step.py cannot rot: its CLI answers and its --smoke mode runs tgsr's real
GRPO step (AudioGRPOTrainer) end to end on the CPU, full fine-tuning and the LoRA fallback."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "benchmarks" / "gpu_grpo_step.py"

pytest.importorskip("trl")
pytest.importorskip("peft")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gpu_grpo_step", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_help_runs_without_heavy_imports():
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for flag in ("--smoke", "--mode", "--new-tokens", "--micro-batch", "--text-layers", "--json", "--variants",
                 "--report"):
        assert flag in out.stdout


def test_bad_shape_is_refused(bench, capsys):
    with pytest.raises(SystemExit) as e:
        bench.parse_args(["--smoke", "--micro-batch", "3"])  # 2 x 2 rows are not divisible by 3
    assert e.value.code == 2 and "micro-batch" in capsys.readouterr().err


def test_without_cuda_it_asks_for_smoke(bench, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert bench.main([]) == 2
    assert "--smoke" in capsys.readouterr().err


def test_paper_config_matches_transformers_defaults_for_the_7b_shapes(bench):
    """The recipe's shapes are the 7B thinker's: equal to Qwen2_5OmniThinkerConfig's defaults."""
    from transformers.models.qwen2_5_omni.configuration_qwen2_5_omni import Qwen2_5OmniThinkerConfig

    data = json.loads(bench.DEFAULT_CONFIG.read_text())
    ref = Qwen2_5OmniThinkerConfig()
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads"):
        assert data["text_config"][key] == getattr(ref.text_config, key), key
    for key in ("num_mel_bins", "encoder_layers", "encoder_attention_heads", "encoder_ffn_dim", "d_model",
                "output_dim", "n_window"):
        assert data["audio_config"][key] == getattr(ref.audio_config, key), key


def _phases_ok(res, rows, new_tokens, audio=True):
    from tgsr.train.profiling import PHASES

    med = res["median_s"]
    for key in ("features",) * audio + ("generation", "ref_logprobs", "loss_forward", "backward", "optimizer", "step"):
        assert med[key] > 0, key  # each pass ran and was timed by the trainer
    for cycle in res["per_cycle"]:  # exclusive phases: with "other" they are exactly the step
        assert sum(cycle[k] for k in PHASES) + cycle["other"] == pytest.approx(cycle["step"])
        assert cycle["loss_fwd_bwd"] == pytest.approx(cycle["loss_forward"] + cycle["backward"])
    gens = res["floors"]
    assert gens["rows"] == rows and gens["completion_tokens_total"] == rows * new_tokens
    assert res["eos_ignored"]
    for key in ("generation_floor_s", "logprob_pass_floor_s", "loss_fwd_bwd_floor_s"):
        assert gens[key] > 0, key
    assert gens["loss_fwd_bwd_flops"] > 2 * gens["logprob_pass_flops"]  # backward costs more than a forward


def test_smoke_full_finetune_and_oom_fallback_to_lora(bench, tmp_path, capsys):
    full_json = tmp_path / "full.json"
    assert bench.main(["--smoke", "--steps", "1", "--json", str(full_json)]) == 0
    lines = capsys.readouterr().out.splitlines()
    last_log = max(i for i, line in enumerate(lines) if line.startswith("[gpu_grpo_step]"))
    table = lines[last_log + 1:]  # the table is printed last
    for phase in ("generation", "ref log-probs", "loss fwd+bwd", "optimizer", "step total"):
        assert any(line.startswith(phase) for line in table), phase
    rec = json.loads(full_json.read_text())
    res = rec["result"]
    assert rec["smoke"] and [a["outcome"] for a in rec["attempts"]] == ["ok"]
    assert res["mode"] == "full" and res["reference"] == "copy of the policy"
    _phases_ok(res, rows=4, new_tokens=8)
    # a fresh clip per prompt per step: every step pays its own log-mel, once per clip (not per copy)
    assert res["feature_cache"]["misses"] == 2 * 2
    # tgsr's audio guard ran in the warm-up step: training passes reproduce the sampling log-probs (fp32)
    assert res["logprob_checks"] and res["logprob_checks"][0]["max"] < 1e-3
    assert res["floors"]["optimizer_bytes"] > 0

    lora_json = tmp_path / "lora.json"
    assert bench.main(["--smoke", "--steps", "1", "--mode", "lora", "--inject-oom", "1",
                       "--no-logprob-check", "--variants", "base,merge,auto-ckpt,stock-trl",
                       "--json", str(lora_json)]) == 0
    rec = json.loads(lora_json.read_text())
    # the second variant reuses the settled mode and samples from the merged adapter
    assert list(rec["variants"]) == ["base", "merge", "auto-ckpt", "stock-trl"]
    # stock TRL ran at the same shape: same prompt token count (text in place of the audio), same rows
    stock = rec["variants"]["stock-trl"]
    _phases_ok(stock, rows=4, new_tokens=8, audio=False)  # text prompts: no log-mel
    assert stock["floors"]["prompt_tokens_mean"] == rec["variants"]["base"]["floors"]["prompt_tokens_mean"]
    assert rec["variants"]["base"]["generation_merged_lora"] is False
    merge = rec["variants"]["merge"]
    assert merge["generation_merged_lora"] is True and merge["micro_batch"] == 1
    _phases_ok(merge, rows=4, new_tokens=8)
    # every_n_layers: auto reached the trainer; on the CPU there is no device memory to plan from
    auto = rec["variants"]["auto-ckpt"]
    assert auto["grad_ckpt"] and auto["checkpoint_plan"] is None
    assert auto["recompute_fraction"] == {"text": 1.0, "audio": 1.0}
    _phases_ok(auto, rows=4, new_tokens=8)
    capsys.readouterr()
    assert bench.main(["--report", str(lora_json)]) == 0
    report = capsys.readouterr().out
    assert "variant: merge" in report and "gen speed-up" in report
    assert "/ stock TRL, by phase" in report and "step / stock TRL step:" in report
    assert [a["outcome"] for a in rec["attempts"]] == ["out of memory", "ok"]
    res = rec["result"]
    assert res["mode"] == "lora" and res["micro_batch"] == 1 and res["grad_accum"] == 4
    assert res["reference"] == "LoRA adapter disabled" and 0 < res["lora_params"] == res["trainable_params"]
    assert "fell back after out-of-memory" in res["reason"]
    assert not res["logprob_checks"]
    _phases_ok(res, rows=4, new_tokens=8)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_real_path_device_check_runs_its_commands_on_the_cpu(toy_corpus, tmp_path):
    """benchmarks/gpu_real_path.py --smoke: the device call's own commands (shipped 7B recipes on a
    hub-layout Omni folder, save, reload, eval) on the CPU, single-process here (the sharded modes are
    tests/test_train_sharded.py's)."""
    spec = importlib.util.spec_from_file_location("gpu_real_path", REPO_ROOT / "benchmarks" / "gpu_real_path.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    report = tmp_path / "report.json"
    rc = script.main(["--smoke", "--modes", "single", "--work", str(tmp_path / "work"), "--data", str(toy_corpus),
                      "--sta-steps", "1", "--grpo-steps", "1", "--eval-items", "2", "--report", str(report)])
    data = json.loads(report.read_text())
    assert rc == 0 and data["ok"], json.dumps(data, indent=1)[-3000:]
    single = data["modes"]["single"]
    assert single["sta_check"]["digest_matches"] and single["grpo_check"]["digest_matches"]
    assert single["grpo_check"]["loss_type"] == "grpo" and single["grpo_check"]["audio_guard"]["passed"]
    assert single["eval_grpo"]["rc"] == 0


def test_compile_cost_is_weighed_against_the_per_step_saving(bench):
    def run(warm_gen, gen):
        return {"per_cycle": [{"generation": warm_gen}, {"generation": gen}, {"generation": gen}],
                "median_s": {"generation": gen}, "timed_steps": 2}
    # eager: warm-up 1 s above its median (first-step costs); compiled: 31 s above, 2 s faster per step
    lines = bench.compile_lines({"base": run(6.0, 5.0), "compiled": run(34.0, 3.0)})
    text = "\n".join(lines)
    assert "compiled vs base: compilation 30.0 s once" in text and "+2.000 s per step" in text
    assert "pays back after 15.0 steps" in text
    slower = "\n".join(bench.compile_lines({"base": run(6.0, 5.0), "compiled": run(40.0, 5.5)}))
    assert "never pays back" in slower
    assert bench.compile_lines({"base": run(6.0, 5.0)}) == []
