#!/usr/bin/env bash
# Download the x86-64 / CPython 3.12 wheels that benchmarks/gpu_grpo_step.py and
# benchmarks/gpu_real_path.py need on the lent GPU machine but its image lacks (or has at another
# version), into .whl/ at the repo root (git-ignored). The device machine has no network: carry the folder with the run
# (carry: [".whl"]) and install it there with --no-index --no-deps (see benchmarks/RESULTS.md).
#
# Pins follow this repo's .venv: the image has transformers 5.17 and no TRL/datasets/soundfile.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=(
  trl==1.16.0 transformers==5.24.0 peft==0.21.2 datasets==5.2.0
  dill==0.4.1 multiprocess==0.70.19 regex==2026.11.19
  soundfile==0.14.0 cffi==2.1.1 pycparser==3.12
  # DeepSpeed (gpu_real_path.py's ZeRO-3 mode) and what the image lacks of its requirements
  hjson==3.1.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
)
mkdir -p .whl
"$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}"
# DeepSpeed publishes only an sdist; its ops build just-in-time, so a pure-Python wheel carries it.
"$PY" -m pip download --no-deps --no-binary=:all: -d .whl/src deepspeed==0.19.8
DS_BUILD_OPS=0 "$PY" -m pip wheel --no-deps --no-build-isolation -w .whl .whl/src/deepspeed-0.19.8.tar.gz
rm -rf .whl/src
ls -la .whl
du -sh .whl
