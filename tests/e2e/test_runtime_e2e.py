"""End-to-end: real .pipe files compiled by pipec, run in-process on real files, reports checked."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from e2e.harness import compile_pipe, run_pipe

HEAD = "use pipec_testkit as kit\n\npipeline t {\n"


def pipe(body: str) -> str:
    return HEAD + body + "}\n"


def test_three_bad_records_go_to_the_dead_letter_sink(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = 100 }
    processor check : kit.FailOn { ids = [7, 42, 99] } with { on_error = "deadletter", deadletter = rejected }
    sink out : kit.Collect { path = "out.txt" }
    sink rejected : jsonl { path = "rejected.jsonl" }
    nums -> check -> out
"""), capsys=capsys)
    assert result.code == 0
    assert result.report["state"] == "partial"
    assert len(result.lines("out.txt")) == 97
    dead = [json.loads(line) for line in result.lines("rejected.jsonl")]
    assert [d["record"]["id"] for d in dead] == [7, 42, 99]
    for entry in dead:
        assert entry["node"] == "check"
        assert entry["location"] == "test.pipe:6"
        assert "node 'check' (test.pipe:6)" in entry["error"]["traceback"]
        assert "ValueError: bad record" in entry["error"]["traceback"]
    check = result.node("check")
    assert (check["in"], check["out"], check["failed"]) == (100, 97, 3)
    assert result.node("rejected")["in"] == 3
    assert check["errors"][0]["location"] == "test.pipe:6"


def test_a_close_that_raises_still_closes_everything_once(tmp_path: Path) -> None:
    result = run_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = 10, events = "events.txt" }
    processor check : kit.FailOn { events = "events.txt" }
    sink bad : kit.Collect { path = "bad.txt", close_raises = true, events = "events.txt" }
    sink good : kit.Collect { path = "good.txt", events = "events.txt" }
    nums -> check -> bad
    check -> good
"""))
    assert result.code == 1
    assert result.report["state"] == "failed"
    events = result.events()
    for node in ("nums", "check", "bad", "good"):
        assert events.count(f"open {node}") == 1
        assert events.count(f"close {node}") == 1
    # closed in reverse order of opening
    closes = [e.split()[1] for e in events if e.startswith("close")]
    opens = [e.split()[1] for e in events if e.startswith("open")]
    assert closes == list(reversed(opens))
    assert result.report["errors"][0]["phase"] == "close"
    assert "disk full" in result.report["errors"][0]["message"]
    assert len(result.lines("good.txt")) == 10


def test_a_sink_failing_everything_fails_the_run(tmp_path: Path) -> None:
    result = run_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = 50 }
    sink fine : kit.Collect { path = "fine.txt" }
    sink broken : kit.Collect { path = "broken.txt", fail_always = true }
    nums -> fine
    nums -> broken
"""))
    assert result.code == 1
    assert result.report["state"] == "failed"
    assert result.node("broken")["failed"] == 50
    assert result.node("fine")["failed"] == 0
    assert result.report["lowest_success_rate"] == 0.0


def test_a_flaky_sink_succeeds_after_retries(tmp_path: Path) -> None:
    result = run_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = 5 }
    sink flaky : kit.Collect { path = "flaky.txt", flaky_attempts = 2 } with { retries = 3, backoff = 1ms }
    nums -> flaky
"""))
    assert result.code == 0
    assert result.report["state"] == "success"
    assert result.lines("flaky.txt") == ["0", "1", "2", "3", "4"]
    assert result.node("flaky")["retried"] == 10
    assert result.node("flaky")["failed"] == 0


def test_retries_run_out(tmp_path: Path) -> None:
    result = run_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = 3 }
    sink flaky : kit.Collect { path = "flaky.txt", flaky_attempts = 5 } with { retries = 2, backoff = 1ms }
    nums -> flaky
"""))
    assert result.node("flaky")["retried"] == 6
    assert result.node("flaky")["failed"] == 3
    assert result.code == 1


def test_a_hung_call_is_cut_at_its_timeout(tmp_path: Path) -> None:
    result = run_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = 6 }
    processor slow : kit.Hang { ids = [3], seconds = 30.0 } with { timeout = 200ms }
    sink out : kit.Collect { path = "out.txt" }
    nums -> slow -> out
