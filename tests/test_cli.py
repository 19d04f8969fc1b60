"""The top-level ``tgsr`` command: version, help, and behaviour shared by every subcommand."""

import subprocess
import sys

import pytest

from tgsr import __version__
from tgsr.cli import COMMAND_MODULES, main


def test_version_and_help_list_every_registered_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"tgsr {__version__}"
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in ("data", "rewards", "eval", "model", "train", "analyze"):
        assert f"    {name} " in out
    assert len(COMMAND_MODULES) == len(set(COMMAND_MODULES))


def test_output_piped_into_a_reader_that_stops_is_not_a_traceback():
    # Regression: `tgsr eval score ... | head` ended in a BrokenPipeError traceback.
    script = (
        "import sys\n"
        "from tgsr import cli\n"
        "def chatty(args):\n"
        "    for _ in range(200000):\n"
        "        print('x' * 80)\n"
        "build = cli.build_parser\n"
        "def patched():\n"
        "    p = build(); p.set_defaults(handler=chatty); return p\n"
        "cli.build_parser = patched\n"
        "sys.exit(cli.main([]))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_a_path_that_cannot_be_used_is_an_error_message_not_a_traceback(tmp_path, capsys):
    # Regression: `tgsr model tiny --out FILE` (and any output under a file) raised FileExistsError.
    f = tmp_path / "a.jsonl"
    f.write_text('{"completion": "x"}\n')
    assert main(["model", "tiny", "--family", "qwen2.5-omni", "--out", str(f)]) == 1
    assert "exists and is not a folder" in capsys.readouterr().err
    assert main(["rewards", "--input", str(f), "--out", str(f / "scored.jsonl")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tgsr: error:") and str(f) in err
