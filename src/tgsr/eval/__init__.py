"""Evaluation: benchmark loaders, the run loop, tgsr and official scoring, exports, tables.

Modules: ``benchmarks`` (one loader per benchmark, registry ``BENCHMARKS``), ``scoring``
(tgsr accuracy and the official rules), ``metrics`` (IoU, SED-F1), ``export`` (official
prediction files), ``results`` (predictions -> metrics), ``run`` (the evaluation loop),
``table`` (runs -> a Table-2-like markdown/CSV). Importing this package loads no model code.
"""

from .benchmarks import BENCHMARKS, get_benchmark, load_benchmark
from .metrics import best_iou, iou, sed_f1

__all__ = ["BENCHMARKS", "get_benchmark", "load_benchmark", "iou", "best_iou", "sed_f1"]
