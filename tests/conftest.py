"""Shared test set-up: one torch thread, no hub access, and per-area fixture plugins.

Each area keeps its shared fixtures (tiny models, a small synthetic corpus ...) in
``tests/fixtures_<area>.py``; they are loaded here as pytest plugins so any test can use them.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
sys.path.insert(0, str(TESTS_DIR))

pytest_plugins = sorted(p.stem for p in TESTS_DIR.glob("fixtures_*.py"))

try:  # torch is a hard dependency, but keep pure-Python tests importable without it
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass


def _find_shared() -> Path | None:
    env = os.environ.get("TGSR_SHARED_DIR")
    candidates = [Path(env)] if env else []
    candidates += [REPO_ROOT.parent / "shared", REPO_ROOT / "shared"]
    for c in candidates:
        if (c / "benchmarks").is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's shared/ folder (real benchmark metadata). CI lays it beside the clone."""
    d = _find_shared()
    if d is None:
        pytest.skip("shared/ benchmark fixtures not found (set TGSR_SHARED_DIR)")
    return d


@pytest.fixture(scope="session")
def benchmarks_dir(shared_dir: Path) -> Path:
    return shared_dir / "benchmarks"
