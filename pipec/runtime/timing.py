"""Per-node seconds without timing every call: a sampling profiler over the generated loop.

Calling a clock around every component call would cost more than the rest of the runner together. So a
daemon thread looks at the main thread's stack every few milliseconds, finds the innermost frame that
belongs to the generated module, and charges the sample to the node whose section holds that line
(the template marks each section with `# node: NAME`). The stream's measured wall time is then split
between nodes in proportion to their samples; time spent in the runner itself goes to `(runner)`.
"""

from __future__ import annotations

import bisect
import re
import sys
import threading
import time
from collections import Counter
from types import FrameType

NODE_MARK = re.compile(r"#\s*node:\s*([^\s:]+)")


def section_map(source_lines: list[str]) -> tuple[list[int], list[str]]:
    """Sorted start lines of each node section in a generated module, and the node at each start."""
    starts: list[int] = []
    names: list[str] = []
    for number, line in enumerate(source_lines, start=1):
        match = NODE_MARK.search(line)
        if match:
            starts.append(number)
            names.append(match.group(1))
        elif line.lstrip().startswith("# end-node"):
            starts.append(number)
            names.append("")
    return starts, names


class NodeSampler:
    def __init__(self, filename: str, source_lines: list[str], interval: float = 0.005) -> None:
        self.filename = filename
        self.starts, self.names = section_map(source_lines)
        self.interval = interval
        self.samples: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._target: int = threading.get_ident()
        self.seconds = 0.0

    def __enter__(self) -> NodeSampler:
        self._target = threading.get_ident()
        self._t0 = time.perf_counter()
        if self.starts:
            self._thread = threading.Thread(target=self._loop, name="pipec-sampler", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.seconds = time.perf_counter() - self._t0

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            frame = sys._current_frames().get(self._target)  # noqa: SLF001 - the only way to sample
            if frame is not None:
                self.samples[self._node_of(frame)] += 1

    def _node_of(self, frame: FrameType | None) -> str:
        while frame is not None:
            if frame.f_code.co_filename == self.filename:
                line = frame.f_lineno  # None while the frame is between instructions
                if line is None:
                    return "(runner)"
                index = bisect.bisect_right(self.starts, line) - 1
                if index >= 0 and self.names[index]:
                    return self.names[index]
                return "(runner)"
            frame = frame.f_back
        return "(runner)"

    def node_seconds(self) -> dict[str, float]:
        total = sum(self.samples.values())
        if not total:
            return {}
        return {name: self.seconds * count / total for name, count in self.samples.items()}
