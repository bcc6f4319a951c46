"""pipec's Beam target against a hand-written Beam pipeline of the same workload, in one process.

    python bench/beam_bench.py                      # variants A and B, N = 200,000, 3 repeats each
    python bench/beam_bench.py --variant A --n 20000 --repeats 1 --json

Both sides run on Beam's FnApiRunner, named explicitly, with the shared workload's functions
(../shared/bench/workload.py). The pipec side is `bench/workload.pipe` compiled with
`pipec compile --target beam` and run as a scheduler would (`run(["--report", ...])`: metrics, error
isolation and the run report all on). The hand-written side is what a Beam user would write for the same
guarantees: `Impulse` + `FlatMap(generate)`, `Map(mask)`, `Filter(keep)`, `Map(enrich)`, then
  A: a DoFn writing `to_line(rec)` to the output file (opened in `setup`, closed in `teardown`);
  B: a DoFn writing the staging lines to one shard file per bundle, `ToList` of the shards' paths, then
     one DoFn that makes the shards the staging file and runs `bulk_load` once.
A third system, `hand-beam-tuned`, is the same hand-written pipeline encoding lines the way pipec's jsonl
connector does (one JSONEncoder bound once: the same bytes); `ratio_to_tuned` against it isolates what
pipec's adapters cost. The systems take turns, several repeats, and each output is verified against
`workload.reference_digest` outside the timed section. Output: a table on stderr, one JSON line per
variant on stdout (`seconds` medians, `ratio` = pipec / hand-written; the target is 1.1).
`bench/run.py` can call this script as it is (`--json` prints only the JSON lines).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import workload_steps  # noqa: E402  (puts the shared workload folder on sys.path)
from cases import Paths, fresh_paths  # noqa: E402  (the same output files as the local bench)

workload = workload_steps.workload

VARIANTS = {"A": "bench_a", "B": "bench_b"}
TARGET_RATIO = 1.1


# --------------------------------------------------------------------------------- hand-written Beam
def hand_written(n: int, variant: str, paths: Paths, tuned: bool = False) -> None:
    """The workload as a Beam user writes it. `tuned` encodes lines with one JSONEncoder bound in
    `setup()` (as pipec's jsonl connector does) instead of `workload.to_line` (`json.dumps` per record):
    the same bytes, less work per record, so it isolates what pipec's adapters cost."""
    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    from apache_beam.transforms.window import GlobalWindows

    def line_encoder() -> Callable[[dict[str, Any]], str]:
        if not tuned:
            return workload.to_line  # type: ignore[no-any-return]
        encode = json.JSONEncoder(sort_keys=True).encode
        return lambda rec: encode(rec) + "\n"

    class WriteLines(beam.DoFn):  # variant A's sink
        def __init__(self, path: str) -> None:
            self.path = path

        def setup(self) -> None:
            self.file = workload.open_output(self.path)
            self.write = self.file.write
            self.to_line = line_encoder()

        def process(self, rec: dict[str, Any]) -> None:
            self.write(self.to_line(rec))

        def teardown(self) -> None:
            self.file.close()

    class WriteShards(beam.DoFn):  # variant B's stage: one shard file per bundle, written as it comes
        def __init__(self, staging: str) -> None:
            self.staging = staging

        def setup(self) -> None:
            self.to_line = line_encoder()
            self.prefix = f"{self.staging}.shard-{uuid.uuid4().hex[:8]}"
            self.bundles = 0

        def start_bundle(self) -> None:
            self.file: Any = None

        def process(self, rec: dict[str, Any]) -> None:
            if self.file is None:
                self.bundles += 1
                self.path = f"{self.prefix}-{self.bundles}"
                self.file = workload.open_output(self.path)
            self.file.write(self.to_line(rec))

        def finish_bundle(self) -> Iterator[Any]:
            if self.file is not None:
                self.file.close()
                yield GlobalWindows.windowed_value(self.path)

    class LoadOnce(beam.DoFn):  # variant B's bulk sink: the shards become the staging file, loaded once
        def __init__(self, staging: str, db: str) -> None:
            self.staging, self.db = staging, db

        def process(self, shards: list[str]) -> Iterator[int]:
            if len(shards) == 1:
                os.replace(shards[0], self.staging)
            else:
                with open(self.staging, "wb") as out:
                    for shard in sorted(shards):
                        with open(shard, "rb") as part:
                            shutil.copyfileobj(part, out)
                        os.remove(shard)
            yield workload.bulk_load(self.staging, self.db)

    def generate(impulse: Any) -> Iterator[dict[str, Any]]:
        return workload.generate(n)  # type: ignore[no-any-return]

    pipeline = beam.Pipeline(runner=FnApiRunner())
    records = (
        pipeline
        | "gen" >> beam.Impulse()
        | "records" >> beam.FlatMap(generate)
        | "mask" >> beam.Map(workload.mask)
        | "keep" >> beam.Filter(workload.keep)
        | "enrich" >> beam.Map(workload.enrich)
    )
    if variant == "A":
        _ = records | "out" >> beam.ParDo(WriteLines(paths["out"]))
    else:
        shards = records | "staged" >> beam.ParDo(WriteShards(paths["staging"]))
        gathered = shards | "gather" >> beam.combiners.ToList()
        _ = gathered | "load" >> beam.ParDo(LoadOnce(paths["staging"], paths["db"]))
    pipeline.run().wait_until_finish()


def hand_written_tuned(n: int, variant: str, paths: Paths) -> None:
    hand_written(n, variant, paths, tuned=True)


# ------------------------------------------------------------------------------------ pipec's target
def compile_beam(out_dir: str) -> None:
    pipec = os.path.join(os.path.dirname(sys.executable), "pipec")
    command = [pipec] if os.path.exists(pipec) else [sys.executable, "-m", "pipec.cli"]
    subprocess.run(
        [*command, "compile", "--target", "beam", os.path.join(HERE, "workload.pipe"), "-o", out_dir],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def load_module(runners: str, variant: str) -> ModuleType:
    if runners not in sys.path:
        sys.path.insert(0, runners)
    return importlib.import_module(f"{VARIANTS[variant]}_beam")


def pipec_beam(module: ModuleType) -> Callable[[int, str, Paths], None]:
    def run(n: int, variant: str, paths: Paths) -> None:
        os.environ["PIPEC_BENCH_N"] = str(n)
        os.environ["PIPEC_BENCH_OUT"] = paths["out"]
        os.environ["PIPEC_BENCH_STAGING"] = paths["staging"]
        os.environ["PIPEC_BENCH_DB"] = paths["db"]
        code = module.run(["--report", paths["report"], "--quiet"])
        if code != 0:
            raise SystemExit(f"pipec Beam module {module.__name__} exited with {code}")

    return run


# ---------------------------------------------------------------------------------------- harness
def verify(n: int, variant: str, paths: Paths, expected: tuple[int, str]) -> tuple[bool, int, str]:
    if variant == "B":
        count, sha = workload.table_digest(paths["db"])
    else:
        count, sha = workload.file_digest(paths["out"])
    return (count, sha) == expected, count, sha


def check_report(n: int, paths: Paths, passed: int) -> str:
    with open(paths["report"], encoding="utf-8") as handle:
        report = json.load(handle)
    nodes = {node["name"]: node for node in report["nodes"]}
    problems = []
    if report["state"] != "success" or report.get("target") != "beam":
        problems.append(f"state {report['state']} target {report.get('target')}")
    if nodes["gen"]["out"] != n:
        problems.append(f"gen out {nodes['gen']['out']} != {n}")
    if nodes["keep"]["filtered"] != n - passed:
        problems.append(f"keep filtered {nodes['keep']['filtered']} != {n - passed}")
    return "; ".join(problems) or "ok"


def timed(body: Callable[[int, str, Paths], None], n: int, variant: str, paths: Paths) -> float:
    gc.collect()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        body(n, variant, paths)
    return time.perf_counter() - t0


def run_variant(variant: str, n: int, repeats: int, runners: str, workdir: str) -> dict[str, Any]:
    systems = {
        "pipec-beam": pipec_beam(load_module(runners, variant)),
        "hand-beam": hand_written,
        "hand-beam-tuned": hand_written_tuned,
    }
    expected = workload.reference_digest(n)
    seconds: dict[str, list[float]] = {name: [] for name in systems}
    verified = dict.fromkeys(systems, True)
    digests: dict[str, tuple[int, str]] = {}
    report_check = "ok"
    # One untimed warm-up of each: the first Beam pipeline of a process pays one-off imports.
    for name, body in systems.items():
        body(min(n, 100), variant, fresh_paths(workdir, f"warm-{name}-{variant}"))
    for repeat in range(repeats):
        order = list(systems)[repeat % len(systems):] + list(systems)[: repeat % len(systems)]
        for name in order:
            paths = fresh_paths(workdir, f"{name}-{variant}-{n}")
            seconds[name].append(timed(systems[name], n, variant, paths))
            ok, count, sha = verify(n, variant, paths, expected)
            verified[name] = verified[name] and ok
            digests[name] = (count, sha)
            if name == "pipec-beam":
                outcome = check_report(n, paths, expected[0])
                if outcome != "ok":
                    report_check = outcome
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    ratio = medians["pipec-beam"] / medians["hand-beam"]
    ratio_tuned = medians["pipec-beam"] / medians["hand-beam-tuned"]
    return {
        "bench": "beam",
        "variant": variant,
        "n": n,
        "repeats": repeats,
        "runner": "FnApiRunner",
        "seconds": {name: round(s, 4) for name, s in medians.items()},
        "all_seconds": {name: [round(s, 4) for s in values] for name, values in seconds.items()},
        "records_per_second": {name: round(n / s) for name, s in medians.items()},
        "ratio": round(ratio, 3),
        "ratio_to_tuned": round(ratio_tuned, 3),
        "target_ratio": TARGET_RATIO,
        "within_target": ratio <= TARGET_RATIO,
        "verified": verified,
        "sha256": {name: d[1] for name, d in digests.items()},
        "lines": {name: d[0] for name, d in digests.items()},
        "report_check": report_check,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", choices=sorted(VARIANTS), action="append",
                        help="A and/or B (default: both)")
    parser.add_argument("--n", type=int, default=workload.DEFAULT_N)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", help="folder for outputs (default: a temporary folder, removed after)")
    parser.add_argument("--json", action="store_true", help="print only the JSON lines (no table)")
    args = parser.parse_args(argv)
    variants = args.variant or sorted(VARIANTS)
    results = []
    with tempfile.TemporaryDirectory(prefix="pipec-beam-bench-") as tmp:
        workdir = args.workdir or tmp
        os.makedirs(workdir, exist_ok=True)
        runners = os.path.join(tmp, "runners")
        compile_beam(runners)
        for variant in variants:
            result = run_variant(variant, args.n, args.repeats, runners, workdir)
            results.append(result)
            print(json.dumps(result), flush=True)
    if not args.json:
        print(f"\n{'variant':<8}{'n':>10}{'pipec-beam s':>14}{'hand-beam s':>13}{'tuned s':>9}"
              f"{'ratio':>8}{'to tuned':>10}  verified", file=sys.stderr)
        for r in results:
            s = r["seconds"]
            ok = all(r["verified"].values()) and r["report_check"] == "ok"
            print(f"{r['variant']:<8}{r['n']:>10,}{s['pipec-beam']:>14.3f}{s['hand-beam']:>13.3f}"
                  f"{s['hand-beam-tuned']:>9.3f}{r['ratio']:>8.3f}{r['ratio_to_tuned']:>10.3f}"
                  f"  {'yes' if ok else 'NO'}", file=sys.stderr)
    good = all(all(r["verified"].values()) and r["report_check"] == "ok" for r in results)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
