"""Run folders: one writer at a time (named when refused, taken over when dead), resumable item logs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tgsr.errors import TgsrError
from tgsr.runlog import LOCK_NAME, FolderLock, FolderLockedError, ItemLog

_HOLDER = """
import sys, time
from tgsr.runlog import FolderLock
lock = FolderLock(sys.argv[1], command="holder-under-test")
if sys.argv[2] == "file":
    lock = FolderLock.for_file(sys.argv[1], command="holder-under-test")
lock.acquire()
print("held", flush=True)
time.sleep(600)
"""


def hold_lock(target, kind: str = "folder") -> subprocess.Popen:
    """Another process that holds the lock of ``target`` until it is killed."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(target), kind], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()


@pytest.fixture
def holder(tmp_path):
    procs = []

    def start(target, kind="folder"):
        procs.append(hold_lock(target, kind))
        return procs[-1]

    yield start
    for p in procs:
        if p.poll() is None:
            _kill(p)


def test_a_second_process_is_refused_naming_the_holder_and_a_dead_one_is_taken_over(tmp_path, holder):
    run = tmp_path / "run"
    proc = holder(run)
    with pytest.raises(FolderLockedError) as e:
        FolderLock(run).acquire()
    msg = str(e.value)
    assert f"pid {proc.pid} on {socket.gethostname()}, started 20" in msg and "command: holder-under-test" in msg
    _kill(proc)                                   # kill -9: no clean-up, the lock file stays
    assert json.loads((run / LOCK_NAME).read_text())["pid"] == proc.pid
    said = []
    with FolderLock(run, echo=said.append):
        assert json.loads((run / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert len(said) == 1 and f"taking over a stale lock (pid {proc.pid}" in said[0] and "has ended" in said[0]
    assert not (run / LOCK_NAME).exists()         # released on exit


def test_a_lock_from_another_host_is_refused(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 4242, "host": "elsewhere", "started": "x", "command": "c"}))
    with pytest.raises(FolderLockedError,
                       match=r"locked from another host \(pid 4242 on elsewhere.*delete .*\.tgsr\.lock"):
        FolderLock(tmp_path).acquire()


def test_nested_locks_in_one_process_and_file_locks(tmp_path, holder):
    with FolderLock(tmp_path):
        with FolderLock(tmp_path):              # run_eval's own finalize
            pass
        assert (tmp_path / LOCK_NAME).exists()  # the outer one still holds it
    assert not (tmp_path / LOCK_NAME).exists()
    out = tmp_path / "sta.jsonl"
    holder(out, "file")
    with pytest.raises(FolderLockedError, match=r"sta.jsonl is in use by another process"):
        FolderLock.for_file(out).acquire()
    with FolderLock.for_file(tmp_path / "other.jsonl"):  # another file in the same folder is free
        pass


def test_item_log_guard_resume_and_retries(tmp_path):
    log = ItemLog(tmp_path / "items.jsonl", tmp_path / "settings.json", what="test rows", hint="use another --out")
    assert log.resume({"model": "a", "mask": "silence"}) == set()
    log.append({"id": "x", "value": 1})
    log.append({"id": "y", "error": "judge down"})
    with open(tmp_path / "items.jsonl", "a") as fh:
        fh.write('{"id": "z", "val')            # torn by a kill
    with pytest.raises(TgsrError, match=r"holds test rows made with other settings \(mask: 'silence' -> 'noise'\); "
                                        "use another --out"):
        log.resume({"model": "a", "mask": "noise"})
    done = log.resume({"model": "a", "mask": "silence"})
    assert done == {"x"}                          # the failed item is retried, the torn one was never done
    assert (tmp_path / "items.jsonl").read_text().endswith("}\n")
    assert [it for it in log.pending(["x", "y", "z"], done, key=str)] == ["y", "z"]
    log.append({"id": "y", "value": 2})           # the retry replaces the failure
    assert [r["value"] for r in log.rows_for(["x", "y"])] == [1, 2]
    final = ItemLog(tmp_path / "items.jsonl", tmp_path / "settings.json", retry_errors=False)
    final.append({"id": "w", "error": "unreadable audio"})
    assert final.resume({"model": "a", "mask": "silence"}) == {"x", "y", "w"}


def test_settings_bind_only_rows_that_exist(tmp_path):
    log = ItemLog(tmp_path / "items.jsonl", tmp_path / "settings.json", guard=("model",))
    log.resume({"model": "a", "note": 1})
    assert log.resume({"model": "b"}) == set()    # nothing was written under "a"
    log.append({"id": "x"})
    assert log.resume({"model": "b", "note": 2}) == {"x"}   # keys outside the guard may change
    with pytest.raises(TgsrError, match="model: 'b' -> 'c'"):
        log.resume({"model": "c"})


# ---------------------------------------------------------------- every run folder is locked

