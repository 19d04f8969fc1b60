"""Session-scoped tiny offline models for any test (built once per session, size xs, seed 0).

Use ``tiny_model_dir(family, size="xs")`` for any family/size, or the three shortcuts
``tiny_omni_dir``, ``tiny_qwen2_audio_dir``, ``tiny_af3_dir`` (and ``tiny_qwen3_omni_dir``). Each is a folder that
``tgsr.models.load_model`` and plain ``from_pretrained`` open offline. Load your own model
from it (loading is fast) rather than sharing a loaded one, since training mutates weights.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    built: dict[tuple[str, str], Path] = {}

    def make(family: str, size: str = "xs") -> Path:
        from tgsr.models.tiny import build_tiny

        key = (family, size)
        if key not in built:
            out = tmp_path_factory.mktemp(f"tiny-{family}-{size}")
            built[key] = build_tiny(family, size, out, seed=0)
        return built[key]

    return make


@pytest.fixture(scope="session")
def tiny_omni_dir(tiny_model_dir) -> Path:
    return tiny_model_dir("qwen2.5-omni")


@pytest.fixture(scope="session")
def tiny_qwen2_audio_dir(tiny_model_dir) -> Path:
    return tiny_model_dir("qwen2-audio")


@pytest.fixture(scope="session")
def tiny_af3_dir(tiny_model_dir) -> Path:
    return tiny_model_dir("audio-flamingo-3")


@pytest.fixture(scope="session")
def tiny_qwen3_omni_dir(tiny_model_dir) -> Path:
    return tiny_model_dir("qwen3-omni")
