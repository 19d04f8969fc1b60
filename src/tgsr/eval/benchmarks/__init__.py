"""Benchmark loaders and their registry.

Each loader reads the benchmark's own metadata format and returns ``QAExample`` records
(``StaExample`` for ``sta``) with audio paths resolved under the data root. Original
records are kept in ``meta["official"]`` so exports reproduce the official file format;
``meta["breakdown"]`` names the fields results are broken down by.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Literal

from ...errors import TgsrError
from . import airbench, meld, mmar, mmau, sta, synthetic


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    load: Callable[..., list]          # (data_root, meta=None) -> examples
    kind: Literal["choice", "sta"] = "choice"
    official: Literal["mmau", "mmar", "airbench"] | None = None   # official rule / export format
    expected_items: int | None = None  # the full benchmark size, for reports


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b for b in [
        Benchmark("mmau-mini-speech", "MMAU test-mini, task speech", mmau.load, official="mmau", expected_items=333),
        Benchmark("mmar-speech", "MMAR, modality speech", mmar.load, official="mmar", expected_items=294),
        Benchmark("airbench-ser", "AIR-Bench Foundation speaker emotion recognition",
                  partial(airbench.load, task="ser"), official="airbench", expected_items=2000),
        Benchmark("airbench-snv", "AIR-Bench Foundation speaker number verification",
                  partial(airbench.load, task="snv"), official="airbench", expected_items=1000),
        Benchmark("airbench-sic", "AIR-Bench Foundation speech intent classification",
                  partial(airbench.load, task="sic"), official="airbench", expected_items=1000),
        Benchmark("meld", "MELD test utterances, 7-way emotion", meld.load, expected_items=2610),
        Benchmark("synthetic", "tgsr synthetic corpus, test split", synthetic.load),
        Benchmark("sta", "timestamp localisation (STA examples)", sta.load, kind="sta"),
    ]
}


def get_benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise TgsrError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}") from None


def load_benchmark(name: str, data_root: str | Path | None, meta: str | Path | None = None) -> list:
    return get_benchmark(name).load(data_root, meta)


__all__ = ["Benchmark", "BENCHMARKS", "get_benchmark", "load_benchmark"]