"""))
    slow = result.node("slow")
    assert slow["failed"] == 1
    assert slow["errors"][0]["type"] == "CallTimedOut"
    assert result.lines("out.txt") == ["0", "1", "2", "4", "5"]
    # Not a speed bound: the hung call sleeps 30 s, so a run that waited for it could not end sooner.
    assert result.report["seconds"] < 30


DRY = """
    source nums : kit.Numbers { n = 40 }
    processor even : kit.even_only
    processor check : kit.FailOn { ids = [4] }
    sink out : jsonl { path = "out/records.jsonl" }
    stage staged : jsonl { path = "out/staged.jsonl" }
    bulksink load : sql { url = "sqlite:///out/db.sqlite", table = "records", create = true }
    nums -> even -> check -> out
    check -> staged => load
"""


def test_dry_run_writes_nothing_and_counts_the_same(tmp_path: Path) -> None:
    dry = run_pipe(tmp_path / "dry", pipe(DRY), "--dry-run")
    assert dry.report["dry_run"] is True
    assert not (tmp_path / "dry" / "out" / "records.jsonl").exists()
    assert not (tmp_path / "dry" / "out" / "db.sqlite").exists()
    real = run_pipe(tmp_path / "real", pipe(DRY))
    assert (tmp_path / "real" / "out" / "records.jsonl").exists()
    for name in ("nums", "even", "check"):
        keys = ("in", "out", "filtered", "failed")
        assert [dry.node(name)[k] for k in keys] == [real.node(name)[k] for k in keys]
    assert real.node("load")["out"] == 19


def test_limit_stops_after_n_records_and_closes(tmp_path: Path) -> None:
    result = run_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = 1000, events = "events.txt" }
    sink out : kit.Collect { path = "out.txt", events = "events.txt" }
    nums -> out
"""), "--limit", "10")
    assert result.code == 0
    assert result.node("nums")["out"] == 10
    assert len(result.lines("out.txt")) == 10
    assert result.events() == ["open nums", "open out", "close out", "close nums"]
    assert result.report["limit"] == 10


def test_fail_policy_stops_the_run_cleanly(tmp_path: Path) -> None:
    result = run_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = 100, events = "events.txt" }
    processor check : kit.FailOn { ids = [20], events = "events.txt" } with { on_error = "fail" }
    sink out : kit.Collect { path = "out.txt", events = "events.txt" }
    nums -> check -> out
"""))
    assert result.code == 1
    assert result.report["state"] == "failed"
    assert len(result.lines("out.txt")) == 20
    assert sorted(result.events()) == sorted(
        ["open nums", "open check", "open out", "close out", "close check", "close nums"]
    )


def test_a_broken_source_stops_the_run_with_its_error(tmp_path: Path) -> None:
    result = run_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = 100, fail_at = 30 }
    sink out : kit.Collect { path = "out.txt" }
    nums -> out
"""))
    assert result.code == 1
    assert len(result.lines("out.txt")) == 30
    error = result.node("nums")["errors"][0]
    assert error["phase"] == "source" and "connection dropped" in error["message"]


def test_flat_map_counts(tmp_path: Path) -> None:
    result = run_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = 10 }
    processor twice : kit.twice
    sink out : kit.Collect { path = "out.txt" }
    nums -> twice -> out
"""))
    twice = result.node("twice")
    assert (twice["in"], twice["out"], twice["filtered"]) == (10, 16, 2)
    assert twice["flat_map"] is True
    assert result.node("out")["in"] == 16


def test_fan_out_and_join(tmp_path: Path) -> None:
    result = run_pipe(tmp_path, pipe("""
    source a : kit.Numbers { n = 10 }
    source b : kit.Numbers { n = 5 }
    processor even : kit.even_only
    processor check : kit.FailOn { ids = [2] }
    sink all : kit.Collect { path = "all.txt" }
    sink evens : kit.Collect { path = "evens.txt" }
    a -> even -> evens
    b -> even
    a -> check -> all
    even -> all
"""))
    assert result.node("even")["in"] == 15
    assert result.node("even")["out"] == 8
    assert result.node("evens")["in"] == 8
    assert result.node("all")["in"] == 9 + 8
    assert len(result.lines("all.txt")) == 17


def test_missing_env_var_stops_before_anything_opens(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIPEC_TEST_OUT", raising=False)
    result = run_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = 3, events = "events.txt" }
    sink out : kit.Collect { path = env("PIPEC_TEST_OUT"), events = "events.txt" }
    nums -> out
"""), capsys=capsys)
    assert result.code == 2
    assert result.report == {}
    assert result.events() == []
    assert "test.pipe:6: node 'out'" in result.stderr
    assert "PIPEC_TEST_OUT is not set" in result.stderr


