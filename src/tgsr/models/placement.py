"""Where inference runs and in which precision: ``--device`` and ``--dtype`` of eval, ask and analyze.

``choose_placement(device, dtype, n_params)`` turns the user's request into ``from_pretrained``
arguments:

- device ``auto`` (the default): CUDA when a GPU is visible, else the CPU; ``cpu``; ``cuda`` or
  ``cuda:N``.
- dtype ``None``: bfloat16 on a GPU that supports it (float16 on older cards), float32 on the
  CPU. An explicit dtype always wins.
- A model whose weights do not fit one GPU (with room for activations and the KV cache) is
  spread over every visible GPU with ``device_map="auto"``; with one GPU it is loaded there
  anyway and CUDA reports the shortage, rather than silently offloading to the CPU.

Training never goes through here: there the Trainer / Accelerate own placement.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from ..errors import TgsrError

log = logging.getLogger(__name__)

# Room left for activations, the KV cache and the CUDA context when deciding whether a model fits.
FIT_FRACTION = 0.8
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


@dataclass(frozen=True)
class Placement:
    device: str              # "cpu", "cuda:0" ... or "auto" (spread over GPUs)
    dtype: str               # float32 | bfloat16 | float16
    device_map: object       # what from_pretrained gets: None (CPU), "cuda:0", or "auto"

    def describe(self) -> str:
        where = "all visible GPUs (device_map=auto)" if self.device == "auto" else self.device
        return f"{where}, {self.dtype}"


def checkpoint_parameters(folder: str | Path, prefix: str | None = None) -> int | None:
    """Number of stored parameters (optionally only keys starting with ``prefix``), read from the
    safetensors headers; None when the folder has no safetensors."""
    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (folder / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        return None
    from safetensors import safe_open

    total = 0
    for name in files:
        with safe_open(str(folder / name), framework="pt") as f:
            for key in f.keys():
                if prefix is None or key.startswith(prefix):
                    n = 1
                    for d in f.get_slice(key).get_shape():
                        n *= d
                    total += n
    return total


def choose_placement(device: str | None = "auto", dtype: str | None = None, n_params: int | None = None) -> Placement:
    import torch

    device = (device or "auto").strip()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device != "cpu" and not device.startswith("cuda"):
        raise TgsrError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise TgsrError(f"--device {device}: no CUDA GPU is visible to this process")
    if dtype in (None, "", "auto"):
        if device == "cpu":
            dtype = "float32"
        else:
            dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if dtype not in DTYPE_BYTES:
        raise TgsrError(f"unknown dtype {dtype!r}; use float32, bfloat16 or float16")
    if device == "cpu":
        return Placement("cpu", dtype, None)
    pinned = ":" in device  # cuda:N names one GPU: never spread
    if not pinned:
        device = f"cuda:{torch.cuda.current_device()}"
    index = int(device.split(":", 1)[1])
    if index >= torch.cuda.device_count():
        raise TgsrError(f"--device {device}: only {torch.cuda.device_count()} GPU(s) visible")
    if n_params:
        need = n_params * DTYPE_BYTES[dtype]
        free, _ = torch.cuda.mem_get_info(index)
        if need > FIT_FRACTION * free:
            if torch.cuda.device_count() > 1 and not pinned:
                log.info("%.1f GB of weights do not fit %s (%.1f GB free): spreading over %d GPUs",
                         need / 1e9, device, free / 1e9, torch.cuda.device_count())
                return Placement("auto", dtype, "auto")
            log.warning("%.1f GB of weights in %s leave little of the %.1f GB free on %s for activations",
                        need / 1e9, dtype, free / 1e9, device)
    return Placement(device, dtype, device)


__all__ = ["Placement", "checkpoint_parameters", "choose_placement"]
