"""The resumable, parallel alignment run behind ``tgsr data align``.

manifest.jsonl --(aligner, N worker processes)--> words.jsonl (ClipWords) + errors file.

- Resumable: clips already in the output (by ``clip_id``) or already in the errors file
  are skipped; a line torn by a crash is cut first. Re-running after an interruption
  gives the same file as an uninterrupted run, without duplicates.
- Output order is the manifest order whatever the number of workers (results are held
  back until every earlier clip is written), so runs are reproducible.
- Per-clip failures (missing, empty or corrupt audio, an aligner error) become rows in the
  errors file, with the clip, the audio path and the reason; the run keeps going.
- A clip that is only partly aligned keeps its timed words; the transcript words that could
  not be timed are listed in an errors row with stage ``words`` (the clip counts as done).
- A worker process that dies takes only its clip with it: the clips that were in flight are
  run again one at a time in a fresh pool, and the one that kills a worker alone is recorded
  as failed (stage ``worker``).
"""

from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AudioError, TgsrError
from ..records import (
    ClipWords,
    ManifestItem,
    Utterance,
    Word,
    append_jsonl,
    completed_ids,
    iter_jsonl_dicts,
    read_jsonl,
    record_to_dict,
    repair_torn_tail,
    write_jsonl,
)


@dataclass
class AlignSummary:
    total: int = 0            # manifest items (valid records)
    skipped_done: int = 0     # already in the output before this run
    skipped_failed: int = 0   # already in the errors file before this run
    aligned: int = 0
    failed: int = 0
    words_aligned: int = 0    # timed words written by this run
    words_lost: int = 0       # transcript words of written clips that could not be timed
    forced: bool = True       # the backend aligns the transcript (else it recognises the words)
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
                f"(of {self.total} clips); {self.word_counts()}; {self.audio_seconds:.1f}s of audio in "
                f"{self.wall_seconds:.1f}s "
                f"= {self.realtime_factor:.1f}x real time")

    def word_counts(self) -> str:
        if self.forced:
            return f"words: {self.words_aligned} aligned, {self.words_lost} lost in aligned clips"
        return f"words: {self.words_aligned} recognised (transcripts are not used)"


def default_errors_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".errors.jsonl")


# ---------------------------------------------------------------- per-clip work (runs in workers)

_ALIGNER = None
_INIT_ERROR: TgsrError | None = None


def _init_worker(backend: str, model: str | None, options: dict, threads: int) -> None:
    global _ALIGNER, _INIT_ERROR
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover
        pass
    from .align import get_aligner

    try:
        _ALIGNER = get_aligner(backend, model, **options)
    except TgsrError as e:  # raised again by each task, so the run ends with this message
        _INIT_ERROR = e


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
    """("ok", ClipWords dict, seconds) or ("error", error row, seconds) for one clip.

    An "ok" dict whose clip lost words carries them under ``"_lost"`` (taken off before writing).
    """
    from ..audio import SAMPLE_RATE, load_audio

    aligner = aligner or _ALIGNER
    if aligner is None and _INIT_ERROR is not None:
        raise _INIT_ERROR
    try:
        audio = load_audio(item.audio)
        duration = audio.size / SAMPLE_RATE
        if hasattr(aligner, "align_detailed"):
            result = aligner.align_detailed(audio, item.transcript)
            words, lost = result.words, result.lost
        else:  # any object with align() (the Aligner interface before align_detailed)
            words, lost = aligner.align(audio, item.transcript), []
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
    payload = record_to_dict(rec)
    if lost:
        payload["_lost"] = list(lost)
    return "ok", payload, duration


# ---------------------------------------------------------------- the run

def _failed_ids(errors_path: Path) -> set[str]:
    done = set()
    if errors_path.exists():
        for _, obj in iter_jsonl_dicts(errors_path):
            # manifest rows (malformed lines, duplicate ids) are not alignment failures: a
            # duplicate id's first occurrence is still aligned; "words" rows belong to written clips
            if isinstance(obj, dict) and isinstance(obj.get("clip"), str) and obj.get("stage") not in ("manifest",
                                                                                                        "words"):
                done.add(obj["clip"])
    return done