def test_env_values_and_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPEC_TEST_N", "4")
    result = run_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = env("PIPEC_TEST_N") }
    sink out : kit.Collect { path = env("PIPEC_TEST_UNSET_PATH", default = "fallback.txt") }
    nums -> out
"""))
    assert result.lines("fallback.txt") == ["0", "1", "2", "3"]


def test_secrets_never_reach_code_reports_or_dead_letters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    token = "s3cr3t-T0KEN-value"
    monkeypatch.setenv("PIPEC_TEST_TOKEN", token)
    result = run_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = 3 }
    processor leak : kit.FailOn { ids = [1], message = secret("PIPEC_TEST_TOKEN") } with { on_error = "deadletter", deadletter = dl }
    sink out : kit.Collect { path = "out.txt" }
    sink dl : jsonl { path = "dl.jsonl" }
    nums -> leak -> out
"""), capsys=capsys)
    assert result.node("leak")["failed"] == 1
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert token not in path.read_text(encoding="utf-8", errors="replace"), path
    assert token not in result.stderr
    assert "***" in (tmp_path / "dl.jsonl").read_text()


def test_node_seconds_are_sampled_where_the_time_goes(tmp_path: Path) -> None:
    result = run_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = 150 }
    processor slow : kit.busy
    processor even : kit.even_only
    sink out : kit.Collect { path = "out.txt" }
    nums -> slow -> even -> out
"""))
    slow = result.node("slow")["seconds"]
    assert slow > 0.1  # 150 records x 2 ms = 0.3 s, sampled every 5 ms
    assert slow > 5 * result.node("even")["seconds"]


def test_a_stop_inside_a_failing_batch_counts_the_unwritten_rest_as_failed(tmp_path: Path) -> None:
    result = run_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = 10 }
    sink out : kit.Collect { path = "out.txt", fail_ids = [1] } with { batch = 4, on_error = "fail" }
    nums -> out
"""))
    assert result.code == 1
    assert "2" not in result.lines("out.txt") and "3" not in result.lines("out.txt")
    out = result.node("out")
    # 0..3 reached the sink; 0 was written, 1 failed, 2 and 3 were never written: not 'out'.
    assert (out["in"], out["out"], out["failed"]) == (4, 1, 3)


EAGER_STEPS = '''
from pipec.runtime import Source


class Eager(Source):
    """records() is a plain method that raises before returning an iterator."""

    def records(self):
        raise OSError("query failed")
'''


def test_a_source_whose_records_call_raises_stops_the_run_cleanly(tmp_path: Path) -> None:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "eager_steps.py").write_text(EAGER_STEPS, encoding="utf-8")
    result = run_pipe(tmp_path, "use pipec_testkit as kit\nuse eager_steps as es\n\npipeline t {\n" + """
    source nums : kit.Numbers { n = 3, events = "events.txt" }
    source bad : es.Eager
    sink out : kit.Collect { path = "out.txt", events = "events.txt" }
    nums -> out
    bad -> out
}
""")
    assert result.code == 1
    assert result.report["state"] == "failed"
    assert sorted(result.events()) == ["close nums", "close out", "open nums", "open out"]
    bad = result.node("bad")
    assert bad["failed"] == 1 and bad["errors"][0]["message"] == "query failed"


def test_an_exception_that_cannot_be_printed_is_still_isolated(tmp_path: Path) -> None:
    result = run_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = 9 }
    processor odd : kit.unprintable_error
    sink out : kit.Collect { path = "out.txt" }
    nums -> odd -> out
