"""A sink's last writes on Beam: what its `close()` would finish (buffered rows, requests in flight) is
finished by `flush()` at the end of every bundle, where failures are still counted and dead-lettered; and
what closing in `DoFn.teardown` still changes (a close error, records rejected there) reaches the report.
Every case runs on both targets and compares."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .beamkit import Run, errors_by_node
from .test_beam_runtime import entries, run_target

pytestmark = pytest.mark.beam


def without_run_details(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Dead-letter entries without what differs between two runs (run id, traceback)."""
    return [{**e, "run_id": "*", "error": {**e["error"], "traceback": "*"}} for e in found]


def run_in(tmp_path: Path, text: str, prepare: Any = None, *beam_argv: str) -> tuple[Run, Run]:
    """Run `text` locally and on Beam (with `beam_argv`), each in its own folder (`prepare(folder)` first)."""
    runs = []
    for target in ("local", "beam"):
        folder = tmp_path / target
        folder.mkdir()
        if prepare is not None:
            prepare(folder)
        runs.append(run_target(folder, text, target, *(beam_argv if target == "beam" else ())))
    return runs[0], runs[1]


# --------------------------------------------------------------------- sql: the last buffered batch
SQL_PIPE = """pipeline p {
    threshold = 80%
    source src : jsonl { path = "in.jsonl" }
    sink   db  : sql { url = "sqlite:///t.db", table = "items" } with { on_error = "deadletter", deadletter = dl }
    sink   dl  : jsonl { path = "dl.jsonl" }
    src -> db
}
"""


