"""The evaluation loop: batched generation, predictions appended as produced, resumable.

``run_eval(RunConfig(...))`` (or ``tgsr eval run``) loads a benchmark, prompts the model in
batches and appends one ``Prediction`` per item to ``RUN_DIR/predictions.jsonl`` as soon as
its batch is done. Items are batched in order of audio length (less padding); the selection
(``limit``) is always the first items in benchmark order. The run folder is locked while the
run lasts (``tgsr.runlog.FolderLock``: a second process on it is refused, naming the holder) and
the predictions are a ``tgsr.runlog.ItemLog``: a killed run resumes where it stopped (a torn
last line is cut, items already in the file are skipped), so nothing is run twice and nothing
is lost; resuming with other settings is refused, naming what differs. Each prediction records
the settings that produced it (``meta.settings``: model, prompt, decoding, condition, seed). An item whose
audio is missing or corrupt is written as an error (with the reason) and the run goes on;
if a whole batch fails in the model, its items are retried one by one so only the culprit is
recorded as an error. At the end the run is scored (``metrics.json``) and, for benchmarks
with an official format, exported (``RUN_DIR/<official file>``).

Listening controls (``audio_condition``): ``own`` (the item's audio), ``swapped`` (the audio
of the clip nearest in length among the benchmark's other clips: clips are sorted by
(duration, id) and each takes its successor, the longest its predecessor; deterministic and
independent of ``limit`` and of resuming), ``silence`` (zeros as long as the item's audio).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import __version__
from ..audio import duration_of, load_audio
from ..errors import AudioError, TgsrError
from ..prompts import INSTRUCTIONS, reasoning_question, sta_question, user_messages
from ..records import Prediction, QAExample, StaExample, read_jsonl
from ..runlog import FolderLock, ItemLog, write_json_atomic
from .benchmarks import get_benchmark
from .benchmarks.mmar import HEAVY_FIELDS
from .export import FORMATS, export_records, write_export
from .results import reextract, score_predictions

log = logging.getLogger(__name__)

CONDITIONS = ("own", "swapped", "silence")
PREDICTIONS = "predictions.jsonl"
RUN_INFO = "run.json"
METRICS = "metrics.json"
# settings that must not change when a run directory is resumed
_RESUME_KEYS = ("model", "benchmark", "prompt", "temperature", "top_p", "max_new_tokens", "audio_condition", "seed",
                "meta")


@dataclass
class RunConfig:
    model: str
    benchmark: str
    out: str
    data_root: str | None = None
    meta: str | None = None              # metadata file (default: looked up under data_root)
    batch_size: int = 8
    limit: int | None = None             # first N items, in benchmark order
    prompt: str = "grounded"             # grounded | cot | direct (multiple-choice benchmarks)
    temperature: float = 0.0             # 0 = greedy
    top_p: float = 1.0
    max_new_tokens: int = 512
    audio_condition: str = "own"
    seed: int = 0
    label: str | None = None             # row name in `tgsr eval table` (default: model folder name)
    family: str | None = None
    dtype: str | None = None             # None: bfloat16 on a GPU, float32 on the CPU
    device: str = "auto"                 # auto (CUDA when available) | cpu | cuda | cuda:N (tgsr.models.placement)
    export_text: str = "written"         # MMAU/MMAR export: the answer as written, or the option text

    def validate(self) -> None:
        if self.prompt not in INSTRUCTIONS:
            raise TgsrError(f"unknown prompt style {self.prompt!r}; choose from {', '.join(INSTRUCTIONS)}")
        if self.audio_condition not in CONDITIONS:
            raise TgsrError(f"unknown audio condition {self.audio_condition!r}; choose from {', '.join(CONDITIONS)}")
        if self.batch_size < 1:
            raise TgsrError(f"batch size must be >= 1, got {self.batch_size}")
        if self.temperature < 0:
            raise TgsrError(f"temperature must be >= 0, got {self.temperature}")
        if self.limit is not None and self.limit < 1:
            raise TgsrError(f"limit must be >= 1, got {self.limit}")
        if self.export_text not in ("written", "choice"):
            raise TgsrError(f"export text must be 'written' or 'choice', got {self.export_text!r}")
        get_benchmark(self.benchmark)


# ------------------------------------------------------------------ prompts and records

def conversation_for(example: QAExample | StaExample, prompt: str) -> list[dict]:
    if isinstance(example, StaExample):
        return user_messages(sta_question(example.phrase))
    return user_messages(reasoning_question(example.question, example.choices, prompt))


def _slim_official(rec: dict | None) -> dict | None:
    return None if rec is None else {k: v for k, v in rec.items() if k not in HEAVY_FIELDS}


def base_prediction(example: QAExample | StaExample, condition: str) -> Prediction:
    """A prediction skeleton carrying what scoring needs, so a run folder is self-contained."""
    if isinstance(example, StaExample):
        meta = {"ref": [example.start, example.end], "phrase": example.phrase, "audio": example.audio}
        return Prediction(id=example.id, completion=None, condition=condition, meta=meta)
    meta: dict[str, Any] = {"choices": list(example.choices), "answer_text": example.answer_text,
                            "breakdown": dict(example.meta.get("breakdown") or {}), "audio": example.audio}
    if example.meta.get("official") is not None:
        meta["official"] = _slim_official(example.meta["official"])
    return Prediction(id=example.id, completion=None, gold_letter=example.answer, condition=condition, meta=meta)


# ------------------------------------------------------------------ listening controls

def _duration(example) -> float | None:
    if getattr(example, "duration", None):
        return float(example.duration)
    try:
        return duration_of(example.audio)
    except AudioError:
        return None
    except Exception:  # headers soundfile cannot parse (e.g. mp4): no duration, no partner
        return None


def swap_partners(examples: Sequence) -> dict[str, Any]:
    """Item id -> the example whose audio it hears under ``swapped`` (see module doc).

    Only clips with a readable duration and a different audio file take part; an item with
    no partner is absent from the map (the run records it as an error).
    """
    known = [(d, ex.id, ex) for ex in examples if (d := _duration(ex)) is not None]
    known.sort(key=lambda t: (t[0], t[1]))
    partners: dict[str, Any] = {}
    for i, (_, _, ex) in enumerate(known):
        order = list(range(i + 1, len(known))) + list(range(i - 1, -1, -1))
        for j in order:  # nearest different audio file, searching upwards first
            if known[j][2].audio != ex.audio:
                partners[ex.id] = known[j][2]
                break
    return partners


def load_condition_audio(example, condition: str, partners: dict[str, Any]) -> tuple[np.ndarray, dict]:
    """The waveform the model hears for ``example`` under ``condition``, and what it was."""
    if condition == "own":
        return load_audio(example.audio), {}
    if condition == "silence":
        own = load_audio(example.audio)
        return np.zeros_like(own), {"silence_seconds": round(len(own) / 16000, 3)}
    partner = partners.get(example.id)
    if partner is None:
        raise AudioError(example.audio, "no partner clip of known duration for the swapped condition")
    try:
        return load_audio(partner.audio), {"swapped_with": partner.id}
    except AudioError as e:
        raise AudioError(partner.audio, f"swapped partner {partner.id}: {e.reason}") from None


# ------------------------------------------------------------------ run folder

def prediction_log(out: str | Path) -> ItemLog:
    """The run's predictions: one row per item, resumable, guarded by ``_RESUME_KEYS``; an error
    row is final (unreadable audio stays unreadable), so each item has exactly one row."""
    out = Path(out)
    return ItemLog(out / PREDICTIONS, out / RUN_INFO, guard=_RESUME_KEYS, retry_errors=False, what="predictions",
                   hint="use a new --out folder")


def read_predictions(path: str | Path) -> tuple[list[Prediction], list]:
    """Predictions of a run (malformed lines are skipped and returned as errors)."""
    path = Path(path)
    if not path.exists():
        return [], []
    res = read_jsonl(path, Prediction, on_error="skip", resolve_audio=False)
    return res.records, res.errors


# ------------------------------------------------------------------ the loop

@dataclass
class _Ready:
    example: Any
    pred: Prediction
    audio: np.ndarray
    conversation: list[dict]


class _Generator:
    """Batched generation with a one-by-one fallback when a batch fails."""

    def __init__(self, lm, cfg: RunConfig):
        self.lm, self.cfg = lm, cfg

    def __call__(self, items: list[_Ready]) -> list[str | Exception]:
        try:
            return list(self._generate(items))
        except Exception as e:  # noqa: BLE001 - isolate the failing item, keep the run going
            if len(items) == 1:
                return [e]
            log.warning("batch of %d failed (%s); retrying items one by one", len(items), e)
            return [self(one)[0] for one in ([it] for it in items)]

    def _generate(self, items: list[_Ready]) -> list[str]:
        inputs = self.lm.build_inputs([it.audio for it in items], [it.conversation for it in items])
        sample = self.cfg.temperature > 0
        gen = self.lm.generate(inputs, max_new_tokens=self.cfg.max_new_tokens, do_sample=sample,
                               temperature=self.cfg.temperature if sample else 1.0,
                               top_p=self.cfg.top_p if sample else 1.0)
        if len(gen.texts) != len(items):
            raise TgsrError(f"model returned {len(gen.texts)} completions for {len(items)} prompts")
        return gen.texts


def run_eval(cfg: RunConfig, *, lm=None, progress: bool = True) -> dict:
    """Run (or resume) an evaluation and return its metrics (also in ``RUN_DIR/metrics.json``).

    ``lm`` is an already loaded ``tgsr.models.AudioLM``; without it ``cfg.model`` is loaded.
    """
    cfg.validate()
    bench = get_benchmark(cfg.benchmark)
    all_examples = bench.load(cfg.data_root, cfg.meta)
    examples = all_examples[: cfg.limit] if cfg.limit else all_examples
    out = Path(cfg.out)
    with FolderLock(out):
        return _run_locked(cfg, out, examples, all_examples, lm, progress)


def _run_locked(cfg: RunConfig, out: Path, examples: list, all_examples: list, lm, progress: bool) -> dict:
    info = {**asdict(cfg), "n_items": len(examples), "benchmark_items": len(all_examples), "tgsr_version": __version__}
    preds = prediction_log(out)
    done = preds.resume(info, save=False)
    pending = preds.pending(examples, done)
    if pending and lm is None:
        from ..models import load_model

        # Load before committing run.json, so a wrong --model leaves the folder reusable.
        lm = load_model(cfg.model, family=cfg.family, dtype=cfg.dtype, device=cfg.device)
    preds.save_settings(info)
    # similar lengths in one batch waste less padding; unknown lengths go last, order is stable
    lengths = {ex.id: _duration(ex) for ex in pending}
    pending.sort(key=lambda ex: (lengths[ex.id] is None, lengths[ex.id] or 0.0))
    partners = swap_partners(all_examples) if cfg.audio_condition == "swapped" and pending else {}

    stats = {"generated": 0, "errors": 0, "seconds": 0.0}
    if pending:
        import torch

        torch.manual_seed(cfg.seed)
        _loop(cfg, lm, pending, partners, preds, stats, progress, resumed=len(examples) - len(pending))
    metrics = finalize(out, examples=examples, cfg=cfg)
    metrics["throughput"] = {
        "items_generated": stats["generated"], "errors_this_session": stats["errors"],
        "seconds": round(stats["seconds"], 3),
        "items_per_second": stats["generated"] / stats["seconds"] if stats["seconds"] else None,
    }
    write_json_atomic(out / METRICS, metrics)
    return metrics


def row_settings(cfg: RunConfig) -> dict:
    """What produced a prediction, stored in its row: rows of different runs stay distinguishable."""
    return {k: getattr(cfg, k) for k in _RESUME_KEYS}


def _loop(cfg: RunConfig, lm, pending: list, partners: dict, preds: ItemLog, stats: dict, progress: bool,
          resumed: int) -> None:
    from tqdm.auto import tqdm

    generate = _Generator(lm, cfg)
    settings = row_settings(cfg)
    bar = tqdm(total=len(pending) + resumed, initial=resumed, unit="item", disable=not progress,
               desc=f"{cfg.benchmark} [{cfg.audio_condition}]", dynamic_ncols=True)
    t0 = time.perf_counter()
    try:
        for b in range(0, len(pending), cfg.batch_size):
            ready: list[_Ready] = []
            for ex in pending[b: b + cfg.batch_size]:
                pred = base_prediction(ex, cfg.audio_condition)
                pred.meta["settings"] = settings
                try:
                    audio, what = load_condition_audio(ex, cfg.audio_condition, partners)
                except AudioError as e:
                    pred.error = f"audio: {e}"
                    preds.append(pred)
                    stats["errors"] += 1
                    bar.update(1)
                    continue
                pred.meta.update(what)
                ready.append(_Ready(ex, pred, audio, conversation_for(ex, cfg.prompt)))
            if not ready:
                continue
            for item, text in zip(ready, generate(ready)):
                pred = item.pred
                if isinstance(text, Exception):
                    pred.error = f"model: {type(text).__name__}: {text}"
                    stats["errors"] += 1
                else:
                    pred.completion = text
                    if isinstance(item.example, QAExample):
                        reextract(pred)
                    stats["generated"] += 1
                preds.append(pred)
            bar.update(len(ready))
            elapsed = time.perf_counter() - t0
            bar.set_postfix(errors=stats["errors"], refresh=False)
            stats["seconds"] = elapsed
    finally:
        stats["seconds"] = time.perf_counter() - t0
        bar.close()
    rate = stats["generated"] / stats["seconds"] if stats["seconds"] else 0.0
    print(f"{cfg.benchmark}: {stats['generated']} items generated in {stats['seconds']:.1f}s "
          f"({rate:.2f} items/s, batch {cfg.batch_size}), {stats['errors']} errors")


def _reload_examples(info: dict) -> list | None:
    """The run's items from its metadata, or None when the data is no longer where it was
    (scoring then relies on what each prediction carries; the export lacks MMAR's heavy fields)."""
    try:
        exs = get_benchmark(info["benchmark"]).load(info.get("data_root"), info.get("meta"))
    except (TgsrError, OSError):
        return None
    return exs[: info["limit"]] if info.get("limit") else exs


def finalize(out: str | Path, *, examples: Sequence | None = None, cfg: RunConfig | None = None) -> dict:
    """Score a run folder and write its official-format export; returns the metrics.

    Predictions for items outside the run's selection (e.g. after a smaller ``limit``)
    are not scored. Malformed prediction lines are reported, never silently dropped.
    """
    out = Path(out)
    if not (out / RUN_INFO).is_file():
        raise TgsrError(f"{out}: not a run folder (no {RUN_INFO})")
    with FolderLock(out):
        return _finalize_locked(out, examples)


def _finalize_locked(out: Path, examples: Sequence | None) -> dict:
    info = json.loads((out / RUN_INFO).read_text(encoding="utf-8"))
    bench = get_benchmark(info["benchmark"])
    if examples is None:
        examples = _reload_examples(info)
    preds, bad_lines = read_predictions(out / PREDICTIONS)
    if examples is not None:
        wanted = {ex.id for ex in examples}
        preds = [p for p in preds if p.id in wanted]
    n_items = len(examples) if examples is not None else info.get("n_items")
    export_text = info.get("export_text", "written")
    metrics = score_predictions(info["benchmark"], preds, n_items=n_items, export_text=export_text)
    metrics["run"] = {k: info.get(k) for k in ("label", "model", "prompt", "audio_condition", "temperature",
                                               "limit", "n_items", "benchmark_items")}
    metrics["malformed_prediction_lines"] = [e.as_row() for e in bad_lines]
    try:  # keep the throughput of the run that produced the predictions when re-scoring
        metrics["throughput"] = json.loads((out / METRICS).read_text(encoding="utf-8"))["throughput"]
    except (OSError, KeyError, json.JSONDecodeError):
        pass
    if bench.official:
        spec = FORMATS[bench.official]
        order = {ex.id: i for i, ex in enumerate(examples)} if examples is not None else {}
        preds = sorted(preds, key=lambda p: order.get(p.id, len(order)))
        records = {ex.id: ex.meta.get("official") for ex in examples} if examples is not None else None
        path = write_export(out / spec.filename, bench.official,
                            export_records(bench.official, preds, records, text=export_text))
        metrics["export"] = str(path)
    write_json_atomic(out / METRICS, metrics)
    return metrics


__all__ = ["RunConfig", "run_eval", "finalize", "swap_partners", "load_condition_audio", "conversation_for",
           "base_prediction", "read_predictions", "prediction_log", "row_settings", "CONDITIONS", "PREDICTIONS",
           "RUN_INFO", "METRICS"]
