"""Session fixtures: random-weight folders laid out exactly like the real hub checkpoints.

``hub_layout_dir(repo_id)`` builds (once per session) the folder ``tgsr.models.hub_layout`` writes
for ``Qwen/Qwen2.5-Omni-7B``, ``Qwen/Qwen2-Audio-7B-Instruct`` or ``nvidia/audio-flamingo-3-hf``:
the hub's own config, template, tokenizer-config, preprocessor and generation files, special
tokens at the real ids, sharded weights under the hub's key names. ``hub_cache`` is a Hugging
Face cache folder holding all three as the ``main`` snapshot of their repo ids; ``use_hub_cache``
points this process at it (offline), so the hub ids themselves resolve.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HUB_REPOS = ("Qwen/Qwen2.5-Omni-7B", "Qwen/Qwen2-Audio-7B-Instruct", "nvidia/audio-flamingo-3-hf")
RECIPE_OF = {"Qwen/Qwen2.5-Omni-7B": "qwen2.5-omni-7b", "Qwen/Qwen2-Audio-7B-Instruct": "qwen2-audio",
             "nvidia/audio-flamingo-3-hf": "audio-flamingo-3"}


@pytest.fixture(scope="session")
def hub_layout_dir(tmp_path_factory):
    built: dict[str, Path] = {}

    def make(repo_id: str) -> Path:
        from tgsr.models.hub_layout import build_hub_layout

        if repo_id not in built:
            root = tmp_path_factory.mktemp("hub-" + repo_id.replace("/", "--"))
            built[repo_id] = build_hub_layout(repo_id, root / "model", seed=0)
        return built[repo_id]

    return make


@pytest.fixture(scope="session")
def hub_cache(hub_layout_dir, tmp_path_factory) -> Path:
    from tgsr.models.hub_layout import install_in_cache

    cache = tmp_path_factory.mktemp("hf-cache")
    for repo in HUB_REPOS:
        install_in_cache(hub_layout_dir(repo), repo, cache)
    return cache


@pytest.fixture
def use_hub_cache(hub_cache, monkeypatch) -> Path:
    """This process reads hub ids from ``hub_cache``, offline (subprocesses: pass HF_HUB_CACHE)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return hub_cache
