"""Checkpoints a killed run can trust: written whole or not at all, checked before resuming.

- ``AtomicCheckpointMixin`` (every tgsr trainer): the Trainer writes ``checkpoint-N`` into
  ``OUTPUT/.tgsr-staging/`` and, once every process has written its part (weights, optimizer
  shards, trainer state), the saving process renames it to ``OUTPUT/checkpoint-N``. A crash or a
  full disk in the middle of a save leaves the staging folder, never a half-written newest
  checkpoint; the next save clears it.
- ``checkpoint_problem(folder)``: why a folder cannot be resumed from, or None. It reads what
  resuming reads, without loading tensors: every safetensors header covers its file
  (``safe_open``), a sharded index names shards that exist, ``trainer_state.json`` parses, and the
  optimizer and scheduler states are there and complete (``torch.save`` writes a zip archive,
  whose central directory is the last thing written).
- ``resume_checkpoint(output_dir, resume)``: the newest complete ``checkpoint-N``; newer
  incomplete ones (written by another tool, or before saves were atomic) are named with their
  problem and skipped, so ``--resume`` continues from the last state that is whole.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import zipfile
from pathlib import Path

from ..errors import TgsrError

log = logging.getLogger(__name__)

STAGING = ".tgsr-staging"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors", "pytorch_model.bin")


def _framework_state(folder: Path, prefix: str) -> tuple[bool, str | None]:
    """(present, problem) of the state FSDP or DeepSpeed saved under ``prefix*``: FSDP writes
    ``pytorch_model_fsdp[_rankN].bin`` / ``optimizer[_0_rankN].bin`` (checked as zip archives) or
    ``pytorch_model_fsdp_0/`` / ``optimizer_0/`` (torch.distributed.checkpoint, whose ``.metadata``
    is written last); DeepSpeed writes ``global_stepN/`` and then the ``latest`` file."""
    present = False
    for path in sorted(folder.glob(prefix + "*")):
        if path.is_file() and path.suffix == ".bin":
            present = True
            if (problem := _zip_problem(path)) is not None:
                return True, problem
        elif path.is_dir():
            present = True
            if prefix == "global_step":
                if not (folder / "latest").is_file():
                    return True, f"{path.name}: DeepSpeed state without its 'latest' file (an interrupted save)"
            elif not (path / ".metadata").is_file():
                return True, f"{path.name}: sharded state without its .metadata (an interrupted save)"
    return present, None


def _safetensors_problem(path: Path) -> str | None:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except (SafetensorError, OSError) as e:
        return f"{path.name}: {e}"
    return None


def _zip_problem(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as z:
            z.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        return f"{path.name}: incomplete ({e})"
    return None


def checkpoint_problem(folder: str | Path, *, needs_optimizer: bool = True) -> str | None:
    """Why ``folder`` is not a complete checkpoint (None when it is). ``needs_optimizer``: the run
    saves optimizer state (``save_only_model`` off), so resuming needs it."""
    folder = Path(folder)
    state = folder / "trainer_state.json"
    if not state.is_file():
        return "trainer_state.json is missing"
    try:
        json.loads(state.read_text(encoding="utf-8"))["global_step"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        return f"trainer_state.json is unreadable ({type(e).__name__}: {e})"
    deepspeed, problem = _framework_state(folder, "global_step")
    fsdp, fsdp_problem = _framework_state(folder, "pytorch_model_fsdp")
    if problem or fsdp_problem:
        return problem or fsdp_problem
    if not any((folder / w).is_file() for w in _WEIGHTS) and not deepspeed and not fsdp:
        return f"no weights (none of {', '.join(_WEIGHTS)}, nor an FSDP or DeepSpeed state)"
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, AttributeError) as e:
            return f"{index.name} is unreadable ({type(e).__name__}: {e})"
        missing = sorted(s for s in shards if not (folder / s).is_file())
        if missing:
            return f"{index.name} names missing shards: {', '.join(missing[:3])}"
    for path in sorted(folder.glob("*.safetensors")):
        if (problem := _safetensors_problem(path)) is not None:
            return problem
    if (folder / "pytorch_model.bin").is_file() and (problem := _zip_problem(folder / "pytorch_model.bin")):
        return problem
    if needs_optimizer:
        optimizer = folder / "optimizer.pt"
        fsdp_optimizer, problem = _framework_state(folder, "optimizer")
        if problem:
            return problem
        if optimizer.is_file():
            if (problem := _zip_problem(optimizer)) is not None:
                return problem
        elif not deepspeed and not fsdp_optimizer:
            return "optimizer.pt is missing"
        scheduler = folder / "scheduler.pt"
        if scheduler.is_file():
            if (problem := _zip_problem(scheduler)) is not None:
                return problem
        elif not deepspeed:  # DeepSpeed keeps the scheduler in its own state
            return "scheduler.pt is missing"
    return None


def checkpoints_newest_first(output_dir: str | Path) -> list[Path]:
    out = Path(output_dir)
    if not out.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def resume_checkpoint(output_dir: str | Path, resume: bool, *, needs_optimizer: bool = True,
                      echo=print) -> str | None:
    """The newest complete ``checkpoint-N`` of ``output_dir`` for ``--resume`` (None without it).

    Newer incomplete checkpoints are skipped and named with their problem (through ``echo``); a
    save interrupted in the staging folder is mentioned. No complete checkpoint is an error
    that lists what was found.
    """
    if not resume:
        return None
    out = Path(output_dir)
    staged = sorted(p.name for p in (out / STAGING).glob("checkpoint-*")) if (out / STAGING).is_dir() else []
    if staged:
        echo(f"--resume: {out / STAGING} holds an interrupted save ({', '.join(staged)}); it is ignored and "
             "cleared at the next save")
    skipped = []
    for folder in checkpoints_newest_first(out):
        problem = checkpoint_problem(folder, needs_optimizer=needs_optimizer)
        if problem is None:
            if skipped:
                echo(f"--resume: skipping incomplete {'; '.join(skipped)}; resuming from {folder.name}, the newest "
                     "complete checkpoint")
            return str(folder)
        skipped.append(f"{folder.name} ({problem})")
    if skipped:
        raise TgsrError(f"--resume: no complete checkpoint in {out}: {'; '.join(skipped)}")
    raise TgsrError(f"--resume: no checkpoint-N folder in {out}; nothing to resume (set save_steps so the run "
                    "saves checkpoints)")


def _publish(staged: Path, final: Path) -> None:
    """Move a finished checkpoint into place; an older folder of the same name goes last, so at
    every moment either the old or the new checkpoint is whole under its name or the newest
    complete one before it is."""
    old = staged.with_name(staged.name + ".replaced")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(staged, final)
    shutil.rmtree(old, ignore_errors=True)


class AtomicCheckpointMixin:
    """For Trainer subclasses: ``checkpoint-N`` appears only once it is complete (module doc)."""

    _tgsr_staging = False

    def _get_output_dir(self, trial):
        run_dir = super()._get_output_dir(trial)
        return os.path.join(run_dir, STAGING) if self._tgsr_staging else run_dir

    def _save_checkpoint(self, model, trial):
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

        run_dir = Path(super()._get_output_dir(trial))
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging = run_dir / STAGING
        if self.args.should_save:  # what a killed save left behind
            shutil.rmtree(staging, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        self._tgsr_staging = True
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._tgsr_staging = False
        self.accelerator.wait_for_everyone()  # every process's shards are written
        if self.args.should_save:
            best = self.state.best_model_checkpoint
            if best is not None and Path(best).parent == staging:  # the Trainer saw the staging path
                self.state.best_model_checkpoint = str(run_dir / Path(best).name)
                self.state.save_to_json(str(staging / name / "trainer_state.json"))
            _publish(staging / name, run_dir / name)
            shutil.rmtree(staging, ignore_errors=True)
            rotate_checkpoints(output_dir=str(run_dir), save_total_limit=self.args.save_total_limit,
                               best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)
        self.accelerator.wait_for_everyone()


__all__ = ["STAGING", "AtomicCheckpointMixin", "checkpoint_problem", "checkpoints_newest_first", "resume_checkpoint"]
