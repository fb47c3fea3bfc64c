"""`agent`: serve latency benchmarks on this device (edgeprune.agent; its options are
the agent's own, so `edgeprune agent` and `python3 edgeprune-agent.pyz` take the same)."""
from __future__ import annotations

from .args import command


def agent_command(args) -> int:
    from ..agent.main import run
    return run(args)


def add(sub) -> None:
    from ..agent.main import add_arguments
    s = command(sub, "agent", "serve latency benchmarks on this device (token from $EDGEPRUNE_AGENT_TOKEN); needs "
                "onnxruntime, not torch", agent_command)
    add_arguments(s)
