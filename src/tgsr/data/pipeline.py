"""The resumable, parallel alignment run behind ``tgsr data align``.

manifest.jsonl --(aligner, N worker processes)--> words.jsonl (ClipWords) + errors file.

- Resumable: clips already in the output (by ``clip_id``) or already in the errors file
  are skipped; a line torn by a crash is cut first. Re-running after an interruption
  gives the same file as an uninterrupted run, without duplicates.
- Output order is the manifest order whatever the number of workers (results are held
  back until every earlier clip is written), so runs are reproducible.
- Per-clip failures (missing, empty or corrupt audio, an aligner error) become rows in the
  errors file, with the clip, the audio path and the reason; the run keeps going.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AudioError, TgsrError
from ..records import (ClipWords, ManifestItem, Utterance, Word, append_jsonl, completed_ids, iter_jsonl_dicts,
                       read_jsonl, record_to_dict, repair_torn_tail, write_jsonl)


@dataclass
class AlignSummary:
    total: int = 0            # manifest items (valid records)
    skipped_done: int = 0     # already in the output before this run
    skipped_failed: int = 0   # already in the errors file before this run
    aligned: int = 0
    failed: int = 0
    bad_records: int = 0      # malformed manifest lines
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    errors_path: str = ""
    reasons: dict = field(default_factory=dict)

    @property
    def realtime_factor(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def line(self) -> str:
        return (f"aligned {self.aligned}, failed {self.failed}, already done {self.skipped_done}, "
                f"previously failed {self.skipped_failed}, bad manifest lines {self.bad_records} "
                f"(of {self.total} clips); {self.audio_seconds:.1f}s of audio in {self.wall_seconds:.1f}s "
                f"= {self.realtime_factor:.1f}x real time")


def default_errors_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".errors.jsonl")


# ---------------------------------------------------------------- per-clip work (runs in workers)

_ALIGNER = None


def _init_worker(backend: str, model: str | None, options: dict, threads: int) -> None:
    global _ALIGNER
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover
        pass
    from .align import get_aligner

    _ALIGNER = get_aligner(backend, model, **options)


def assign_speakers(words: list[Word], utterances: list[Utterance]) -> list[Word]:
    """Give each word the speaker of the known utterance it overlaps most."""
    if not utterances:
        return words
    for w in words:
        best, overlap = None, 0.0
        mid = (w.start + w.end) / 2
        for u in utterances:
            ov = min(w.end, u.end) - max(w.start, u.start)
            if ov > overlap or (best is None and u.start <= mid <= u.end):
                best, overlap = u, max(ov, 0.0)
        if best is not None and best.speaker is not None:
            w.speaker = best.speaker
    return words


def align_item(item: ManifestItem, aligner=None) -> tuple[str, dict, float]:
    """("ok", ClipWords dict, seconds) or ("error", error row, seconds) for one clip."""
    from ..audio import SAMPLE_RATE, load_audio

    aligner = aligner or _ALIGNER
    try:
        audio = load_audio(item.audio)
        duration = audio.size / SAMPLE_RATE
        words = aligner.align(audio, item.transcript)
    except AudioError as e:
        return "error", {"clip": item.id, "audio": item.audio, "stage": "audio", "reason": e.reason}, 0.0
    except TgsrError as e:
        return "error", {"clip": item.id, "audio": item.audio, "stage": "align", "reason": str(e)}, 0.0
    except Exception as e:  # an aligner crash on one clip must not end the run
        return "error", {"clip": item.id, "audio": item.audio, "stage": "align",
                         "reason": f"{type(e).__name__}: {e}"}, 0.0
    utterances = list(item.utterances)
    if not utterances and item.speaker:
        utterances = [Utterance(text=item.transcript or "", start=0.0, end=round(duration, 3), speaker=item.speaker)]
    words = assign_speakers(words, utterances)
    rec = ClipWords(clip_id=item.id, audio=item.audio, duration=round(duration, 3), words=words,
                    utterances=utterances, source=item.source, backend=aligner.describe())
    return "ok", record_to_dict(rec), duration


# ---------------------------------------------------------------- the run

def _failed_ids(errors_path: Path) -> set[str]:
    done = set()
    if errors_path.exists():
        for _, obj in iter_jsonl_dicts(errors_path):
            # manifest rows (malformed lines, duplicate ids) are not alignment failures: a
            # duplicate id's first occurrence is still aligned
            if isinstance(obj, dict) and isinstance(obj.get("clip"), str) and obj.get("stage") != "manifest":
                done.add(obj["clip"])
    return done


def _drop_manifest_rows(errors_path: Path) -> None:
    """Forget the previous run's manifest problems; this run reports them again (no duplicates)."""
    if not errors_path.exists():
        return
    rows = [o for _, o in iter_jsonl_dicts(errors_path) if isinstance(o, dict)]
    if any(o.get("stage") == "manifest" for o in rows):
        write_jsonl(errors_path, [o for o in rows if o.get("stage") != "manifest"])