"""))
    odd = result.node("odd")
    assert (odd["in"], odd["out"], odd["failed"]) == (9, 6, 3)
    assert odd["errors"][0]["message"] == "<unprintable _Unprintable>"
    assert result.lines("out.txt") == ["1", "2", "4", "5", "7", "8"]


def test_a_runtime_error_outside_the_guards_still_closes_everything_and_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipec.runtime.policy import NodeRuntime

    def broken_recover(self: NodeRuntime, record: object, exc: Exception) -> object:
        raise TypeError("a bug in the failure path")

    monkeypatch.setattr(NodeRuntime, "recover", broken_recover)
    result = run_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = 10, events = "events.txt" }
    processor check : kit.FailOn { ids = [4], events = "events.txt" }
    sink out : kit.Collect { path = "out.txt", events = "events.txt" }
    nums -> check -> out
"""))
    assert result.code == 1
    assert result.report["state"] == "failed"
    assert result.report["errors"][0]["phase"] == "run"
    assert "a bug in the failure path" in result.report["errors"][0]["message"]
    assert sorted(result.events()) == sorted(
        ["open nums", "open check", "open out", "close out", "close check", "close nums"]
    )


def test_a_batched_sink_without_its_own_write_batch_writes_no_record_twice(tmp_path: Path) -> None:
    result = run_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = 7 }
    sink out : kit.Collect { path = "out.txt", fail_ids = [1, 5] } with { batch = 3 }
    nums -> out
"""))
    assert result.lines("out.txt") == ["0", "2", "3", "4", "6"]
    out = result.node("out")
    assert (out["in"], out["out"], out["failed"]) == (7, 5, 2)


@pytest.mark.parametrize("options", ["", "with { retries = 1, backoff = 1ms }"])
def test_a_flat_map_generator_failing_partway_fails_only_its_record(tmp_path: Path, options: str) -> None:
    # The generator raises while it is consumed; with retries too, that must stay one record's failure.
    result = run_pipe(tmp_path, pipe(f"""
    threshold = 50%
    source nums : kit.Numbers {{ n = 6 }}
    processor split : kit.lazy_split {options}
    sink out : kit.Collect {{ path = "out.txt" }}
    nums -> split -> out
"""))
    assert result.code == 0, result.report["errors"]
    split = result.node("split")
    assert (split["in"], split["out"], split["failed"]) == (6, 10, 1)
    assert split["retried"] == (1 if options else 0)
    assert split["errors"][0]["message"] == "lazy failure at 3"
    assert result.lines("out.txt") == ["0", "0", "1", "1", "2", "2", "4", "4", "5", "5"]


def test_a_call_that_never_returns_does_not_keep_the_process_alive(tmp_path: Path) -> None:
    # The abandoned call's thread must not be joined at exit: run the runner as its own process.
    import subprocess
    import sys

    runner = compile_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = 4 }
    processor stuck : kit.Hang { ids = [1], seconds = -1 } with { timeout = 100ms }
    sink out : kit.Collect { path = "out.txt" }
    nums -> stuck -> out
"""))[0]
    done = subprocess.run([sys.executable, str(runner), "--no-progress"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)  # a liveness bound: without the fix it never exits
    assert done.returncode == 1, done.stderr
    assert "CallTimedOut" in done.stderr
    assert (tmp_path / "out.txt").read_text().split() == ["0", "2", "3"]


@pytest.mark.parametrize("options", ["", "with { retries = 1, backoff = 1ms }", "with { timeout = 5s }"])
def test_system_exit_in_a_component_fails_only_its_record(tmp_path: Path, options: str) -> None:
    result = run_pipe(tmp_path, pipe(f"""
    threshold = 50%
    source nums : kit.Numbers {{ n = 5 }}
    processor quits : kit.exits_at_2 {options}
    sink out : kit.Collect {{ path = "out.txt" }}
    nums -> quits -> out
"""))
    assert result.code == 0
    assert result.report["state"] == "partial"
    quits = result.node("quits")
    assert (quits["in"], quits["out"], quits["failed"]) == (5, 4, 1)
    assert quits["errors"][0]["type"] == "SystemExit"
    assert result.lines("out.txt") == ["0", "1", "3", "4"]


def test_system_exit_in_a_sink_or_a_close_is_isolated_and_reported(tmp_path: Path) -> None:
    (tmp_path / "exit_steps.py").write_text(EXIT_STEPS, encoding="utf-8")
    result = run_pipe(tmp_path, "use pipec_testkit as kit\nuse exit_steps as es\n\npipeline t {\n" + """
    threshold = 50%
    source nums : kit.Numbers { n = 5, events = "events.txt" }
    sink out : es.ExitingSink
    nums -> out
}
""")
    assert result.code == 1  # the close failed
    assert result.node("out")["failed"] == 1
    assert result.node("out")["errors"][0]["type"] == "SystemExit"
    assert [(e["phase"], e["type"]) for e in result.report["errors"]] == [("close", "SystemExit")]
    assert result.events() == ["open nums", "close nums"]


EXIT_STEPS = '''
import sys

from pipec.runtime import Sink


class ExitingSink(Sink):
    def write(self, record):
        if record["id"] == 1:
            sys.exit("no more")

    def close(self):
        sys.exit(4)
'''


def _opens_and_closes_match(events: list[str]) -> None:
    opened = [e.split()[1] for e in events if e.startswith("open ")]
    closed = [e.split()[1] for e in events if e.startswith("close ")]
    assert opened and sorted(opened) == sorted(closed), events  # every opened component closed once


def test_ctrl_c_during_publish_closes_everything_and_reports(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    result = run_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = 5, events = "events.txt" }
    stage staged : jsonl { path = "staged.jsonl" }
    bulksink load : kit.SlowPublish { interrupt = true, events = "events.txt" }
    nums -> staged => load
"""), capsys=capsys)
    assert result.code == 1
    assert result.report["state"] == "failed"
    assert [(e["type"], e["phase"]) for e in result.report["errors"]] == [("KeyboardInterrupt", "run")]
    _opens_and_closes_match(result.events())
    assert "FAILED (interrupted)" in result.stderr


def test_ctrl_c_during_open_closes_what_was_opened_and_reports(tmp_path: Path) -> None:
    result = run_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = 5, events = "events.txt" }
    sink out : kit.Collect { path = "out.txt", events = "events.txt" }
    sink stuck : kit.InterruptOnOpen
    nums -> out
    nums -> stuck
"""))
    assert result.code == 1
    assert result.report["errors"][0]["type"] == "KeyboardInterrupt"
    assert result.events() == ["open nums", "open out", "close out", "close nums"]


