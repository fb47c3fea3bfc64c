"""The sensitivity maps of a run's allocated trials, drawn: for each channel group
(rows) and each width it was kept at alone (columns), the loss on the calibration
images after the cheap recovery, above the unpruned model's. What the
`sensitivity` and `latency` allocators read to choose widths."""
from __future__ import annotations

import json
import math

from ..run import RunFolder
from .figures import Figure, Panel, Trace, empty, natural_key

MAX_MAPS = 6


def sensitivity_maps(data) -> list[tuple[str, dict]]:
    """(title, map JSON) for each map kept in the runs' RUN/allocation/ folders."""
    out = []
    for run in data.runs:
        for path in RunFolder(run.path).allocation_files("sensitivity"):
            try:
                m = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue            # a map being written, or damaged: the trials say what they used
            info = m.get("info") or {}
            title = f"{info.get('model', path.stem)} · {info.get('algorithm', '?')}"
            out.append((f"{run.label} · {title}" if data.multi_run else title, m))
    return out[:MAX_MAPS]


def sensitivity_map_figure(maps: list[tuple[str, dict]], fig_id: str) -> Figure:
    if not maps:
        return empty(fig_id, "no sensitivity map: no trial of the run was allocated by sensitivity or latency")
    panels = []
    for title, m in maps:
        groups = sorted(m["loss"], key=natural_key)
        widths = [f"{w:g}" for w in m["widths"]]
        base = float(m.get("base_loss") or 0.0)
        z = [[max(0.0, float(v) - base) if v is not None and math.isfinite(float(v)) else None
              for v in m["loss"][g]] for g in groups]
        recovery = m.get("recovery") or "batchnorm"
        panels.append(Panel([Trace(widths, groups, mode="heatmap", z=z, zlabel="loss added", zmax=None,
                                   zformat=".3f")],
                            title=f"{title} ({m.get('images', '?')} images, {recovery}, "
                                  f"{float(m.get('seconds') or 0):.0f} s)",
                            xtitle="share of the group's channels kept", ytitle="channel group"))
    height = max(300, 120 + 16 * max(len(p.traces[0].y) for p in panels)) * len(panels)
    return Figure(fig_id, "Sensitivity maps: loss added when one group alone keeps each width", panels,
                  cols=1, height=min(height, 4000), shared_y=False)
