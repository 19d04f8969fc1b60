"""Run folders: one process at a time, and per-item results that survive a crash and resume.

Every command that writes a folder of results (``tgsr eval run``, the analyses, the data commands,
training) holds ``FolderLock`` on it, and the item-by-item commands keep their results in an
``ItemLog``:

- ``FolderLock(folder)``: ``FOLDER/.tgsr.lock`` holds an exclusive ``flock`` for as long as the
  command runs, and says who holds it (pid, host, start time, command); ``FolderLock.for_file(path)``
  does the same for a command whose output is one file (``.NAME.tgsr.lock`` beside it). A second process on the
  same folder is refused with that holder. The kernel drops the ``flock`` when its process dies,
  so a lock file left by a crash on this host is taken over, with a message naming the dead
  holder; one left by another host is refused (its process may be alive: delete the file once
  it is not).
- ``ItemLog(rows, settings_file, ...)``: an append-only JSONL of one row per item, each row
  flushed and fsync'ed as soon as its item is done, so a killed run loses at most the row being
  written (a torn last line is cut on resume). ``resume(settings)`` refuses a folder whose rows
  were produced with other settings, naming what differs, and returns the ids already done;
  ``pending(items)`` is what is left. By default a failed row is retried on resume (a transient
  failure is not kept for good) and the last row of an id wins; ``retry_errors=False`` keeps
  failed rows as final (an evaluation's unreadable audio stays an error, written once).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shlex
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

from .errors import TgsrError
from .records import append_jsonl, iter_jsonl_dicts, repair_torn_tail

log = logging.getLogger(__name__)

LOCK_NAME = ".tgsr.lock"
T = TypeVar("T")
_HELD: dict[str, int] = {}  # folders this process holds -> nesting depth (a nested lock is a no-op)


class FolderLockedError(TgsrError):
    """Another process is writing the folder."""


def _describe(holder: dict) -> str:
    return (f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}, "
            f"command: {holder.get('command')}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


class FolderLock:
    """Exclusive use of a run folder by this process (see the module doc); a context manager.

    ``echo`` receives the notice when a stale lock is taken over. ``enabled=False`` makes it a
    no-op (the non-main ranks of a multi-process training run: rank 0 holds the lock for all).
    Nested locks on one folder within a process are allowed (``run_eval`` then ``finalize``).
    """

    def __init__(self, folder: str | Path, *, command: str | None = None, echo: Callable[[str], None] | None = None,
                 enabled: bool = True):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.target = self.folder  # what messages name: the folder, or the file being written
        self.command = command if command is not None else shlex.join(sys.argv)
        self.echo = echo or (lambda msg: print(msg, file=sys.stderr))
        self.enabled = enabled
        self._fd: int | None = None
        self._nested = False

    @classmethod
    def for_file(cls, path: str | Path, **kwargs) -> "FolderLock":
        """The lock of one output file (``.NAME.tgsr.lock`` in its folder)."""
        path = Path(path)
        lock = cls(path.parent, **kwargs)
        lock.path = path.parent / f".{path.name}{LOCK_NAME}"
        lock.target = path
        return lock

    def acquire(self) -> "FolderLock":
        import fcntl

        if not self.enabled or self._fd is not None or self._nested:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        key = str(self.path.resolve())
        if key in _HELD:
            _HELD[key] += 1
            self._nested = True
            return self
        host = socket.gethostname()
        flocked = True
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):  # e.g. some network filesystems
                    self.echo(f"{self.target}: this filesystem has no file locks; the lock relies on the holder's "
                              "pid alone")
                    flocked = False
                    break
                os.close(fd)
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise FolderLockedError(f"{self.target} is in use by another process ({_describe(self._read())}); "
                                        "wait for it to finish or write elsewhere") from None
            try:
                same_file = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same_file = False
            if not same_file:  # the holder removed the file between our open and our lock: start over
                os.close(fd)
                continue
            break
        previous = self._read()
        if previous.get("pid") is not None:
            alive_here = previous.get("host") == host and _pid_alive(int(previous["pid"]))
            if previous.get("host") != host or (not flocked and alive_here and previous["pid"] != os.getpid()):
                if flocked:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
                where = "from another host" if previous.get("host") != host else "by another process"
                raise FolderLockedError(
                    f"{self.target} is locked {where} ({_describe(previous)}); if that process has ended, "
                    f"delete {self.path}")
            if previous.get("pid") != os.getpid():
                state = "has ended" if not _pid_alive(int(previous["pid"])) else "no longer holds it"
                self.echo(f"{self.target}: taking over a stale lock ({_describe(previous)}): that process {state}")
        holder = {"pid": os.getpid(), "host": host, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  "command": self.command}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        os.fsync(fd)
        self._fd = fd
        _HELD[key] = 1
        return self

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def release(self) -> None:
        import fcntl

        key = str(self.path.resolve())
        if self._nested:
            _HELD[key] -= 1
            self._nested = False
            return
        if self._fd is None:
            return
        _HELD.pop(key, None)
        try:
            self.path.unlink()  # while still locked: nobody can take a file we are about to drop
        except FileNotFoundError:
            pass
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        except OSError:  # a filesystem without locks: nothing to release
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def settings_diff(old: dict, new: dict, keys: Sequence[str] | None = None) -> str:
    """What changed between two settings dicts, e.g. ``mask: 'silence' -> 'noise'``."""
    names = keys if keys is not None else sorted(set(old) | set(new))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in names if old.get(k) != new.get(k))


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON through a temporary file, so a reader never sees half of it."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class ItemLog:
    """Per-item rows of one run folder (see the module doc).

    ``guard``: the settings keys that must match to resume (None: all of them). ``what`` names
    the rows in messages ("attention results"); ``hint`` says what to do instead.
    """

    def __init__(self, rows: str | Path, settings_file: str | Path, *, guard: Sequence[str] | None = None,
                 retry_errors: bool = True, id_key: str = "id", what: str = "results",
                 hint: str = "use another --out"):
        self.path = Path(rows)
        self.settings_file = Path(settings_file)
        self.guard = tuple(guard) if guard is not None else None
        self.retry_errors = retry_errors
        self.id_key = id_key
        self.what = what
        self.hint = hint

    def resume(self, settings: dict, *, save: bool = True) -> set[str]:
        """Check ``settings`` against the rows already written; return the ids that need no new
        attempt. Settings bind only rows that exist (an attempt that wrote nothing binds nothing).
        ``save=False`` leaves the settings file to ``save_settings`` (e.g. after the model loaded)."""
        if repair_torn_tail(self.path):
            log.warning("%s: dropped a partial last line left by an interrupted run", self.path)
        latest = self.latest()
        if latest and self.settings_file.exists():
            try:
                old = json.loads(self.settings_file.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise TgsrError(f"{self.settings_file}: unreadable run settings ({e}); {self.hint}") from None
            diff = settings_diff(old, settings, self.guard)
            if diff:
                raise TgsrError(f"{self.path.parent} holds {self.what} made with other settings ({diff}); "
                                f"{self.hint}")
        if save:
            self.save_settings(settings)
        if self.retry_errors:
            return {i for i, r in latest.items() if "error" not in r or r["error"] is None}
        return set(latest)

    def save_settings(self, settings: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.settings_file, settings)

    def pending(self, items: Iterable[T], done: set[str], key: Callable[[T], str] = lambda x: x.id) -> list[T]:
        return [it for it in items if key(it) not in done]

    def append(self, row: Any) -> None:
        append_jsonl(self.path, row)

    def latest(self) -> dict[str, dict]:
        """id -> the last row written for it (a retried item replaces its failed attempt)."""
        out: dict[str, dict] = {}
        if not self.path.exists():
            return out
        for _, obj in iter_jsonl_dicts(self.path):
            if isinstance(obj, dict) and isinstance(obj.get(self.id_key), str):
                out[obj[self.id_key]] = obj
        return out

    def rows_for(self, ids: Iterable[str]) -> list[dict]:
        """The latest row of each of ``ids`` that has one (items outside a run's selection are left out)."""
        wanted = set(ids)
        return [r for i, r in self.latest().items() if i in wanted]


def locks_output(attr: str = "out", *, folder: bool = False):
    """A command handler that holds the lock of ``args.<attr>`` (one output file, or a folder with
    ``folder=True``) while it runs: the data commands' guard against a second writer."""
    import functools

    def wrap(handler):
        @functools.wraps(handler)
        def run(args):
            target = getattr(args, attr)
            with (FolderLock(target) if folder else FolderLock.for_file(target)):
                return handler(args)
        return run
    return wrap


__all__ = ["LOCK_NAME", "FolderLock", "FolderLockedError", "ItemLog", "locks_output", "settings_diff",
           "write_json_atomic"]