def _signal_run(folder: Path, text: str, wait_for: str, signum: int) -> tuple[int, str, dict[str, object]]:
    """Run the pipeline as its own process, send it `signum` once `wait_for` is in events.txt."""
    import signal
    import subprocess
    import sys
    import time

    runner = compile_pipe(folder, text)[0]
    process = subprocess.Popen(
        [sys.executable, str(runner), "--no-progress", "--report", "report.json"], cwd=folder,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # Ctrl-C raises, as in a shell
    )
    events = folder / "events.txt"
    deadline = time.monotonic() + 60  # a liveness bound on a busy machine, not a speed test
    while not (events.exists() and wait_for in events.read_text().splitlines()):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.02)
    time.sleep(0.1)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    report = folder / "report.json"
    return process.returncode, stderr, json.loads(report.read_text()) if report.exists() else {}


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("where", ["stream", "publish", "workers"])
def test_a_signal_stops_the_run_cleanly_in_any_phase(tmp_path: Path, signame: str, where: str) -> None:
    import signal

    body = {
        "stream": """
    source nums : kit.Numbers { n = 100000, pause = 0.001, events = "events.txt" }
    processor check : kit.FailOn { events = "events.txt" }
    sink out : kit.Collect { path = "out.txt", events = "events.txt" }
    nums -> check -> out
""",
        "publish": """
    source nums : kit.Numbers { n = 5, events = "events.txt" }
    stage staged : jsonl { path = "staged.jsonl" }
    bulksink load : kit.SlowPublish { events = "events.txt" }
    nums -> staged => load
""",
        "workers": """
    source nums : kit.Numbers { n = 100000, pause = 0.0001, events = "events.txt" }
    processor slow : kit.busy with { workers = 2 }
    sink out : kit.Collect { path = "out.txt", events = "events.txt" }
    nums -> slow -> out
""",
    }[where]
    wait_for = "publish load" if where == "publish" else "open out"
    code, stderr, report = _signal_run(tmp_path, pipe(body), wait_for, getattr(signal, signame))
    assert code == 1, stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert "FAILED (interrupted)" in stderr
    assert report["state"] == "failed"
    expected = "Terminated" if signame == "SIGTERM" else "KeyboardInterrupt"
    assert expected in [e["type"] for e in report["errors"]], report["errors"]  # type: ignore[index]
    _opens_and_closes_match((tmp_path / "events.txt").read_text().splitlines())


