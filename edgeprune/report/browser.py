"""Opening a report in a real headless Chromium: did it draw everything without
JavaScript errors, and what does it look like (a screenshot)? Used by the tests
and by anyone who wants to check a report on a machine without a screen."""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import EdgepruneError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio"]


def find_chromium() -> Optional[str]:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageCheck:
    ready: Optional[str]            # "ok", "errors", or None when the page never finished
    figures: int                    # chart containers on the page
    figures_drawn: int              # of which Plotly drew an SVG
    table_rows: int
    errors: list[str] = field(default_factory=list)      # from the page's own error box and the console log
    dom: str = ""

    @property
    def ok(self) -> bool:
        return self.ready == "ok" and not self.errors and self.figures_drawn == self.figures


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise EdgepruneError(f"chromium did not finish within {timeout:.0f} s: {' '.join(args[:3])} …") from e


def check_page(html_path: str | Path, screenshot: str | Path | None = None, width: int = 1400,
               height: int = 4000, chromium: Optional[str] = None, timeout: float = 120) -> PageCheck:
    """Load the page from disk (no network) in headless Chromium; read the page's
    ready marker and error box from the DOM and console errors from Chromium's log;
    optionally save a screenshot of the top `height` pixels."""
    exe = chromium or find_chromium()
    if not exe:
        raise EdgepruneError("no Chromium found (install Debian's `chromium` package)")
    url = Path(html_path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="edgeprune-chromium-") as profile:
        base = [exe, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000",
                "--enable-logging=stderr", "--v=0"]
        shot = [] if screenshot is None else [f"--screenshot={Path(screenshot).resolve()}",
                                              f"--window-size={width},{height}"]
        dump = _run(base + shot + ["--dump-dom", url], timeout)     # one launch: the DOM and the picture
        if screenshot is not None and not Path(screenshot).is_file():
            raise EdgepruneError(f"chromium wrote no screenshot: {dump.stderr[-500:]}")
    dom = dump.stdout
    body = re.search(r"<body([^>]*)>", dom)
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1))) if body else {}
    errors = []
    box = re.search(r'<div id="ep-errors"[^>]*>(.*?)</div>', dom, re.S)
    if box and box.group(1).strip():
        errors.append(box.group(1).strip())
    for line in dump.stderr.splitlines():
        if "CONSOLE" in line and ("Uncaught" in line or "Error" in line or ":ERROR:" in line):
            errors.append(line.strip())
    return PageCheck(attrs.get("data-report-ready"), int(attrs.get("data-figures", 0)),
                     int(attrs.get("data-figures-drawn", 0)), int(attrs.get("data-table-rows", 0)), errors, dom)
