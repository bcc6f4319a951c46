"""One benchmark measurement, run in a fresh process by `bench/run.py` (see bench/README.md).

    python bench/cases.py time   --variant A --n 200000 --repeats 5 --runners DIR --workdir DIR
    python bench/cases.py rss    --system pipec --variant A --n 200000 --runners DIR --workdir DIR

`time` alternates the pipec runner and the plain loop in this one process, verifies every output
against `workload.reference_digest` outside the timed section and prints one JSON line with the
medians. `rss` runs one system once and prints its peak RSS, so that no case inherits another's peak.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from plain import plain_loop, tuned_loop, workload  # noqa: E402  (standard library only)

VARIANTS = {"A": "bench_a", "B": "bench_b", "C": "bench_c"}
Paths = dict[str, str]


# ------------------------------------------------------------------------------------ the systems
def load_runner(runners: str, variant: str) -> ModuleType:
    if runners not in sys.path:
        sys.path.insert(0, runners)
    return importlib.import_module(VARIANTS[variant])


def pipec_runner(runner: ModuleType) -> Callable[[int, str, Paths], None]:
    """Run the generated runner with its ordinary defaults and a run report, as a scheduler would."""

    def run(n: int, variant: str, paths: Paths) -> None:
        os.environ["PIPEC_BENCH_N"] = str(n)
        os.environ["PIPEC_BENCH_OUT"] = paths["out"]
        os.environ["PIPEC_BENCH_STAGING"] = paths["staging"]
        os.environ["PIPEC_BENCH_DB"] = paths["db"]
        code = runner.run(["--report", paths["report"]])
        if code != 0:
            raise SystemExit(f"pipec runner {runner.__name__} exited with {code}")

    return run


# ---------------------------------------------------------------------------------- verification
_REFERENCE: dict[int, tuple[int, str]] = {}


def verify(n: int, variant: str, paths: Paths) -> tuple[bool, int, str]:
    if n not in _REFERENCE:
        _REFERENCE[n] = workload.reference_digest(n)
    expected = _REFERENCE[n]
    if variant == "B":
        count, sha = workload.table_digest(paths["db"])
    else:
        count, sha = workload.file_digest(paths["out"])
    return (count, sha) == expected, count, sha


def check_report(n: int, paths: Paths) -> str:
    """The run report must say success with the workload's counts (a runner that skipped work fails)."""
    with open(paths["report"], encoding="utf-8") as handle:
        report = json.load(handle)
    nodes = {node["name"]: node for node in report["nodes"]}
    problems = []
    if report["state"] != "success":
        problems.append(f"state {report['state']}")
    if nodes["gen"]["out"] != n:
        problems.append(f"gen out {nodes['gen']['out']} != {n}")
    passed = workload.reference_digest(n)[0] if n not in _REFERENCE else _REFERENCE[n][0]
    if nodes["keep"]["filtered"] != n - passed:
        problems.append(f"keep filtered {nodes['keep']['filtered']} != {n - passed}")
    return "; ".join(problems) or "ok"


def fresh_paths(workdir: str, tag: str) -> Paths:
    os.makedirs(workdir, exist_ok=True)
    paths = {
        "out": os.path.join(workdir, f"{tag}.output.jsonl"),
        "staging": os.path.join(workdir, f"{tag}.staging.jsonl"),
        "db": os.path.join(workdir, f"{tag}.records.sqlite"),
        "report": os.path.join(workdir, f"{tag}.report.json"),
    }
    for path in paths.values():
        if os.path.exists(path):
            os.remove(path)
    return paths


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (worker processes), user + system."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(body: Callable[[int, str, Paths], None], n: int, variant: str, paths: Paths) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run."""
    gc.collect()
    c0 = cpu_seconds()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        body(n, variant, paths)
    return time.perf_counter() - t0, cpu_seconds() - c0


# ------------------------------------------------------------------------------------ commands
def cmd_time(args: argparse.Namespace) -> dict[str, Any]:
    runner = load_runner(args.runners, args.variant)
    systems: dict[str, Callable[[int, str, Paths], None]] = {
        "plain": plain_loop,
        "pipec": pipec_runner(runner),
        "tuned": tuned_loop,
    }
    seconds: dict[str, list[float]] = {name: [] for name in systems}
    cpu: dict[str, list[float]] = {name: [] for name in systems}
    verified = {name: True for name in systems}
    digests: dict[str, tuple[int, str]] = {}
    report_check = "ok"
    for repeat in range(args.repeats):
        names = list(systems)
        order = names[repeat % len(names):] + names[: repeat % len(names)]  # each goes first in turn
        for name in order:
            paths = fresh_paths(args.workdir, f"{name}-{args.variant}-{args.n}")
            wall, used = timed(systems[name], args.n, args.variant, paths)
            seconds[name].append(wall)
            cpu[name].append(used)
            ok, count, sha = verify(args.n, args.variant, paths)
            verified[name] = verified[name] and ok
            digests[name] = (count, sha)
            if name == "pipec":
                outcome = check_report(args.n, paths)
                if outcome != "ok":
                    report_check = outcome
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    return {
        "variant": args.variant,
        "n": args.n,
        "repeats": args.repeats,
        "seconds": medians,
        "cpu_seconds": {name: statistics.median(values) for name, values in cpu.items()},
        "all_seconds": {name: [round(s, 4) for s in values] for name, values in seconds.items()},
        "verified": verified,
        "lines": {name: d[0] for name, d in digests.items()},
        "sha256": {name: d[1] for name, d in digests.items()},
        "report_check": report_check,
    }


def peak_rss_mb() -> float:
    """This process's peak resident set size. VmHWM where there is /proc: `ru_maxrss` carries over the
    parent's peak when the parent spawned this process with vfork (as subprocess does), VmHWM does not."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cmd_rss(args: argparse.Namespace) -> dict[str, Any]:
    body = plain_loop if args.system == "plain" else pipec_runner(load_runner(args.runners, args.variant))
    before = peak_rss_mb()
    paths = fresh_paths(args.workdir, f"rss-{args.system}-{args.variant}-{args.n}")
    seconds, _ = timed(body, args.n, args.variant, paths)
    peak = peak_rss_mb()
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    ok, _, _ = verify(args.n, args.variant, paths)
    return {
        "system": args.system,
        "variant": args.variant,
        "n": args.n,
        "seconds": seconds,
        "peak_rss_mb": round(peak, 1),
        "rss_before_run_mb": round(before, 1),
        "worker_peak_rss_mb": round(children, 1) if children else None,
        "verified": ok,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("time", "rss"))
    parser.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--system", choices=("pipec", "plain"), default="pipec")
    parser.add_argument("--runners", required=True, help="folder of the compiled runner modules")
    parser.add_argument("--workdir", required=True, help="folder for outputs, staging files, databases")
    args = parser.parse_args(argv)
    result = cmd_time(args) if args.command == "time" else cmd_rss(args)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
