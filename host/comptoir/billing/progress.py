"""A one-line progress bar on a terminal (standard error), redrawn at most 10 times a second."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(
        self, total: int, label: str, stream: TextIO | None = None, width: int = 30
    ) -> None:
        self.total = max(total, 1)
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.done = 0
        self.sheets = 0
        self.started = time.monotonic()
        self._drawn = 0.0

    def __call__(self, lots: int, sheets: int) -> None:
        self.done += lots
        self.sheets += sheets
        now = time.monotonic()
        if now - self._drawn >= 0.1 or self.done >= self.total:
            self._drawn = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        frac = min(self.done / self.total, 1.0)
        full = int(frac * self.width)
        rate = self.sheets / max(now - self.started, 1e-9)
        self.stream.write(
            f"\r{self.label} [{'#' * full}{'.' * (self.width - full)}] {frac:4.0%} "
            f"{self.done}/{self.total} lots, {self.sheets} sheets, {rate:,.0f} sheets/s "
        )
        self.stream.flush()

    def close(self) -> None:
        self._draw(time.monotonic())
        self.stream.write("\n")
        self.stream.flush()