def _sta_benchmark(root: Path, n: int = 3) -> Path:
    from tgsr.audio import save_audio
    from tgsr.records import StaExample, write_jsonl

    recs = []
    for i in range(n):
        path = root / "audio" / f"c{i}.wav"
        save_audio(path, (0.1 * np.random.default_rng(i).standard_normal(16000)).astype(np.float32))
        recs.append(StaExample(id=f"s{i}", audio=str(path), phrase=f"word {i}", start=0.1, end=0.5, duration=1.0))
    write_jsonl(root / "sta.jsonl", recs)
    return root


def test_eval_run_refuses_a_folder_another_process_is_writing(tiny_omni_dir, tmp_path, holder):
    from tgsr.eval.run import PREDICTIONS, RunConfig, run_eval

    data = _sta_benchmark(tmp_path / "sta")
    proc = holder(tmp_path / "run")
    with pytest.raises(FolderLockedError, match=f"pid {proc.pid} .*command: holder-under-test"):
        run_eval(RunConfig(model=str(tiny_omni_dir), benchmark="sta", out=str(tmp_path / "run"), data_root=str(data),
                           max_new_tokens=4), progress=False)
    assert not (tmp_path / "run" / PREDICTIONS).exists()


def test_the_analyses_refuse_a_folder_another_process_is_writing(tmp_path, holder):
    from tgsr.analysis.attention import run_attention
    from tgsr.analysis.behaviors import run_behaviors
    from tgsr.analysis.faithfulness import run_faithfulness

    out = tmp_path / "out"
    holder(out)
    with pytest.raises(FolderLockedError):
        run_attention(None, [], out, progress=False)
    with pytest.raises(FolderLockedError):
        run_faithfulness(None, [], out, progress=False)
    with pytest.raises(FolderLockedError):
        run_behaviors(tmp_path / "run", out, asr="none", progress=False)
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]   # nothing written


def test_training_refuses_an_output_folder_in_use(tmp_path, holder):
    from tgsr.train import run
    from tgsr.train.config import load_config

    args, tg = load_config("sta", None, [], extra={"tgsr.model": "m", "tgsr.train_file": "t",
                                                    "output_dir": str(tmp_path / "o")})
    holder(tmp_path / "o")
    with pytest.raises(FolderLockedError, match="o is in use by another process"):
        run("sta", args, tg)


def test_data_commands_refuse_an_output_in_use(tmp_path, holder, capsys):
    from tgsr.cli import main

    words = tmp_path / "words.jsonl"
    words.write_text("")
    holder(tmp_path / "sta.jsonl", "file")
    assert main(["data", "sta", "--words", str(words), "--out", str(tmp_path / "sta.jsonl")]) == 1
    assert "sta.jsonl is in use by another process" in capsys.readouterr().err
    assert not (tmp_path / "sta.jsonl").exists()
    holder(tmp_path / "corpus")
    assert main(["data", "synth", "--out", str(tmp_path / "corpus"), "--n-train", "1", "--n-test", "1",
                 "--no-progress"]) == 1
    assert "corpus is in use by another process" in capsys.readouterr().err


def test_prediction_rows_record_the_settings_that_produced_them(tiny_omni_dir, tmp_path):
    from tgsr.eval.run import PREDICTIONS, RunConfig, run_eval
    from tgsr.models import load_model

    data = _sta_benchmark(tmp_path / "sta", n=2)
    lm = load_model(tiny_omni_dir)
    for prompt in ("grounded", "cot"):
        run_eval(RunConfig(model=str(tiny_omni_dir), benchmark="sta", out=str(tmp_path / prompt), data_root=str(data),
                           prompt=prompt, max_new_tokens=4, temperature=0.5, seed=3), lm=lm, progress=False)
    rows = {p: [json.loads(x) for x in (tmp_path / p / PREDICTIONS).read_text().splitlines()]
            for p in ("grounded", "cot")}
    for prompt, preds in rows.items():
        assert len(preds) == 2
        for r in preds:
            s = r["meta"]["settings"]
            assert s["prompt"] == prompt and s["model"] == str(tiny_omni_dir) and s["temperature"] == 0.5
            assert s["seed"] == 3 and s["max_new_tokens"] == 4 and s["audio_condition"] == "own"


def test_the_demo_refuses_a_folder_in_use(tmp_path, holder, capsys):
    from tgsr.cli import main

    holder(tmp_path / "demo")
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo")]) == 1
    assert "demo is in use by another process" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == [LOCK_NAME]


def test_without_file_locks_the_holder_pid_decides(tmp_path, monkeypatch):
    """A filesystem without flock (some network mounts): a live holder on this host still refuses."""
    import errno
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    host = socket.gethostname()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": os.getppid(), "host": host, "started": "x", "command": "c"}))
    said = []
    with pytest.raises(FolderLockedError, match=rf"locked by another process \(pid {os.getppid()} on {host}"):
        FolderLock(tmp_path, echo=said.append).acquire()
    assert "has no file locks" in said[0]
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(done.stdout)
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": dead, "host": host, "started": "x", "command": "c"}))
    said.clear()
    with FolderLock(tmp_path, echo=said.append):
        pass
    assert any(f"taking over a stale lock (pid {dead}" in m for m in said)
