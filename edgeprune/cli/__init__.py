"""The `edgeprune` command: a thin layer over the Python API, one module per group of
commands, each parser beside its handler.

    sweep.py      sweep, refine, status          results.py   show, export, report, compare
    find.py       find
    recommend.py  recommend                      deploy.py    deploy
    latency.py    latency                        agent.py     agent
    catalog.py    models, algorithms             args.py      shared types and options
    litert.py     litert-env

Exit codes: 0 done, 1 the run could not go on (or trials failed), 2 bad input, 130
interrupted. Every failure is one line on stderr.
"""
from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

from ..errors import EdgepruneError, RunError
from ..interrupts import recorded
from . import agent, catalog, deploy, find, latency, litert, recommend, results, sweep
from .args import Parser, plugin_option

GROUPS = (sweep, find, results, recommend, deploy, agent, latency, litert, catalog)


def build_parser() -> Parser:
    p = Parser(prog="edgeprune", description="Prune, fine-tune, measure and compare CNNs for edge devices.")
    plugin_option(p)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add(sub)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    args.plugin = list(args.plugin) + list(getattr(args, "plugin_after", []))
    try:
        if args.plugin:
            from ..registry import load_plugins
            load_plugins(args.plugin)
        with recorded():
            return args.fn(args)
    except RunError as e:
        print(f"edgeprune: error: {e}", file=sys.stderr)
        return 1
    except EdgepruneError as e:
        print(f"edgeprune: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgeprune: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except OSError as e:
        if e.filename is None or os.environ.get("EDGEPRUNE_DEBUG"):
            raise
        from .oserrors import describe
        print(f"edgeprune: error: {describe(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - a bug of ours, or of a plugin: still one line
        if os.environ.get("EDGEPRUNE_DEBUG"):
            raise
        from ..errors import describe_error
        print(f"edgeprune: unexpected error: {describe_error(e)}; set EDGEPRUNE_DEBUG=1 for the traceback, and "
              "please report it", file=sys.stderr)
        return 1
