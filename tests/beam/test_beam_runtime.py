"""The Beam target's behaviour: dead letters and counts, stopping a run, configuration errors, dry runs,
limits, secrets, Beam options passing through, and the runtime contract."""

from __future__ import annotations

import ast
import base64
import bz2
import json
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from .beamkit import REPO, Run, compile_pipe, load_module, run_module

pytestmark = pytest.mark.beam

TESTKIT = REPO / "tests" / "e2e" / "pipec_testkit.py"


def write_pipe(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(TESTKIT, folder / TESTKIT.name)
    pipe = folder / "test.pipe"
    pipe.write_text(text, encoding="utf-8")
    return pipe


def run_target(folder: Path, text: str, target: str, *argv: str) -> Run:
    pipe = write_pipe(folder, text)
    module = load_module(compile_pipe(pipe, folder / f"runners-{target}", target)[0])
    return run_module(module, folder, *argv)


def both(tmp_path: Path, text: str, *argv: str) -> tuple[Run, Run]:
    return run_target(tmp_path / "local", text, "local", *argv), run_target(tmp_path / "beam", text, "beam", *argv)


def entries(run: Run, name: str) -> list[dict[str, Any]]:
    path = run.folder / name
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


DEADLETTER = """use pipec_testkit as kit
pipeline dl {
    threshold = 80%
    source    nums    : kit.Numbers { n = 30 }
    processor check   : kit.FailOn { ids = [2, 5, 11, 29] } with { on_error = "deadletter", deadletter = rejects }
    processor evens   : kit.even_only
    sink      out     : jsonl { path = "out.jsonl" }
    sink      rejects : jsonl { path = "rejects.jsonl" }
    nums -> check -> evens -> out
}
"""


def test_failing_records_go_to_the_dead_letter_sink_with_the_same_counts(tmp_path: Path) -> None:
    local, beam = both(tmp_path, DEADLETTER)
    assert beam.code == local.code == 0
    assert beam.report["state"] == local.report["state"] == "partial"
    assert beam.counts() == local.counts()
    assert beam.node("check")["failed"] == 4
    assert beam.node("rejects")["in"] == beam.node("rejects")["out"] == 4
    got = entries(beam, "rejects.jsonl")
    assert [e["record"]["id"] for e in got] == [2, 5, 11, 29]
    for entry in got:
        assert entry["run_id"] == beam.report["run_id"]
        assert entry["node"] == "check"
        assert entry["location"] == "test.pipe:5"
        assert entry["error"]["type"] == "ValueError"
        assert entry["error"]["message"] == f"bad record {entry['record']['id']}"
        assert "pipec: node 'check' (test.pipe:5) failed during record" in entry["error"]["traceback"]
    want = [{k: v for k, v in e.items() if k not in ("run_id", "error")} for e in entries(local, "rejects.jsonl")]
    assert [{k: v for k, v in e.items() if k not in ("run_id", "error")} for e in got] == want
    assert (beam.folder / "out.jsonl").read_bytes() == (local.folder / "out.jsonl").read_bytes()
    errors = beam.node("check")["errors"]
    assert [e["message"] for e in errors] == ["bad record 2", "bad record 5", "bad record 11", "bad record 29"]
    assert {e["location"] for e in errors} == {"test.pipe:5"}


def test_on_error_fail_stops_the_job_naming_node_and_line(tmp_path: Path) -> None:
    text = DEADLETTER.replace('on_error = "deadletter", deadletter = rejects', 'on_error = "fail"')
    text = text.replace('    sink      rejects : jsonl { path = "rejects.jsonl" }\n', "")
    local, beam = both(tmp_path, text)
    assert beam.code == local.code == 1
    assert beam.report["state"] == "failed"
    failed = [e for e in beam.report["errors"]] + [e for n in beam.report["nodes"] for e in n["errors"]]
    assert any(
        e["node"] == "check" and e["location"] == "test.pipe:5" and e["message"] == "bad record 2" for e in failed
    ), failed


def test_a_broken_source_fails_the_run(tmp_path: Path) -> None:
    text = """use pipec_testkit as kit
pipeline broken {
    source nums : kit.Numbers { n = 10, fail_at = 4 }
    sink   out  : jsonl { path = "out.jsonl" }
    nums -> out
}
"""
    local, beam = both(tmp_path, text)
    assert beam.code == local.code == 1
    found = beam.report["errors"] + beam.node("nums")["errors"]
    assert any(e["phase"] == "source" and "connection dropped" in e["message"] for e in found), found


def test_missing_variable_is_a_configuration_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIPEC_BEAM_TEST_MISSING", raising=False)
    text = """pipeline cfg {
    source s : jsonl { path = env("PIPEC_BEAM_TEST_MISSING") }
    sink   o : jsonl { path = "o.jsonl" }
    s -> o
}
"""
    local, beam = both(tmp_path, text)
    assert beam.code == local.code == 2
    assert beam.report == local.report == {}


def test_dry_run_writes_nothing_and_counts_the_same(tmp_path: Path) -> None:
    local, beam = both(tmp_path, DEADLETTER, "--dry-run")
    assert beam.report["dry_run"] is True
    assert beam.counts() == local.counts()
    assert not (beam.folder / "out.jsonl").exists()
    assert not (beam.folder / "rejects.jsonl").exists()


def test_reshuffle_spreads_records_and_keeps_results(tmp_path: Path) -> None:
    """--reshuffle (the default on remote runners) adds a shuffle after each source: same records and
    counts, in an order Beam does not promise."""
    text = DEADLETTER.replace("n = 30", "n = 300")
    local = run_target(tmp_path / "local", text, "local")
    beam = run_target(tmp_path / "beam", text, "beam", "--reshuffle")
    assert beam.counts() == local.counts()
    assert sorted((beam.folder / "out.jsonl").read_text().splitlines()) == sorted(
        (local.folder / "out.jsonl").read_text().splitlines()
    )


def test_worker_processes_import_the_use_modules(tmp_path: Path) -> None:
    """Beam options pass through to FnApiRunner too: with worker processes, the components (from the
    .pipe file's `use` module) are unpickled in other processes, which must find that module."""
    local = run_target(tmp_path / "local", DEADLETTER, "local")
    beam = run_target(
        tmp_path / "beam", DEADLETTER, "beam", "--direct_num_workers=2", "--direct_running_mode=multi_processing"
    )
    assert beam.code == 0, beam.report.get("errors")
    assert beam.counts() == local.counts()
    assert (beam.folder / "out.jsonl").read_bytes() == (local.folder / "out.jsonl").read_bytes()


def test_declared_but_unused_nodes_open_and_close_as_locally(tmp_path: Path) -> None:
    text = """use pipec_testkit as kit
pipeline unused {
    source    nums   : kit.Numbers { n = 4 }
    processor idle   : kit.even_only
    sink      out    : jsonl { path = "out.jsonl" }
    sink      lonely : jsonl { path = "lonely.jsonl" }
    nums -> out
}
"""
    local, beam = both(tmp_path, text)
    assert beam.code == local.code == 0
    assert beam.counts() == local.counts()
    for name in ("out.jsonl", "lonely.jsonl"):
        assert (beam.folder / name).read_bytes() == (local.folder / name).read_bytes()


def test_limit_reads_at_most_n_records_per_source(tmp_path: Path) -> None:
    local, beam = both(tmp_path, DEADLETTER, "--limit", "6")
    assert beam.node("nums")["out"] == 6
    assert beam.report["limit"] == 6
    assert beam.counts() == local.counts()


def test_timeouts_and_batches_behave_as_locally(tmp_path: Path) -> None:
    text = """use pipec_testkit as kit
pipeline slow {
    source    nums : kit.Numbers { n = 12 }
    processor hang : kit.Hang { ids = [3], seconds = 2.0 } with { timeout = 400ms }
    sink      out  : kit.Collect { path = "out.txt", fail_ids = [7] } with { batch = 5 }
    nums -> hang -> out
}
"""
    local, beam = both(tmp_path, text)
    assert beam.counts() == local.counts()
    assert beam.node("hang")["failed"] == 1 and beam.node("out")["failed"] == 1
    assert (beam.folder / "out.txt").read_text() == (local.folder / "out.txt").read_text()


SECRET_PIPE = """use pipec_testkit as kit
pipeline secretive {
    threshold = 50%
    source    nums  : kit.Numbers { n = 5 }
    processor check : kit.FailOn { ids = [1], message = secret("PIPEC_BEAM_TEST_SECRET") }
    sink      out   : jsonl { path = env("PIPEC_BEAM_TEST_OUT") }
    nums -> check -> out
}
"""


def test_env_and_secret_are_resolved_on_the_workers_never_pickled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipec.runtime.beam import BeamJob
    from pipec.runtime.beam.launch import BeamRunOptions, run_beam
    from pipec.runtime.beam.worker import RunSettings

    secret = "s3cr3t-token-value-6d1f"
    monkeypatch.setenv("PIPEC_BEAM_TEST_SECRET", secret)
    monkeypatch.setenv("PIPEC_BEAM_TEST_OUT", "written-here.jsonl")
    pipe = write_pipe(tmp_path, SECRET_PIPE)
    module = load_module(compile_pipe(pipe, tmp_path / "runners", "beam")[0])
    assert secret not in (tmp_path / "runners" / "secretive_beam.py").read_text()

    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    pipeline = beam.Pipeline(runner=FnApiRunner())
    module.build(BeamJob(module.PIPELINE, pipeline, RunSettings("secretive", "test.pipe", "run1")))
    # What the job carries: every DoFn as Beam pickles it (compressed, base64), here unpacked.
    job = b"".join(_unpack(payload) for payload in _dofn_payloads(pipeline))
    assert b"PIPEC_BEAM_TEST_SECRET" in job and b"PIPEC_BEAM_TEST_OUT" in job  # the names travel
    assert secret.encode() not in job  # the values do not
    assert b"written-here.jsonl" not in job

    report = tmp_path / "report.json"
    os.chdir(tmp_path)
    try:
        code, outcome = run_beam(module.PIPELINE, BeamRunOptions(report=str(report), quiet=True))
    finally:
        os.chdir(REPO)
    assert code == 0
    assert (tmp_path / "written-here.jsonl").exists()  # the worker read PIPEC_BEAM_TEST_OUT
    text = report.read_text()
    assert secret not in text
    assert "*** 1" in text  # the failing record's message, redacted on the worker


def _unpack(payload: bytes) -> bytes:
    packed = base64.b64decode(payload)
    try:
        return bz2.decompress(packed)
    except OSError:
        return zlib.decompress(packed)


def _dofn_payloads(pipeline: Any) -> list[bytes]:
    from apache_beam.portability import common_urns
    from apache_beam.portability.api import beam_runner_api_pb2

    payloads = []
    for transform in pipeline.to_runner_api().components.transforms.values():
        if transform.spec.urn == common_urns.primitives.PAR_DO.urn:
            pardo = beam_runner_api_pb2.ParDoPayload.FromString(transform.spec.payload)
            payloads.append(pardo.do_fn.payload)
    return payloads


def test_beam_options_pass_through_unchanged() -> None:
    from pipec.runtime.beam.launch import _is_local, parse_beam_options

    argv = ["--runner=FlinkRunner", "--flink_master=localhost:8081", "--report", "r.json", "--limit", "3",
            "--parallelism=4", "--environment_type=LOOPBACK"]
    options, rest = parse_beam_options(argv)
    assert rest == ["--runner=FlinkRunner", "--flink_master=localhost:8081", "--parallelism=4",
                    "--environment_type=LOOPBACK"]
    assert (options.report, options.limit, options.reshuffle) == ("r.json", 3, None)
    assert not _is_local("FlinkRunner") and not _is_local("DataflowRunner") and not _is_local("SparkRunner")
    assert _is_local(None) and _is_local("DirectRunner")


def test_pipec_run_target_beam_with_beam_options(tmp_path: Path) -> None:
    from pipec.cli import main

    pipe = write_pipe(tmp_path, DEADLETTER)
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(
            main, ["run", "--target", "beam", str(pipe), "--report", "r.json", "--", "--direct_num_workers=1"]
        )
    finally:
        os.chdir(REPO)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["target"] == "beam" and report["state"] == "partial"
    assert (tmp_path / "out.jsonl").exists()


def test_generated_beam_module_imports_only_the_runtime_contract(tmp_path: Path) -> None:
    import pipec.runtime
    import pipec.runtime.beam

    allowed = {"pipec.runtime": set(pipec.runtime.__all__), "pipec.runtime.beam": set(pipec.runtime.beam.__all__)}
    pipe = write_pipe(tmp_path, DEADLETTER)
    source = compile_pipe(pipe, tmp_path / "runners", "beam")[0].read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            pytest.fail(f"plain import in a generated module: {ast.unparse(node)}")
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "pipec":
            names = {alias.name for alias in node.names}
            if node.module in allowed:
                assert names <= allowed[node.module], names - allowed[node.module]
            else:
                assert node.module.startswith("pipec.connectors."), node.module


def test_local_runner_and_pipec_runtime_never_import_apache_beam(tmp_path: Path) -> None:
    pipe = write_pipe(tmp_path, DEADLETTER)
    runner = compile_pipe(pipe, tmp_path / "runners", "local")[0]
    script = (
        "import sys, importlib.util\n"
        "import pipec.runtime\n"
        f"spec = importlib.util.spec_from_file_location('r', {str(runner)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "code = m.run(['--quiet'])\n"
        "assert 'apache_beam' not in sys.modules, 'apache_beam was imported'\n"
        "print('ok', code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok 0"
