"""What the commands share: argument types that refuse bad values in one line, and
the options every command takes."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from ..errors import EdgepruneError


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line naming the option and the fix (the
    usage is what `--help` is for), with exit code 2 like every bad input."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def integer(lo: int, hi: int):
    """An argparse type: an integer in [lo, hi] (argparse names the option in its error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is out of range ({lo}..{hi})")
        return value
    return parse


def number(lo: float, hi: float = float("inf"), *, low_open: bool = False):
    """An argparse type: a number in [lo, hi] (or (lo, hi] with low_open)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (lo < value if low_open else lo <= value) or not value <= hi:
            bound = f"more than {lo:g}" if low_open else f"at least {lo:g}"
            raise argparse.ArgumentTypeError(f"{value:g} is out of range: give {bound}"
                                             + (f" and at most {hi:g}" if hi != float("inf") else ""))
        return value
    return parse


def plugin_option(p: argparse.ArgumentParser, suppress: bool = False) -> None:
    """--plugin MODULE, before the command or after it (`edgeprune sweep cfg.yaml --plugin lab`)."""
    p.add_argument("--plugin", action="append", dest="plugin_after" if suppress else "plugin",
                   default=argparse.SUPPRESS if suppress else [], metavar="MODULE",
                   help="import MODULE first: it registers criteria, pruners, models, ... (repeatable)")


def command(sub, name: str, help: str, handler) -> argparse.ArgumentParser:
    """A subcommand with its handler and the options every command takes."""
    p = sub.add_parser(name, help=help, description=help)
    plugin_option(p, suppress=True)
    p.set_defaults(fn=handler)
    return p


def folder_for(path: Optional[str], what: str) -> None:
    """An output folder may exist or not, but it may not be a file."""
    if path and Path(path).exists() and not Path(path).is_dir():
        raise EdgepruneError(f"{what} {path!r} is a file; name a folder (it is created if missing)")


def print_paths(files) -> None:
    for f in files:
        print(f)


def warn(text: str) -> None:
    print(f"edgeprune: warning: {text}", file=sys.stderr)