def _drop_error_rows(errors_path: Path, clips: set[str]) -> None:
    rows = [o for _, o in iter_jsonl_dicts(errors_path)
            if isinstance(o, dict) and (o.get("clip") not in clips or o.get("stage") == "manifest")]
    write_jsonl(errors_path, rows)


def align_manifest(manifest: str | Path, out: str | Path, *, backend: str, model: str | None = None,
                   workers: int = 1, errors_path: str | Path | None = None, retry_failed: bool = False,
                   options: dict | None = None, progress: bool = True, aligner=None,
                   limit: int | None = None) -> AlignSummary:
    """Align every clip of ``manifest`` into ``out`` (see the module docstring).

    ``aligner`` (an Aligner instance) runs in this process instead of ``workers`` processes.
    ``limit`` stops after that many clips were attempted (for trial runs).
    """
    from tqdm.auto import tqdm

    out, manifest = Path(out), Path(manifest)
    errors_path = Path(errors_path) if errors_path else default_errors_path(out)
    options = options or {}
    summary = AlignSummary(errors_path=str(errors_path))
    t0 = time.perf_counter()

    # malformed lines and repeated clip ids (the first is kept) are reported with file and line
    loaded = read_jsonl(manifest, ManifestItem, on_error="skip", unique="id")
    repair_torn_tail(errors_path)
    _drop_manifest_rows(errors_path)
    for err in loaded.errors:
        append_jsonl(errors_path, {"clip": None, "audio": None, "stage": "manifest", "path": err.path,
                                   "line": err.line, "field": err.field, "reason": err.reason})
    summary.bad_records = len(loaded.errors)
    items: list[ManifestItem] = list(loaded.records)
    summary.total = len(items)

    repair_torn_tail(out)
    done = completed_ids(out, key="clip_id")
    failed = _failed_ids(errors_path)
    if retry_failed and failed:
        _drop_error_rows(errors_path, failed)
        failed = set()
    pending = []
    for it in items:
        if it.id in done:
            summary.skipped_done += 1
        elif it.id in failed:
            summary.skipped_failed += 1
        else:
            pending.append(it)
    if limit is not None:
        pending = pending[:limit]

    bar = tqdm(total=len(pending), desc=f"align [{backend}]", unit="clip", disable=not progress)

    def record(status: str, payload: dict, seconds: float) -> None:
        if status == "ok":
            append_jsonl(out, _relative(payload, out))
            summary.aligned += 1
            summary.audio_seconds += seconds
        else:
            append_jsonl(errors_path, payload)
            summary.failed += 1
            key = payload["reason"].split(":")[0][:60]
            summary.reasons[key] = summary.reasons.get(key, 0) + 1
        bar.update(1)

    try:
        if aligner is not None or workers <= 1:
            if aligner is None:
                from .align import get_aligner

                aligner = get_aligner(backend, model, **options)
            for it in pending:
                record(*align_item(it, aligner))
        else:
            _run_parallel(pending, record, backend, model, options, workers)
    finally:
        bar.close()
        summary.wall_seconds = time.perf_counter() - t0
    if not out.exists():
        out.touch()
    if not errors_path.exists():
        errors_path.touch()
    return summary


def _run_parallel(pending: list[ManifestItem], record, backend: str, model: str | None, options: dict,
                  workers: int) -> None:
    threads = max(1, (os.cpu_count() or 1) // workers)
    ex = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                             initargs=(backend, model, options, threads))
    try:
        queue = iter(enumerate(pending))
        running: dict = {}
        results: dict[int, tuple] = {}
        next_to_write = 0

        def submit_one() -> bool:
            try:
                i, it = next(queue)
            except StopIteration:
                return False
            running[ex.submit(align_item, it)] = i
            return True

        for _ in range(workers * 2):  # a short queue: memory stays flat on huge manifests
            if not submit_one():
                break
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                i = running.pop(fut)
                try:
                    results[i] = fut.result()
                except Exception as e:  # a worker died (e.g. killed for memory)
                    it = pending[i]
                    results[i] = ("error", {"clip": it.id, "audio": it.audio, "stage": "worker",
                                            "reason": f"worker failed: {type(e).__name__}: {e}"}, 0.0)
                submit_one()
            while next_to_write in results:  # write in manifest order
                record(*results.pop(next_to_write))
                next_to_write += 1
    finally:
        ex.shutdown(wait=False, cancel_futures=True)


def _relative(payload: dict, out: Path) -> dict:
    audio = payload.get("audio")
    if audio and os.path.isabs(audio):
        try:
            payload = dict(payload, audio=Path(audio).resolve().relative_to(out.parent.resolve()).as_posix())
        except ValueError:
            pass
    return payload


__all__ = ["AlignSummary", "align_manifest", "align_item", "assign_speakers", "default_errors_path"]
