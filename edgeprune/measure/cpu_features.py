"""The CPU's int8 instructions, recorded with every latency figure: they decide whether
an int8 model runs faster than its fp32 twin. Without an int8 dot product (x86 VNNI or
AMX, Arm's dot-product or matrix-multiply extensions), int8 kernels widen to 16 bits
and often lose to fp32.

Standard library only: the device agent's one-file bundle carries this module, so a
device reports its own CPU's.
"""
from __future__ import annotations

from typing import Optional

# /proc/cpuinfo flag -> what it is called in results, most capable first
INT8_FLAGS = (("amx_int8", "AMX-INT8"), ("avx512_vnni", "AVX512-VNNI"), ("avx_vnni", "AVX-VNNI"),
              ("i8mm", "Arm-I8MM"), ("asimddp", "Arm-DOTPROD"))


def cpu_int8(cpuinfo: Optional[str] = None) -> str:
    """'AVX512-VNNI', 'AMX-INT8+AVX512-VNNI', 'Arm-DOTPROD', 'none' (the CPU lists its
    flags, and no int8 dot product is among them), or 'unknown' (no /proc/cpuinfo:
    not Linux)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            return "unknown"
    flags: set[str] = set()
    listed = False
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):       # x86 / Arm
            listed = True
            flags.update(value.split())
    if not listed:
        return "unknown"
    found = [name for flag, name in INT8_FLAGS if flag in flags]
    return "+".join(found) or "none"