@pytest.mark.parametrize("report", ["a_file/report.json", "a_dir", "a_file/deeper/report.json"])
def test_a_report_path_that_cannot_be_written_stops_before_anything_opens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, report: str
) -> None:
    from e2e.harness import load_module

    runner = compile_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = 3, events = "events.txt" }
    sink out : kit.Collect { path = "out.txt", events = "events.txt" }
    nums -> out
"""))[0]
    (tmp_path / "a_file").write_text("not a folder\n")
    (tmp_path / "a_dir").mkdir()
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    code = load_module(runner).run(["--report", report, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"--report {report}" in err and "Traceback" not in err, err
    assert not (tmp_path / "events.txt").exists()  # nothing was opened
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("token", ["plain-T0KEN-value", 's3cr\\et"X'])
def test_secrets_in_logs_and_in_escaped_forms_are_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture, token: str,
) -> None:
    monkeypatch.setenv("PIPEC_TEST_TOKEN", token)
    result = run_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = 3 }
    processor chatty : kit.Chatty { token = secret("PIPEC_TEST_TOKEN") } with { on_error = "deadletter", deadletter = dl }
    sink out : kit.Collect { path = "out.txt" }
    sink dl : jsonl { path = "dl.jsonl" }
    nums -> chatty -> out
"""), capsys=capsys)
    assert result.node("chatty")["failed"] == 1
    forms = {token, repr(token)[1:-1], json.dumps(token)[1:-1], json.dumps(repr(token)[1:-1])[1:-1]}
    logged = caplog.text
    assert "calling the API with token ***" in logged
    assert "client sends Bearer ***" in logged  # a logger of its own, through the root's handlers
    for text in (logged, result.stderr, *(p.read_text() for p in tmp_path.rglob("*") if p.is_file())):
        for form in forms:
            assert form not in text, form
    assert result.report["nodes"][1]["errors"][0]["message"] == "'***'"


def test_every_missing_variable_of_a_node_is_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("PIPEC_TEST_MISSING_A", "PIPEC_TEST_MISSING_B", "PIPEC_TEST_MISSING_C"):
        monkeypatch.delenv(var, raising=False)
    result = run_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = 3, events = env("PIPEC_TEST_MISSING_C") }
    sink out : kit.Collect { path = env("PIPEC_TEST_MISSING_A"), events = secret("PIPEC_TEST_MISSING_B") }
    nums -> out
"""), capsys=capsys)
    assert result.code == 2
    assert "test.pipe:5: node 'nums': env('PIPEC_TEST_MISSING_C')" in result.stderr
    assert "test.pipe:6: node 'out': env('PIPEC_TEST_MISSING_A')" in result.stderr
    assert "test.pipe:6: node 'out': secret('PIPEC_TEST_MISSING_B')" in result.stderr


@pytest.mark.parametrize("dl_fed_by_a_flow", [False, True])
def test_a_dead_letter_sent_while_a_sink_closes_is_written(tmp_path: Path, dl_fed_by_a_flow: bool) -> None:
    # The dead-letter sink must open before, and close after, every node that sends to it.
    flow = "    nums -> dl\n" if dl_fed_by_a_flow else ""
    result = run_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = 4, events = "events.txt" }
    sink held : kit.RejectOnClose { reject_ids = [2], events = "events.txt" } with { on_error = "deadletter", deadletter = dl }
    sink dl : kit.Collect { path = "dl.txt", events = "events.txt" }
    nums -> held
""" + flow))
    assert result.report["errors"] == []
    expected = ["0", "1", "2", "3"] if dl_fed_by_a_flow else []
    assert result.lines("dl.txt") == expected + ["None"]  # Collect writes a dead-letter entry's id: None
    assert result.node("held")["failed"] == 1
    events = result.events()
    assert events.index("open dl") < events.index("open held")
    assert events.index("close held") < events.index("close dl")


