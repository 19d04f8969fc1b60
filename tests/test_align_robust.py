"""Alignment that loses nothing silently: safe model files, clips kept, workers that do not matter."""

from __future__ import annotations

import os

import pytest

from tgsr.data.align import ModelNotFound


# ---------------------------------------------------------------- model files never run code

class _RunsCode:
    """Unpickling this object runs a command (what a malicious checkpoint would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("whisper")
    from tgsr.data.align.whisper_timestamped import load_openai_whisper

    marker = tmp_path / "ran"
    bad = tmp_path / "evil.pt"
    torch.save({"dims": _RunsCode(marker), "model_state_dict": {}}, bad)
    with pytest.raises(ModelNotFound) as err:
        load_openai_whisper(str(bad))
    assert not marker.exists()
    message = str(err.value)
    assert str(bad) in message and "refused" in message and "posix.system" in message
    assert "weights_only" not in message  # no advice to load it unsafely


def test_a_checkpoint_of_plain_values_that_is_not_whisper_gets_a_clear_error(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("whisper")
    from tgsr.data.align.whisper_timestamped import load_openai_whisper

    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ModelNotFound, match="not an openai-whisper checkpoint"):
        load_openai_whisper(str(path))
    torch.save([1, 2, 3], path)
    with pytest.raises(ModelNotFound, match="holds a list"):
        load_openai_whisper(str(path))
