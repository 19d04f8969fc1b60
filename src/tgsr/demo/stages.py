"""The demo's stage cache: each stage in ``OUT/stages/<name>-<hash>/``, skipped when already done."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .config import STAGE_CODE_VERSION

# ================================================================ stage cache

@dataclass
class Stage:
    """A finished stage: its folder, its hash and what it reported."""

    name: str
    dir: Path
    hash: str
    summary: dict
    seconds: float
    cached: bool

    @property
    def model(self) -> Path:
        return self.dir / "model"


class StageRunner:
    """Runs stages in ``OUT/stages/<name>-<hash>``; a folder with ``stage.json`` is done.

    ``run(name, params, fn, *inputs)`` calls ``fn(folder)`` unless the stage is done. The hash
    covers ``params``, the hashes of ``inputs`` and ``STAGE_CODE_VERSION``, so changing a
    setting re-runs that stage and everything downstream, and nothing else. A folder left by
    an interrupted run is wiped before the stage starts again, unless the stage is
    ``resumable`` (it picks up its own partial output, like an evaluation).
    """

    def __init__(self, out: Path, *, total: int | None = None, echo: Callable[[str], None] = print,
                 before_stage: Callable[[], None] | None = None):
        self.before_stage = before_stage
        self.root = Path(out) / "stages"
        self.root.mkdir(parents=True, exist_ok=True)
        self.echo = echo
        self.total = total
        self.count = 0
        self.stages: list[Stage] = []

    @staticmethod
    def key(name: str, params: dict, inputs: tuple[Stage, ...]) -> str:
        blob = json.dumps({"name": name, "params": params, "inputs": [s.hash for s in inputs],
                           "code": STAGE_CODE_VERSION}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:10]

    def run(self, name: str, params: dict, fn: Callable[[Path], dict], *inputs: Stage,
            resumable: bool = False, title: str | None = None) -> Stage:
        h = self.key(name, params, inputs)
        folder = self.root / f"{name}-{h}"
        marker = folder / "stage.json"
        self.count += 1
        head = f"[{self.count}/{self.total}]" if self.total else f"[{self.count}]"
        if marker.exists():
            done = json.loads(marker.read_text(encoding="utf-8"))
            stage = Stage(name, folder, h, done["summary"], done["seconds"], cached=True)
            self.echo(f"{head} {title or name}: cached ({folder.name}, ran {done['seconds']:.0f}s)")
            self.stages.append(stage)
            return stage
        if folder.exists() and not resumable:
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "params.json").write_text(json.dumps(params, indent=2, sort_keys=True, default=str) + "\n")
        self.echo(f"{head} {title or name} ...")
        if self.before_stage is not None:
            self.before_stage()
        t0 = time.perf_counter()
        summary = fn(folder) or {}
        seconds = time.perf_counter() - t0
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(json.dumps({"name": name, "hash": h, "seconds": seconds, "summary": summary,
                                   "inputs": [s.dir.name for s in inputs]}, indent=2, default=str) + "\n")
        os.replace(tmp, marker)
        self.echo(f"{head} {title or name}: done in {seconds:.0f}s")
        stage = Stage(name, folder, h, json.loads(json.dumps(summary, default=str)), seconds, cached=False)
        self.stages.append(stage)
        return stage


@dataclass
class ModelRow:
    """One row of the accuracy table: a trained model and the prompt it is evaluated with."""

    key: str
    label: str
    stage: Stage | None
    prompt: str
    recipe: str
    evals: dict[str, Stage] = field(default_factory=dict)
    skipped: str | None = None        # why the model was not trained (failed listening check)
