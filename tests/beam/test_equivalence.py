"""The same .pipe gives the same results through the Beam target as through the local runner: the same
files (same sha256), the same per-node counts, the same run state and exit code, the same errors."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .beamkit import (
    CASES,
    REPO,
    Service,
    compare_outputs,
    compile_pipe,
    errors_by_node,
    fan_in_paths,
    load_module,
    no_service,
    run_both,
)

pytestmark = pytest.mark.beam

EXAMPLES = sorted(p for p in (REPO / "examples").glob("*/*.pipe")) if (REPO / "examples").is_dir() else []


@contextmanager
def catalog_server(folder: Path) -> Iterator[dict[str, str]]:
    """The publish example's server, on a free port, keeping what it receives in out/catalog_store.json."""
    token = "beam-test-token"
    server = subprocess.Popen(
        [sys.executable, "catalog_server.py", "--port", "0", "--store", "out/catalog_store.json", "--quiet"],
        cwd=folder,
        env={**os.environ, "CATALOG_TOKEN": token},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline().strip()
        url = first.rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:"), first
        yield {"CATALOG_TOKEN": token, "CATALOG_URL": url, "CATALOG_BULK_URL": url + "/_bulk"}
    finally:
        server.terminate()
        server.wait(timeout=10)


SERVICES: dict[str, Service] = {"publish": catalog_server}


def assert_same(source: Path, pipe: str, tmp_path: Path, *argv: str) -> None:
    runs = run_both(source, pipe, tmp_path, *argv, service=SERVICES.get(source.name, no_service))
    assert runs, "no pipeline ran"
    unordered: set[str] = set()
    for module_path in sorted((tmp_path / "runners-beam").glob("*_beam.py")):
        unordered |= fan_in_paths(load_module(module_path))
    for name, (local, beam) in runs.items():
        assert local.report, f"{name}: the local run wrote no report"
        assert beam.report["target"] == "beam"
        assert (beam.code, beam.report["state"]) == (local.code, local.report["state"]), name
        assert beam.counts() == local.counts(), name
        assert errors_by_node(beam) == errors_by_node(local), name
    problems = compare_outputs(tmp_path / "local", tmp_path / "beam", source, unordered)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("case", ["orders", "fanin"])
def test_case_same_output_and_counts(case: str, tmp_path: Path) -> None:
    assert_same(CASES / case, f"{case}.pipe", tmp_path)


@pytest.mark.parametrize(
    "flags", [("--dry-run",), ("--limit", "10"), ("--limit", "0")], ids=["dry-run", "limit", "nothing"]
)
def test_runner_flags_same_output_and_counts(flags: tuple[str, ...], tmp_path: Path) -> None:
    """--limit 0: the stage gets no record at all, and still stages, hands off and publishes once."""
    assert_same(CASES / "orders", "orders.pipe", tmp_path, *flags)


@pytest.mark.parametrize("pipe", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_example_same_output_and_counts(pipe: Path, tmp_path: Path) -> None:
    assert_same(pipe.parent, pipe.name, tmp_path)


@pytest.mark.parametrize("variant", ["A", "B", "C"])
def test_benchmark_variant_same_digest(variant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every benchmark variant through both targets gives the workload's reference digest (C's
    `workers = 2` is the local runner's; on Beam the runner decides parallelism)."""
    bench = REPO / "bench"
    if not (bench / "workload.pipe").exists():
        pytest.skip("bench/workload.pipe is not there")
    import sys

    sys.path.insert(0, str(bench))
    try:
        import workload_steps
    finally:
        sys.path.remove(str(bench))
    workload = workload_steps.workload
    n = 2000
    expected = workload.reference_digest(n)
    digests = {}
    for target in ("local", "beam"):
        out = tmp_path / target
        out.mkdir()
        monkeypatch.setenv("PIPEC_BENCH_N", str(n))
        monkeypatch.setenv("PIPEC_BENCH_OUT", str(out / "out.jsonl"))
        monkeypatch.setenv("PIPEC_BENCH_STAGING", str(out / "staging.jsonl"))
        monkeypatch.setenv("PIPEC_BENCH_DB", str(out / "records.sqlite"))
        written = compile_pipe(bench / "workload.pipe", tmp_path / f"runners-{target}", target)
        name = f"bench_{variant.lower()}" + ("_beam" if target == "beam" else "")
        module = load_module(next(p for p in written if p.stem == name))
        assert module.run(["--quiet", "--report", str(out / "report.json")]) == 0
        if variant in ("A", "C"):
            digests[target] = workload.file_digest(str(out / "out.jsonl"))
        else:
            digests[target] = workload.table_digest(str(out / "records.sqlite"))
            assert os.path.exists(out / "staging.jsonl")
    assert digests["local"] == digests["beam"] == expected
