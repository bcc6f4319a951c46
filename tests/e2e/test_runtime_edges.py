"""End-to-end: the edges a second review found: limited runs publish nothing, a threshold is met
exactly, error text stays bounded, a flat-map's wrong return type is a per-record error, a report
path that is not a plain file is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from e2e.harness import run_pipe
from pipec.runtime.values import Redactor

HEAD = "use pipec_testkit as kit\n\npipeline t {\n"


def pipe(body: str) -> str:
    return HEAD + body + "}\n"


def test_a_limited_run_publishes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "t.db"
    with sqlite3.connect(db) as connection:
        connection.execute("create table orders (id integer)")
        connection.executemany("insert into orders values (?)", [(i,) for i in range(100)])
    result = run_pipe(tmp_path, pipe(f"""
    source src : kit.Numbers {{ n = 100 }}
    stage st : jsonl
    bulksink load : sql {{ url = "sqlite:///{db}", table = "orders", replace = true }}
    src -> st => load
"""), "--limit", "3", capsys=capsys)
    assert result.code == 0
    with sqlite3.connect(db) as connection:
        assert connection.execute("select count(*) from orders").fetchone() == (100,)
    assert "a trial run publishes nothing" in result.node("load")["notes"][0]


def test_a_threshold_written_as_a_percentage_is_met_exactly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_pipe(tmp_path, pipe("""
    threshold = 99.9%
    source nums : kit.Numbers { n = 1000 }
    processor check : kit.FailOn { ids = [5] }
    sink out : kit.Collect { path = "out.txt" }
    nums -> check -> out
"""), capsys=capsys)
    assert result.report["state"] == "partial" and result.code == 0


def test_a_huge_error_message_is_cut_in_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    huge = "x" * 200_000
    result = run_pipe(tmp_path, pipe(f"""
    source nums : kit.Numbers {{ n = 30 }}
    processor check : kit.FailOn {{ ids = [1, 2, 3], message = "{huge}" }}
    sink out : kit.Collect {{ path = "out.txt" }}
    nums -> check -> out
"""), capsys=capsys)
    error = result.node("check")["errors"][0]
    assert len(error["message"]) < 5_000 and "characters cut" in error["message"]
    assert len(error["traceback"]) < 17_000
    assert (tmp_path / "report.json").stat().st_size < 200_000


def test_a_flat_map_returning_one_record_fails_it_and_none_filters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = 4 }
    processor wrong : kit.one_dict
    sink out : kit.Collect { path = "out.txt" }
    nums -> wrong -> out
"""), capsys=capsys)
    wrong = result.node("wrong")
    assert (wrong["in"], wrong["out"], wrong["failed"]) == (4, 0, 2)
    assert "must return an iterable of records, got a dict" in wrong["errors"][0]["message"]
    assert result.lines("out.txt") == []


def test_a_report_path_that_is_a_symlink_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Written atomically, the report would replace the link itself (or, for /dev/stdout, the device).
    target = tmp_path / "report.json"
    (tmp_path / "elsewhere.json").write_text("{}")
    target.symlink_to(tmp_path / "elsewhere.json")
    result = run_pipe(tmp_path, pipe("""
    source nums : kit.Numbers { n = 3 }
    sink out : kit.Collect { path = "out.txt" }
    nums -> out
"""), capsys=capsys)
    assert result.code == 2
    assert "not a regular file" in result.stderr
    assert target.is_symlink() and (tmp_path / "elsewhere.json").read_text() == "{}"


def test_url_encoded_secrets_and_secrets_in_sets_are_redacted() -> None:
    secret = "s3cr/t+p@ss"
    redact = Redactor([secret])
    for form in (quote(secret, safe=""), quote_plus(secret), quote(secret)):
        assert redact(f"GET https://api/x?token={form}") == "GET https://api/x?token=***"
    assert redact.deep({"meta": {"s": {secret}}}) == {"meta": {"s": ["***"]}}