def test_a_row_the_database_refuses_while_the_sql_sink_finishes_is_dead_lettered(tmp_path: Path) -> None:
    import sqlite3

    tmp_path.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(tmp_path / "t.db") as db:
        db.execute("CREATE TABLE items (id INTEGER, amount INTEGER NOT NULL)")
    rows = [{"id": 1, "amount": 10}, {"id": 2, "amount": None}, {"id": 3, "amount": 30}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run_pipe(tmp_path, """pipeline t {
    threshold = 50%
    source rows : jsonl { path = "in.jsonl" }
    sink db : sql { url = "sqlite:///t.db", table = "items" } with { on_error = "deadletter", deadletter = dl }
    sink dl : jsonl { path = "dl.jsonl" }
    rows -> db
}
""")
    assert result.report["errors"] == [], result.report["errors"]
    dead = [json.loads(line) for line in result.lines("dl.jsonl")]
    assert [d["record"]["id"] for d in dead] == [2]
    assert result.node("db")["failed"] == 1
    with sqlite3.connect(tmp_path / "t.db") as db:
        assert sorted(r[0] for r in db.execute("SELECT id FROM items")) == [1, 3]


def test_lifecycle_order_puts_dead_letter_sinks_first_even_when_they_send_to_each_other() -> None:
    from pipec.runtime import NodeSpec
    from pipec.runtime.runner import lifecycle_order

    def node(name: str, role: str, deadletter: str | None = None) -> NodeSpec:
        return NodeSpec(name, role, "t", 1, object, deadletter=deadletter)

    nodes = (node("src", "source", "a"), node("p", "processor", "b"), node("a", "sink", "b"),
             node("b", "sink", "a"), node("out", "sink"))
    assert [n.name for n in lifecycle_order(nodes)] == ["b", "a", "src", "p", "out"]


BELOW_THRESHOLD = """
    threshold = 95%
    source nums : kit.Numbers { n = 6 }
    processor norm : kit.FailOn { ids = [3] }
    stage staged : jsonl { path = "staged.jsonl" }
    bulksink load : sql { url = "sqlite:///t.db", table = "items", replace = true, create = true }
    nums -> norm -> staged => load
"""


def test_a_run_below_its_threshold_publishes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    tmp_path.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(tmp_path / "t.db") as db:
        db.execute("CREATE TABLE items (id INTEGER, amount INTEGER, seen BOOLEAN)")
        db.executemany("INSERT INTO items VALUES (?, ?, ?)", [(100 + i, 0, 1) for i in range(3)])
    db.close()
    result = run_pipe(tmp_path, pipe(BELOW_THRESHOLD), capsys=capsys)
    assert result.code == 1
    assert result.report["state"] == "failed"
    with sqlite3.connect(tmp_path / "t.db") as db:
        assert sorted(row[0] for row in db.execute("SELECT id FROM items")) == [100, 101, 102]
    db.close()
    load = result.node("load")
    assert (load["in"], load["out"], load["failed"]) == (0, 0, 0)
    assert any("not published" in note and "norm" in note and "95%" in note for note in load["notes"])
    assert "note: load: not published" in result.stderr


def test_a_failed_run_says_why_in_the_summary_and_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_pipe(tmp_path, pipe(BELOW_THRESHOLD), capsys=capsys)
    reason = "node 'norm' kept 83.3% of its records, below the threshold 95%"
    assert result.report["reason"] == reason
    assert f"FAILED: {reason}" in result.stderr
    assert result.report["errors"] == []
    ok = run_pipe(tmp_path / "ok", pipe("""
    source nums : kit.Numbers { n = 3 }
    sink out : kit.Collect { path = "out.txt" }
    nums -> out
"""), capsys=capsys)
    assert ok.report["state"] == "success" and ok.report.get("reason") is None
    assert "FAILED" not in ok.stderr


def test_nodes_that_never_ran_are_not_shown_as_succeeding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_pipe(tmp_path, pipe("""
    source lines : jsonl { path = "missing.jsonl" }
    processor norm : kit.FailOn
    sink out : kit.Collect { path = "out.txt" }
    lines -> norm -> out
"""), capsys=capsys)
    assert result.code == 1
    assert all(node["success_rate"] is None for node in result.report["nodes"]), result.report["nodes"]
    assert "lowest_success_rate" not in result.report
    assert "missing.jsonl" in result.report["reason"] and "'lines'" in result.report["reason"]
    rows = [line.split() for line in result.stderr.splitlines() if line.split()[:1] in (["lines"], ["norm"], ["out"])]
    assert len(rows) == 3 and all(row[-1] == "-" for row in rows), result.stderr
    assert "100.0" not in result.stderr
    assert "FAILED: node 'lines'" in result.stderr


def test_a_runner_moved_away_from_its_pipe_folder_says_which_module_is_missing(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    runner = compile_pipe(tmp_path / "project", pipe("""
    source nums : kit.Numbers { n = 3 }
    sink out : kit.Collect { path = "out.txt" }
    nums -> out
"""))[0]
    elsewhere = tmp_path / "scheduler" / "dags"
    elsewhere.mkdir(parents=True)
    moved = Path(shutil.copy(runner, elsewhere / runner.name))
    done = subprocess.run([sys.executable, str(moved), "--no-progress"], cwd=elsewhere, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "'pipec_testkit'" in lines[0] and "PYTHONPATH" in lines[0]
    # importable from anywhere (here: on PYTHONPATH), the moved runner runs
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "project")}
    done = subprocess.run([sys.executable, str(moved), "--no-progress"], cwd=elsewhere, capture_output=True,
                          text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert (elsewhere / "out.txt").read_text().split() == ["0", "1", "2"]


def test_the_pipe_folder_comes_first_even_when_it_is_already_on_sys_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from e2e.harness import load_module

    runner = compile_pipe(tmp_path / "project", pipe("""
    source nums : kit.Numbers { n = 3 }
    sink out : kit.Collect { path = "out.txt" }
    nums -> out
"""))[0]
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "pipec_testkit.py").write_text("raise ImportError('the shadowing module was imported')\n")
    monkeypatch.setattr(sys, "path", [str(shadow), *sys.path, str(tmp_path / "project")])
    monkeypatch.delitem(sys.modules, "pipec_testkit", raising=False)
    monkeypatch.chdir(tmp_path)
    module = load_module(runner)
    assert sys.path[0] == str(tmp_path / "project")
    assert sys.path.count(str(tmp_path / "project")) == 1
    assert module.run(["--no-progress", "--quiet"]) == 0


def test_limit_counts_the_records_a_source_emitted_and_the_summary_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_pipe(tmp_path, pipe("""
    threshold = 50%
    source nums : kit.Numbers { n = 100, reject_ids = [1, 3] }
    sink out : kit.Collect { path = "out.txt" }
    nums -> out
"""), "--limit", "5", capsys=capsys)
    assert result.lines("out.txt") == ["0", "2", "4", "5", "6"]  # 5 emitted; the 2 rejected do not count
    nums = result.node("nums")
    assert (nums["in"], nums["out"], nums["failed"]) == (7, 5, 2)
    assert result.report["limit"] == 5
    head = result.stderr.splitlines()[0]
    assert "limited to 5 records per source" in head, head
    unlimited = run_pipe(tmp_path / "all", pipe("""
    source nums : kit.Numbers { n = 3 }
    sink out : kit.Collect { path = "out.txt" }
    nums -> out
"""), capsys=capsys)
    assert unlimited.report["limit"] is None and "limited" not in unlimited.stderr


def test_limit_is_described_exactly_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    from click.testing import CliRunner

    from pipec.cli.build_cmd import run_command
    from pipec.runtime.entry import parse_run_options

    with pytest.raises(SystemExit):
        parse_run_options(["--help"])
    runner_help = " ".join(capsys.readouterr().out.split())
    cli_help = " ".join(CliRunner().invoke(run_command, ["--help"]).output.split())
    for text in (runner_help, cli_help):
        assert "records it rejected are not counted" in text, text


def test_several_pipelines_with_one_report_path_write_one_report_each_and_say_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from click.testing import CliRunner

    from e2e.harness import SCHEMA, TESTKIT
    from pipec.cli.build_cmd import run_command

    shutil.copy(TESTKIT, tmp_path / TESTKIT.name)
    (tmp_path / "two.pipe").write_text(
        HEAD.replace("pipeline t {\n", "")
        + "".join(f"""
pipeline {name} {{
    source nums : kit.Numbers {{ n = 3 }}
    sink out : kit.Collect {{ path = "{name}.txt" }}
    nums -> out
}}
""" for name in ("a", "b")),
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = CliRunner().invoke(run_command, ["two.pipe", "--report", "out/x.json", "--no-progress"])
    assert result.exit_code == 0, result.output
    import jsonschema

    for name in ("a", "b"):
        report = json.loads((tmp_path / "out" / f"x.{name}.json").read_text())
        jsonschema.validate(report, SCHEMA)
        assert report["pipeline"] == name
        assert f"report: out/x.{name}.json" in result.output
    assert not (tmp_path / "out" / "x.json").exists()
    help_text = " ".join(CliRunner().invoke(run_command, ["--help"]).output.split())
    assert "x.a.json" in help_text, help_text
