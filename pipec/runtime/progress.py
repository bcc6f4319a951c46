"""A live progress line on a terminal (stderr), silent otherwise.

The generated loop calls `tick(counts)` once every 16,384 source records, so its cost per record is one
bit test; the line itself is redrawn at most twice a second.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import TextIO

TICK_MASK = 16383  # the loop ticks when (records & TICK_MASK) == 0


class Progress:
    def __init__(
        self,
        describe: Callable[[Mapping[str, tuple[int, int]]], str],
        stream: TextIO | None = None,
        enabled: bool | None = None,
        min_interval: float = 0.5,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = enabled
        self.describe = describe
        self.min_interval = min_interval
        self._start = time.perf_counter()
        self._last = 0.0
        self._drawn = False

    def start(self) -> None:
        """The stream begins: rates count from here, not from set-up."""
        self._start = time.perf_counter()

    def tick(self, counts: Mapping[str, tuple[int, int]]) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last < self.min_interval:
            return
        self._last = now
        self.stream.write("\r\x1b[2K" + self.describe(counts))
        self.stream.flush()
        self._drawn = True

    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    def done(self, counts: Mapping[str, tuple[int, int]]) -> None:
        """Leave the final state on screen (also for runs too short to have ticked)."""
        if not self.enabled:
            return
        self.stream.write("\r\x1b[2K" + self.describe(counts) + "\n")
        self.stream.flush()
