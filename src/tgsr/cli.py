"""The ``tgsr`` command.

Subcommands live in ``tgsr.commands.<name>``; each module defines ``register(tree)`` and
adds its parsers with ``tree.command(...)`` or ``tree.group(...)``. Modules import heavy
libraries (torch, transformers) inside their handlers, so ``tgsr --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Callable, Sequence

from . import __version__
from .errors import TgsrError

# One entry per command module. A module is listed only once its commands work.
COMMAND_MODULES: list[str] = [
    "tgsr.commands.data_synth",
    "tgsr.commands.data_lab",
    "tgsr.commands.data_prep",
    "tgsr.commands.rewards",
    "tgsr.commands.demo",
    "tgsr.commands.eval",
    "tgsr.commands.model",
    "tgsr.commands.train",
    "tgsr.commands.analyze",
]


class Group:
    """A level of subcommands: ``command`` adds one that runs ``handler(args)``."""

    def __init__(self, sub: argparse._SubParsersAction):
        self._sub = sub

    def command(self, name: str, help: str, handler: Callable[[argparse.Namespace], int | None],
                **kwargs) -> argparse.ArgumentParser:
        p = self._sub.add_parser(name, help=help, description=help, **kwargs)
        p.set_defaults(handler=handler)
        return p


class CommandTree(Group):
    """Top-level subcommands and named groups (``tgsr data synth``, ``tgsr data align`` ...)."""

    def __init__(self, parser: argparse.ArgumentParser):
        super().__init__(parser.add_subparsers(dest="command", metavar="COMMAND"))
        self._groups: dict[str, argparse._SubParsersAction] = {}

    def group(self, name: str, help: str) -> Group:
        if name not in self._groups:
            gp = self._sub.add_parser(name, help=help, description=help)
            gp.set_defaults(handler=lambda args, gp=gp: (gp.print_help(), 2)[1])
            self._groups[name] = gp.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")
        return Group(self._groups[name])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tgsr",
        description="Timestamp-grounded speech reasoning: train and evaluate audio-language models "
                    "that cite the audio segments they listen to.",
    )
    parser.add_argument("--version", action="version", version=f"tgsr {__version__}")
    tree = CommandTree(parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(tree)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        rc = handler(args)
    except TgsrError as e:
        print(f"tgsr: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tgsr: interrupted", file=sys.stderr)
        return 130
    except (FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError) as e:
        # A path the user gave cannot be written or read as asked: the message names it.
        print(f"tgsr: error: {e.strerror}: {e.filename}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # Output piped into a reader that stopped early (`tgsr eval score ... | head`): not a
        # failure of tgsr. Point stdout at devnull so the interpreter's final flush is quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
