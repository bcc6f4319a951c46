"""`workers = N` on processors: the chain runs in worker processes, and nothing else changes.

Every test compiles a real `.pipe` file and runs the generated runner in-process (tests/e2e/harness.py);
the processors below report the process they ran in, so the tests also prove that workers were used.
No test here measures time.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from e2e.harness import RunResult, compile_pipe, run_pipe

from pipec.runtime.workers import DEPTH

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="worker processes fork (Linux)")

WORKER_STEPS = textwrap.dedent('''
    """Processors and sinks for tests/test_workers.py."""
    import json
    import os
    import time

    from pydantic import BaseModel

    from pipec.runtime import Processor, Sink, Source, emits_many

    MAIN_PID = os.getpid()
    EMITTED = [0]


    def tag(record):
        """Adds the id of the process that ran it; the time spent varies so workers finish out of turn."""
        if record["id"] % 7 == 0:
            time.sleep(0.0005)
        return {**record, "pid": os.getpid()}


    def square(record):
        return {**record, "square": record["id"] * record["id"]}


    def odd_only(record):
        return record if record["id"] % 2 else None


    def fail_on_13s(record):
        if record["id"] % 13 == 0:
            raise ValueError(f"unlucky {record['id']}")
        return record


    @emits_many
    def split(record):
        return [] if record["id"] % 5 == 0 else [{**record, "half": 0}, {**record, "half": 1}]


    def die_at_50(record):
        if record["id"] == 50:
            os._exit(3)
        return record


    def unpicklable_at_9(record):
        if record["id"] == 9:
            return {**record, "fn": lambda: None}
        return record


    class Unpicklable(Source):
        """Numbers 0..n-1; the record with id `bad` holds a lambda, so it cannot reach a worker."""

        class Config(BaseModel):
            n: int = 10
            bad: int = 4

        def records(self):
            for i in range(self.config.n):
                yield {"id": i, "fn": lambda: None} if i == self.config.bad else {"id": i}


    class Flaky(Processor):
        """Fails the first attempt at every id divisible by 10 (per process: the same worker retries)."""

        def open(self):
            self.seen = set()

        def process(self, record):
            if record["id"] % 10 == 0 and record["id"] not in self.seen:
                self.seen.add(record["id"])
                raise ConnectionError(f"flaky {record['id']}")
            return record


    class Counted(Source):
        """Numbers 0..n-1 that count how many records have left the source (in this process)."""

        class Config(BaseModel):
            n: int = 100

        def records(self):
            EMITTED[0] = 0
            for i in range(self.config.n):
                EMITTED[0] += 1
                yield {"id": i}


    class Lag(Sink):
        """Writes ids; on close, the largest number of records that had left the source but not
        reached this sink: the records in flight."""

        class Config(BaseModel):
            path: str

        def open(self):
            self.written = 0
            self.lag = 0
            self.file = open(self.config.path, "w", encoding="utf-8")

        def write(self, record):
            self.written += 1
            self.lag = max(self.lag, EMITTED[0] - self.written)
            self.file.write(json.dumps(record) + "\\n")

        def close(self):
            self.file.close()
            with open(self.config.path + ".lag", "w", encoding="utf-8") as handle:
                handle.write(str(self.lag))
''')

HEAD = "use pipec_testkit as kit\nuse worker_steps as ws\n\npipeline t {\n"


def pipe(body: str) -> str:
    return HEAD + textwrap.dedent(body) + "}\n"


def run(tmp_path: Path, body: str, *argv: str) -> RunResult:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "worker_steps.py").write_text(WORKER_STEPS, encoding="utf-8")
    return run_pipe(tmp_path, pipe(body), *argv)


def jsonl(result: RunResult, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.lines(name)]


def test_order_is_preserved_and_workers_are_other_processes(tmp_path: Path) -> None:
    result = run(tmp_path, """
        source nums : kit.Numbers { n = 3000 }
        processor tag : ws.tag with { workers = 3 }
        sink out : jsonl { path = "out.jsonl" }
        nums -> tag -> out
    """)
    assert result.code == 0, result.report
    records = jsonl(result, "out.jsonl")
    assert [r["id"] for r in records] == list(range(3000))
    pids = {r["pid"] for r in records}
    assert os.getpid() not in pids
    assert len(pids) == 3
    assert (result.node("tag")["in"], result.node("tag")["out"]) == (3000, 3000)


def test_same_output_and_counts_as_in_process(tmp_path: Path) -> None:
    body = """
        source nums : kit.Numbers { n = 2000 }
        processor sq : ws.square {WORKERS}
        processor odd : ws.odd_only {WORKERS}
        processor split : ws.split {WORKERS}
        processor check : ws.fail_on_13s {WORKERS}
        sink out : jsonl { path = "out.jsonl" }
        sink evens : jsonl { path = "evens.jsonl" }
        nums -> sq -> odd -> split -> check -> out
        sq -> evens
    """
    plain = run(tmp_path / "plain", body.replace("{WORKERS}", ""))
    workers = run(tmp_path / "workers", body.replace("{WORKERS}", "with { workers = 2 }"))
    assert workers.lines("out.jsonl") == plain.lines("out.jsonl")
    assert workers.lines("evens.jsonl") == plain.lines("evens.jsonl")
    assert len(plain.lines("out.jsonl")) > 0
    for name in ("nums", "sq", "odd", "split", "check", "out", "evens"):
        keys = ("in", "out", "filtered", "failed", "retried")
        assert [workers.node(name)[k] for k in keys] == [plain.node(name)[k] for k in keys], name
    assert workers.report["state"] == plain.report["state"] == "partial"
    # odd -> split -> check run as one chain in the workers (sq has two successors, so it is alone)
    source = workers.runner.read_text(encoding="utf-8")
    assert "run.workers(('sq',)," in source
    assert "run.workers(('odd', 'split', 'check')," in source


def test_errors_in_workers_are_isolated_with_node_and_line(tmp_path: Path) -> None:
    result = run(tmp_path, """
        source nums : kit.Numbers { n = 100 }
        processor check : kit.FailOn { ids = [7, 42, 99] } with { workers = 2 }
        sink out : kit.Collect { path = "out.txt" }
        nums -> check -> out
    """)
    assert result.code == 0
    assert result.report["state"] == "partial"
    assert result.lines("out.txt") == [str(i) for i in range(100) if i not in (7, 42, 99)]
    check = result.node("check")
    assert (check["in"], check["out"], check["failed"]) == (100, 97, 3)
    assert [e["message"] for e in check["errors"]] == ["bad record 7", "bad record 42", "bad record 99"]
    for error in check["errors"]:
        assert (error["node"], error["location"], error["type"], error["phase"]) == (
            "check", "test.pipe:7", "ValueError", "record")
        assert "node 'check' (test.pipe:7)" in error["traceback"]
        assert "ValueError: bad record" in error["traceback"]


def test_dead_letters_under_workers(tmp_path: Path) -> None:
    result = run(tmp_path, """
        source nums : kit.Numbers { n = 100 }
        processor seen : kit.FailOn with { workers = 2 }
        processor check : kit.FailOn { ids = [7, 42, 99] } with { workers = 2, on_error = "deadletter", deadletter = rejected }
        sink out : kit.Collect { path = "out.txt" }
        sink rejected : jsonl { path = "rejected.jsonl" }
        nums -> seen -> check -> out
    """)  # noqa: E501
    assert result.code == 0
    dead = jsonl(result, "rejected.jsonl")
    assert [d["record"]["id"] for d in dead] == [7, 42, 99]
    for entry in dead:
        assert (entry["node"], entry["location"]) == ("check", "test.pipe:8")
        assert entry["record"]["seen"] is True  # the record as `check` received it, after `seen`
        assert entry["error"]["type"] == "ValueError"
        assert "node 'check' (test.pipe:8)" in entry["error"]["traceback"]
    assert (result.node("check")["failed"], result.node("rejected")["in"]) == (3, 3)
    assert len(result.lines("out.txt")) == 97


def test_fail_policy_stops_at_the_failed_record(tmp_path: Path) -> None:
    result = run(tmp_path, """
        source nums : kit.Numbers { n = 5000 }
        processor check : kit.FailOn { ids = [700] } with { workers = 2, on_error = "fail" }
        sink out : kit.Collect { path = "out.txt" }
        nums -> check -> out
    """)
    assert result.code == 1
    assert result.report["state"] == "failed"
    assert result.lines("out.txt") == [str(i) for i in range(700)]  # in order, nothing after 700
    check = result.node("check")
    assert check["out"] == 700 and result.node("out")["in"] == 700
    assert [e["message"] for e in check["errors"]] == ["bad record 700"]
    assert check["errors"][0]["location"] == "test.pipe:7"
    # The records the source had already handed to the workers are accounted for, and said so.
    in_flight = check["in"] - 701
    assert check["failed"] == 1 + in_flight
    if in_flight:
        assert f"{in_flight:,} records were taken in but not processed" in check["notes"][0]


def test_retries_happen_in_the_worker_and_are_counted(tmp_path: Path) -> None:
    result = run(tmp_path, """
        source nums : kit.Numbers { n = 200 }
        processor flaky : ws.Flaky with { workers = 2, retries = 2, backoff = 1ms }
        sink out : kit.Collect { path = "out.txt" }
        nums -> flaky -> out
    """)
    assert result.code == 0
    assert result.report["state"] == "success"
    assert result.lines("out.txt") == [str(i) for i in range(200)]
    assert (result.node("flaky")["retried"], result.node("flaky")["failed"]) == (20, 0)


def test_records_in_flight_are_bounded(tmp_path: Path) -> None:
    n = 30_000
    result = run(tmp_path, f"""
        source nums : ws.Counted {{ n = {n} }}
        processor tag : ws.tag with {{ workers = 2 }}
        sink out : ws.Lag {{ path = "out.jsonl" }}
        nums -> tag -> out
    """)
    assert result.code == 0
    assert len(result.lines("out.jsonl")) == n
    lag = int((tmp_path / "out.jsonl.lag").read_text())
    chunk = 256
    assert 0 < lag <= (2 * DEPTH + 1) * chunk + 1  # in the workers' queues, plus the chunk being filled
    assert lag < n // 10


def test_a_worker_that_dies_fails_the_run_cleanly(tmp_path: Path) -> None:
    result = run(tmp_path, """
        source nums : kit.Numbers { n = 2000, events = "events.txt" }
        processor die : ws.die_at_50 with { workers = 2 }
        sink out : kit.Collect { path = "out.txt", events = "events.txt" }
        nums -> die -> out
    """)
    assert result.code == 1
    assert result.report["state"] == "failed"
    error = result.report["errors"][0]
    assert (error["node"], error["location"], error["phase"]) == ("die", "test.pipe:7", "run")
    assert "worker process" in error["message"] and "died" in error["message"]
    assert result.lines("out.txt") == []  # id 50 is in the first chunk: nothing came back
    die = result.node("die")
    assert die["failed"] == die["in"] > 0 and die["out"] == 0
    events = result.events()
    assert events.count("close nums") == 1 and events.count("close out") == 1


def test_an_output_that_cannot_cross_back_fails_at_its_node(tmp_path: Path) -> None:
    result = run(tmp_path, """
        source nums : kit.Numbers { n = 20 }
        processor odd : ws.unpicklable_at_9 with { workers = 2 }
        sink out : kit.Collect { path = "out.txt" }
        nums -> odd -> out
    """)
    assert result.code == 0
    assert result.lines("out.txt") == [str(i) for i in range(20) if i != 9]
    error = result.node("odd")["errors"][0]
    assert error["node"] == "odd" and "cannot be sent" in error["message"]


def test_a_record_that_cannot_reach_a_worker_under_fail_is_counted_once(tmp_path: Path) -> None:
    result = run(tmp_path, """
        source nums : ws.Unpicklable { n = 10, bad = 4 }
        processor same : ws.square with { workers = 2, on_error = "fail" }
        sink out : kit.Collect { path = "out.txt" }
        nums -> same -> out
    """)
    assert result.code == 1
    same = result.node("same")
    assert "cannot be sent" in same["errors"][0]["message"]
    # The bad record failed; the other nine were taken in and never processed: ten in all, not 11.
    assert (same["in"], same["out"], same["failed"]) == (10, 0, 10)
    assert result.node("out")["in"] == 0


def test_consecutive_processors_with_the_same_workers_share_one_chain(tmp_path: Path) -> None:
    (tmp_path / "worker_steps.py").parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "worker_steps.py").write_text(WORKER_STEPS, encoding="utf-8")
    [runner] = compile_pipe(tmp_path, pipe("""
        source nums : kit.Numbers
        processor a : ws.square with { workers = 2 }
        processor b : ws.square with { workers = 2 }
        processor c : ws.square with { workers = 3 }
        processor d : ws.square
        sink out : jsonl { path = "out.jsonl" }
        nums -> a -> b -> c -> d -> out
    """))
    source = runner.read_text(encoding="utf-8")
    assert "run.workers(('a', 'b'), n_b_emit, 256)" in source
    assert "run.workers(('c',), n_c_emit, 256)" in source
    assert "n_d_call = run.call('d')" in source  # d stays in the main process
    assert "run.call('a')" not in source and "run.call('b')" not in source


def test_a_failure_downstream_of_the_workers_keeps_the_counts_true(tmp_path: Path) -> None:
    result = run(tmp_path, """
        source nums : kit.Numbers { n = 5000 }
        processor tag : ws.tag with { workers = 2 }
        sink out : kit.Collect { path = "out.txt", fail_ids = [300] } with { on_error = "fail" }
        nums -> tag -> out
    """)
    assert result.code == 1
    assert result.lines("out.txt") == [str(i) for i in range(300)]
    out, tag = result.node("out"), result.node("tag")
    assert (out["in"], out["out"], out["failed"]) == (301, 300, 1)
    assert tag["out"] == 301  # what `out` received; the rest is accounted for at `tag`, with a note
    assert tag["failed"] == tag["in"] - 301
    assert any("records were" in note for note in tag["notes"])


def test_a_stop_downstream_still_counts_the_chunks_later_failures(tmp_path: Path) -> None:
    result = run(tmp_path, """
        source nums : kit.Numbers { n = 10 }
        processor check : kit.FailOn { ids = [5] } with { workers = 2 }
        sink out : kit.Collect { path = "out.txt", fail_ids = [3] } with { on_error = "fail" }
        nums -> check -> out
    """)
    assert result.code == 1
    assert result.lines("out.txt") == ["0", "1", "2"]
    out, check = result.node("out"), result.node("check")
    assert (out["in"], out["out"], out["failed"]) == (4, 3, 1)  # 0..3 reached it, 3 failed
    # 5 failed in a worker; 4 and 6..9 were processed but never handed on.
    assert (check["in"], check["out"], check["failed"]) == (10, 4, 6)
    assert [e["message"] for e in check["errors"]] == ["bad record 5"]


def test_a_timeout_in_a_worker_fails_the_record_and_the_run_goes_on(tmp_path: Path) -> None:
    result = run(tmp_path, """
        source nums : kit.Numbers { n = 40 }
        processor slow : kit.Hang { ids = [5], seconds = 3.0 } with { workers = 2, timeout = 500ms }
        sink out : kit.Collect { path = "out.txt" }
        nums -> slow -> out
    """)
    assert result.code == 0
    assert result.lines("out.txt") == [str(i) for i in range(40) if i != 5]
    error = result.node("slow")["errors"][0]
    assert (error["type"], error["location"]) == ("CallTimedOut", "test.pipe:7")


def test_without_fork_the_chain_runs_in_process_with_the_same_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipec.runtime.workers as workers

    body = """
        source nums : kit.Numbers { n = 1000 }
        processor tag : ws.tag with { workers = 2 }
        processor check : kit.FailOn { ids = [7, 420] } with { workers = 2, on_error = "deadletter", deadletter = rejected }
        processor split : ws.split with { workers = 2 }
        sink out : jsonl { path = "out.jsonl" }
        sink rejected : jsonl { path = "rejected.jsonl" }
        nums -> tag -> check -> split -> out
    """  # noqa: E501
    forked = run(tmp_path / "forked", body)
    monkeypatch.setattr(workers, "_start_methods", lambda: [])
    inline = run(tmp_path / "inline", body)
    assert {r["pid"] for r in jsonl(inline, "out.jsonl")} == {os.getpid()}

    def without_pid(result: RunResult, name: str) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "pid"} for r in jsonl(result, name)]

    assert without_pid(inline, "out.jsonl") == without_pid(forked, "out.jsonl")
    assert [d["record"]["id"] for d in jsonl(inline, "rejected.jsonl")] == [7, 420]
    for name in ("nums", "tag", "check", "split", "out", "rejected"):
        keys = ("in", "out", "filtered", "failed", "retried")
        assert [inline.node(name)[k] for k in keys] == [forked.node(name)[k] for k in keys], name


@pytest.mark.parametrize("options", ["workers = 2", "workers = 2, retries = 1, backoff = 1ms"])
def test_a_flat_map_generator_failing_partway_fails_only_its_record(tmp_path: Path, options: str) -> None:
    result = run(tmp_path, f"""
        threshold = 50%
        source nums : kit.Numbers {{ n = 6 }}
        processor split : kit.lazy_split with {{ {options} }}
        sink out : kit.Collect {{ path = "out.txt" }}
        nums -> split -> out
    """)
    assert result.code == 0, result.report["errors"]
    split = result.node("split")
    assert (split["in"], split["out"], split["failed"]) == (6, 10, 1)
    assert result.lines("out.txt") == ["0", "0", "1", "1", "2", "2", "4", "4", "5", "5"]


def test_system_exit_in_a_worker_fails_only_its_record(tmp_path: Path) -> None:
    result = run(tmp_path, """
        threshold = 50%
        source nums : kit.Numbers { n = 5 }
        processor quits : kit.exits_at_2 with { workers = 2 }
        sink out : kit.Collect { path = "out.txt" }
        nums -> quits -> out
    """)
    assert result.code == 0
    quits = result.node("quits")
    assert (quits["in"], quits["out"], quits["failed"]) == (5, 4, 1)
    assert quits["errors"][0]["type"] == "SystemExit"
    assert result.lines("out.txt") == ["0", "1", "3", "4"]
