"""The plain loops pipec is measured against, and where the shared workload lives. Standard library only,
so that a plain loop's process (its peak RSS, its import time) carries nothing of pipec or pydantic.

The workload folder is `../shared/bench` of the repository, or `$PIPEC_SHARED_BENCH`.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def shared_bench_dir() -> str:
    """The folder of the shared workload: `$PIPEC_SHARED_BENCH`, else `../shared/bench` of the repo."""
    configured = os.environ.get("PIPEC_SHARED_BENCH")
    if configured:
        return os.path.abspath(configured)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.normpath(os.path.join(repo, "..", "shared", "bench"))


def _import_shared() -> tuple[Any, Any]:
    folder = shared_bench_dir()
    if not os.path.isfile(os.path.join(folder, "workload.py")):
        raise ImportError(
            f"the shared workload is not at {folder}/workload.py; set PIPEC_SHARED_BENCH to its folder"
        )
    if folder not in sys.path:
        sys.path.insert(0, folder)
    import handloop_bench
    import workload

    return workload, handloop_bench


workload, handloop_bench = _import_shared()

# About 50 microseconds of pure-Python work per record on a 2020s server core (variant C).
HEAVY_ROUNDS = 660


def spin(seed: int, rounds: int = HEAVY_ROUNDS) -> int:
    """A pure-Python busy loop (an LCG): deterministic, allocation-free, holds the GIL throughout."""
    x = seed
    for _ in range(rounds):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return x


def heavy(record: dict[str, Any]) -> dict[str, Any]:
    """Variant C's extra step: burn ~50 µs of CPU on the record, then pass it on unchanged (so the
    output, and its digest, are the workload's)."""
    if spin(record["id"]) < 0:  # never true; the result is used so that the work cannot be skipped
        raise AssertionError("unreachable")
    return record


def plain_loop(n: int, variant: str, paths: dict[str, str]) -> None:
    """The floor: the shared `handloop_bench.pipeline` for A and B; for C the same loop with the
    CPU-heavy step first, written exactly like handloop's."""
    if variant in ("A", "B"):
        handloop_bench.pipeline(n, variant, paths)
        return
    mask, keep, enrich, to_line = workload.mask, workload.keep, workload.enrich, workload.to_line
    with workload.open_output(paths["out"]) as f:
        write = f.write
        for rec in workload.generate(n):
            rec = heavy(rec)
            rec = mask(rec)
            if not keep(rec):
                continue
            rec = enrich(rec)
            write(to_line(rec))


def tuned_loop(n: int, variant: str, paths: dict[str, str]) -> None:
    """The plain loop as a careful engineer would write it: the same functions, but the JSON encoder
    built once instead of once per record (what `to_line`'s `json.dumps(..., sort_keys=True)` does),
    and no per-record helper call for the line. The strictest floor; the output is byte-identical."""
    encode = json.JSONEncoder(sort_keys=True).encode
    mask, keep, enrich = workload.mask, workload.keep, workload.enrich
    spin = heavy if variant == "C" else None
    target = paths["staging"] if variant == "B" else paths["out"]
    with workload.open_output(target) as f:
        write = f.write
        for rec in workload.generate(n):
            if spin is not None:
                rec = spin(rec)
            rec = mask(rec)
            if not keep(rec):
                continue
            rec = enrich(rec)
            write(encode(rec) + "\n")
    if variant == "B":
        workload.bulk_load(paths["staging"], paths["db"])