def _drop_manifest_rows(errors_path: Path) -> None:
    """Forget the previous run's manifest problems; this run reports them again (no duplicates)."""
    if not errors_path.exists():
        return
    rows = [o for _, o in iter_jsonl_dicts(errors_path) if isinstance(o, dict)]
    if any(o.get("stage") == "manifest" for o in rows):
        write_jsonl(errors_path, [o for o in rows if o.get("stage") != "manifest"])


def _drop_orphan_word_rows(errors_path: Path, done: set[str]) -> None:
    """Forget lost-word rows of clips whose words never reached the output (a crash in between):
    the clip is aligned again and writes its row again."""
    if not errors_path.exists():
        return
    rows = [o for _, o in iter_jsonl_dicts(errors_path) if isinstance(o, dict)]
    if any(o.get("stage") == "words" and o.get("clip") not in done for o in rows):
        write_jsonl(errors_path, [o for o in rows if o.get("stage") != "words" or o.get("clip") in done])


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
    from .align.base import FORCED_BACKENDS

    summary = AlignSummary(errors_path=str(errors_path), forced=backend in FORCED_BACKENDS)
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
    _drop_orphan_word_rows(errors_path, done)
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
            lost = payload.pop("_lost", [])
            if lost:  # the errors row first: a crash in between never hides lost words behind a written clip
                append_jsonl(errors_path, {"clip": payload["clip_id"], "audio": payload["audio"], "stage": "words",
                                           "reason": f"{len(lost)} of {len(lost) + len(payload['words'])} "
                                                     "transcript words could not be aligned", "words": lost})
            append_jsonl(out, _relative(payload, out))
            summary.aligned += 1
            summary.words_aligned += len(payload["words"])
            summary.words_lost += len(lost)
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
    """Align ``pending`` in ``workers`` processes, writing results in manifest order.

    When a worker dies, the pool breaks and every clip in flight fails with it. Those clips
    are run again one at a time in a fresh pool; a clip that breaks the pool while it runs
    alone is the one that kills workers and is recorded as failed. The rest of the run goes on.
    """
    threads = max(1, (os.cpu_count() or 1) // workers)

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                                   initargs=(backend, model, options, threads))

    ex = new_pool()
    try:
        queue = deque(range(len(pending)))
        suspects: deque[int] = deque()  # in flight when a worker died
        running: dict = {}              # future -> (index, ran alone)
        results: dict[int, tuple] = {}
        next_to_write = 0

        def died(i: int, e: BaseException) -> tuple:
            it = pending[i]
            return ("error", {"clip": it.id, "audio": it.audio, "stage": "worker",
                              "reason": f"worker process died while aligning this clip alone "
                                        f"({type(e).__name__}: {e})"}, 0.0)

        while queue or suspects or running:
            broken: BaseException | None = None
            source = suspects if suspects else queue
            try:
                if suspects:  # one at a time, nothing else in flight, so a death names its clip
                    if not running:
                        i = suspects.popleft()
                        running[ex.submit(align_item, pending[i])] = (i, True)
                else:  # a short queue: memory stays flat on huge manifests
                    while queue and len(running) < workers * 2:
                        i = queue.popleft()
                        running[ex.submit(align_item, pending[i])] = (i, False)
            except BrokenProcessPool as e:  # broke between two submissions
                source.appendleft(i)
                broken = e
            if running and broken is None:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    i, alone = running.pop(fut)
                    try:
                        results[i] = fut.result()
                    except TgsrError:  # the worker could not load the aligner: no clip can run
                        raise
                    except BrokenProcessPool as e:
                        if alone:
                            results[i] = died(i, e)
                        else:
                            suspects.append(i)
                        broken = e
                    except Exception as e:  # the task itself could not run (e.g. not picklable)
                        it = pending[i]
                        results[i] = ("error", {"clip": it.id, "audio": it.audio, "stage": "worker",
                                                "reason": f"worker failed: {type(e).__name__}: {e}"}, 0.0)
            if broken is not None:  # every clip still in flight went down with the pool
                for fut, (i, _) in running.items():
                    if fut.done() and not fut.cancelled() and fut.exception() is None:
                        results[i] = fut.result()
                    else:
                        suspects.append(i)
                running.clear()
                suspects = deque(sorted(suspects))
                ex.shutdown(wait=False, cancel_futures=True)
                ex = new_pool()
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
