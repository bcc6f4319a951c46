"""The benchmark runs end to end in quick mode and every output verifies. It never asserts a timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PIPEC_SHARED_BENCH", REPO.parent / "shared" / "bench"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (SHARED / "workload.py").exists(), reason=f"no shared workload at {SHARED}"),
]


def test_quick_bench_verifies_every_output(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--n", "2000", "--repeats", "1", "--workdir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cases = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    runs = [c for c in cases if "variant" in c]
    assert {(c["system"], c["variant"]) for c in runs} == {
        (system, variant) for system in ("plain", "tuned", "pipec") for variant in "ABC"
    }
    for case in runs:
        assert case["verified"] is True, case
        assert case["n"] == 2000
        assert case["lines"] == 1000  # half the records pass the filter
        assert case["sha256"] == runs[0]["sha256"]  # the same output everywhere
        assert case["seconds"] > 0 and case["import_seconds"] > 0
        if case["system"] != "tuned":  # the hand-tuned loop is timed only
            assert case["peak_rss_mb"] > 0
    for case in runs:
        if case["system"] == "pipec":
            assert case["report_check"] == "ok", case  # the run report agrees with the workload
    heavy = next(c for c in runs if c["system"] == "pipec" and c["variant"] == "C")
    assert heavy["worker_peak_rss_mb"]  # variant C ran worker processes
    compiles = [c for c in cases if "variant" not in c]
    assert [c["case"] for c in compiles] == ["pipec check (300 nodes)", "pipec compile (300 nodes)"]
    assert "| pipec runner A " in proc.stdout and "targets (issue 5):" in proc.stdout