def sql_inputs(folder: Path) -> None:
    connection = sqlite3.connect(folder / "t.db")
    connection.execute("create table items(id integer, v text not null)")
    connection.commit()
    connection.close()
    lines = [json.dumps({"id": i, "v": None if i == 6 else f"v{i}"}) for i in range(1, 8)]
    (folder / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def table(folder: Path) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(folder / "t.db")
    try:
        return sorted(connection.execute("select id, v from items").fetchall())
    finally:
        connection.close()


@pytest.mark.parametrize("batch", [False, True], ids=["buffered-by-the-sink", "with-batch"])
def test_sql_sink_rows_refused_in_its_last_batch_are_counted_and_dead_lettered(
    tmp_path: Path, batch: bool
) -> None:
    """The sql sink buffers rows (500 per transaction): all 7 are still buffered when the stream ends."""
    text = SQL_PIPE
    if batch:  # the runtime's own batch buffer in front of the sink (its write_batch commits at once)
        text = text.replace('deadletter = dl }', 'deadletter = dl, batch = 3 }')
    local, beam = run_in(tmp_path, text, sql_inputs)
    assert local.counts()["db"] == (7, 6, 0, 1, 0)
    assert beam.counts() == local.counts()
    assert beam.code == local.code == 0
    assert beam.report["state"] == local.report["state"] == "partial"
    assert table(beam.folder) == table(local.folder) == [(i, f"v{i}") for i in range(1, 8) if i != 6]
    got = entries(beam, "dl.jsonl")
    assert [e["record"]["id"] for e in got] == [6]
    assert "NOT NULL constraint failed" in got[0]["error"]["message"]
    assert without_run_details(got) == without_run_details(entries(local, "dl.jsonl"))
    assert errors_by_node(beam) == errors_by_node(local)


def test_sql_sinks_on_threaded_beam_workers_match_local(tmp_path: Path) -> None:
    """Several threads start sql DoFns at once: the lazily imported SQL layer must be whole for each."""
    threads = ("--direct_num_workers=2", "--direct_running_mode=multi_threading")
    local, beam = run_in(tmp_path, SQL_PIPE, sql_inputs, *threads)
    assert beam.code == local.code == 0
    assert beam.counts() == local.counts()
    assert table(beam.folder) == table(local.folder)


# ---------------------------------------------------------------------- http: requests in flight
@pytest.fixture
def endpoint() -> Iterator[str]:
    """A loopback endpoint that answers 400 for ids that are multiples of 5, slowly enough that requests
    are still in flight when the stream ends."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            self.rfile.read(int(self.headers.get("content-length") or 0))
            item = int(self.path.rsplit("/", 1)[-1])
            time.sleep(0.05)
            status, body = (400, b'{"error": "rejected"}') if item % 5 == 0 else (200, b"{}")
            self.send_response(status)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_http_sink_requests_in_flight_are_counted_and_dead_lettered(tmp_path: Path, endpoint: str) -> None:
    text = f"""use pipec_testkit as kit
pipeline h {{
    threshold = 50%
    source nums : kit.Numbers {{ n = 12 }}
    sink   api  : http {{ url = "{endpoint}/items/{{id}}", max_concurrency = 4, retries = 0 }} with {{ on_error = "deadletter", deadletter = dl }}
    sink   dl   : jsonl {{ path = "dl.jsonl" }}
    nums -> api
}}
"""
    local, beam = run_in(tmp_path, text)
    assert local.counts()["api"] == (12, 9, 0, 3, 0)
    assert beam.counts() == local.counts()
    assert beam.code == local.code == 0
    assert beam.report["state"] == local.report["state"] == "partial"
    got = sorted(e["record"]["id"] for e in entries(beam, "dl.jsonl"))
    assert got == sorted(e["record"]["id"] for e in entries(local, "dl.jsonl")) == [0, 5, 10]


# ------------------------------------------------------------------- what closing in teardown changes
CLOSING = '''
import json

from pydantic import BaseModel

from pipec.runtime import Sink


class Config(BaseModel):
    path: str
    bad: list[int] = []


class FailsToClose(Sink):
    """Writes every record, then fails in close()."""

    Config = Config

    def open(self):
        self.file = open(self.config.path, "w", encoding="utf-8")

    def write(self, record):
        self.file.write(json.dumps(record) + "\\n")

    def close(self):
        self.file.close()
        raise OSError("the disk is full: the last records were not saved")


class WritesOnClose(Sink):
    """Buffers every record and writes them only in close() (it has no flush()): the ids in `bad` are
    rejected there."""

    Config = Config

    def open(self):
        self.pending = []

    def write(self, record):
        self.pending.append(record)

    def close(self):
        with open(self.config.path, "w", encoding="utf-8") as file:
            for record in self.pending:
                if record["id"] in self.config.bad:
                    self.context.reject(record, ValueError(f"cannot save {record['id']}"))
                else:
                    file.write(json.dumps(record) + "\\n")
'''


def closing_module(folder: Path) -> None:
    (folder / "closing.py").write_text(CLOSING, encoding="utf-8")


CLOSE_PIPE = """use pipec_testkit as kit
use closing
pipeline c {
    threshold = 50%
    source nums : kit.Numbers { n = 6 }
    sink   out  : closing.SINK { path = "out.jsonl", bad = [2, 4] }
    nums -> out
}
"""


@pytest.mark.parametrize(
    "workers", [(), ("--direct_num_workers=2", "--direct_running_mode=multi_processing")], ids=["in-process", "processes"]
)
def test_a_close_error_in_teardown_fails_the_run(tmp_path: Path, workers: tuple[str, ...]) -> None:
    text = CLOSE_PIPE.replace("SINK", "FailsToClose").replace(", bad = [2, 4]", "")
    local, beam = run_in(tmp_path, text, closing_module, *workers)
    assert beam.code == local.code == 1
    assert beam.report["state"] == local.report["state"] == "failed"
    assert beam.counts() == local.counts()
    for run in (local, beam):  # (several worker processes: one close, and one error, per instance)
        found = {(e["node"], e["location"], e["type"], e["phase"], e["message"]) for e in run.report["errors"]}
        assert found == {
            ("out", "test.pipe:6", "OSError", "close", "the disk is full: the last records were not saved")
        }, found


def test_records_rejected_while_closing_in_teardown_are_counted(tmp_path: Path) -> None:
    text = CLOSE_PIPE.replace("SINK", "WritesOnClose")
    local, beam = run_in(tmp_path, text, closing_module)
    assert local.counts()["out"] == (6, 4, 0, 2, 0)
    assert beam.counts() == local.counts()
    assert beam.code == local.code == 0
    assert beam.report["state"] == local.report["state"] == "partial"
    assert errors_by_node(beam) == errors_by_node(local)
    assert (beam.folder / "out.jsonl").read_bytes() == (local.folder / "out.jsonl").read_bytes()


def test_dead_letters_produced_while_closing_in_teardown_fail_the_beam_run(tmp_path: Path) -> None:
    """Nothing can be emitted from DoFn.teardown: dead letters made there cannot reach their sink, so the
    Beam run must not pass for a success (a sink with a flush() never gets here)."""
    text = CLOSE_PIPE.replace("SINK", "WritesOnClose").replace(
        'bad = [2, 4] }', 'bad = [2, 4] } with { on_error = "deadletter", deadletter = dl }\n'
        '    sink   dl   : jsonl { path = "dl.jsonl" }'
    )
    folder = tmp_path / "beam"
    folder.mkdir()
    closing_module(folder)
    beam = run_target(folder, text, "beam")
    assert beam.code == 1
    assert beam.report["state"] == "failed"
    assert beam.node("out")["failed"] == 2
    kinds = [(e["node"], e["type"], e["phase"]) for e in beam.report["errors"]]
    assert ("out", "DeadLettersLost", "close") in kinds, kinds
