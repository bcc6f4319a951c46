"""The `sql` connector's edge cases: all-or-nothing batches, upsert order, date/time values, paging,
concurrent table creation, MariaDB durations and malformed URLs."""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any

import pytest
import sqlalchemy

from pipec.connectors.sql import SqlSink, SqlSource
from pipec.runtime.policy import ErrorLog, NodeRuntime, Policy
from pipec.runtime.values import Redactor

from .conftest import drop_tables
from .test_sql import execute, query, run_sink


def items_table(url: str, name: str) -> None:
    execute(url, f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL)")


# ------------------------------------------------------------------------------------------ batches
def test_write_batch_is_all_or_nothing_across_chunks(db_url: str, table_name: str, make: Any) -> None:
    """The runtime retries a failed write_batch and then writes record by record: a half-kept batch
    would be written twice."""
    items_table(db_url, table_name)
    sink = make(SqlSink, url=db_url, table=table_name, batch=2)
    sink.open()
    try:
        records = [{"id": i, "name": f"n{i}"} for i in range(1, 7)]
        records[4] = {"id": 5, "name": None}  # NOT NULL, in the third chunk of 2
        try:
            sink.write_batch(records)
        except RuntimeError as exc:
            assert "failed" in str(exc)
        else:
            raise AssertionError("write_batch should have failed")
        assert query(db_url, f"SELECT count(*) FROM {table_name}") == [(0,)]
    finally:
        sink.close()


def test_runtime_fallback_writes_each_good_record_once(
    db_url: str, table_name: str, make: Any, rejects: Any
) -> None:
    items_table(db_url, table_name)
    sink = make(SqlSink, rejects, url=db_url, table=table_name, batch=2)
    sink.open()
    runtime = NodeRuntime("db", "t.pipe:1", Policy(retries=0), sink.write, ErrorLog(), Redactor(), "t")
    runtime.write_batch = sink.write_batch
    records = [{"id": i, "name": f"n{i}"} for i in range(1, 7)]
    records[4] = {"id": 5, "name": None}
    try:
        runtime.flush(list(records))  # flush empties the list it is given
    finally:
        sink.close()
    rows = query(db_url, f"SELECT id FROM {table_name} ORDER BY id")
    assert rows == [(1,), (2,), (3,), (4,), (6,)]
    assert [record for record, _ in rejects.items] == [records[4]]


# ------------------------------------------------------------------------------------------ upsert
def test_upsert_keeps_record_order_across_key_sets(db_url: str, table_name: str, make: Any) -> None:
    execute(db_url, f"CREATE TABLE {table_name} (id INTEGER PRIMARY KEY, a INTEGER, b INTEGER)")
    records = [{"id": 1, "a": 1}, {"id": 1, "a": 2, "b": 5}, {"id": 1, "a": 3}]
    config = {"url": db_url, "table": table_name, "mode": "upsert", "key": ["id"]}
    run_sink(make(SqlSink, **config), records)
    assert query(db_url, f"SELECT id, a, b FROM {table_name}") == [(1, 3, 5)]
    sink = make(SqlSink, **config)
    sink.open()
    try:
        sink.write_batch([{"id": 1, "a": 4, "b": 6}, {"id": 1, "a": 7}, {"id": 1, "b": 8}, {"id": 1, "a": 9}])
    finally:
        sink.close()
    assert query(db_url, f"SELECT id, a, b FROM {table_name}") == [(1, 9, 8)]


# ------------------------------------------------------------------------------------------ nested values
def test_lists_and_maps_are_stored_as_strict_lossless_json(db_url: str, table_name: str, make: Any) -> None:
    execute(db_url, f"CREATE TABLE {table_name} (id INTEGER PRIMARY KEY, doc TEXT)")
    sink = make(SqlSink, url=db_url, table=table_name)
    sink.open()
    try:
        sink.write({"id": 1, "doc": {"price": decimal.Decimal("0.12345678901234567891"), "tags": ["a"]}})
        with pytest.raises(ValueError, match="cannot be written as JSON"):
            sink.write({"id": 2, "doc": {"x": float("nan")}})
    finally:
        sink.close()
    assert query(db_url, f"SELECT id, doc FROM {table_name}") == [
        (1, '{"price": "0.12345678901234567891", "tags": ["a"]}')
    ]


# ------------------------------------------------------------------------------------------ dates and times
def test_date_column_takes_only_an_iso_date_or_datetime(db_url: str, table_name: str, make: Any) -> None:
    execute(db_url, f"CREATE TABLE {table_name} (id INTEGER PRIMARY KEY, d DATE)")
    sink = make(SqlSink, url=db_url, table=table_name)
    sink.open()
    try:
        for bad in ["2024-03-01 not a date", "2024-03-01xyz", "2024-03-01T25:00:00", "2024-13-01"]:
            with pytest.raises(ValueError, match=r"column 'd' \(DATE\): cannot store"):
                sink.write({"id": 9, "d": bad})
        sink.write({"id": 1, "d": "2024-03-01"})
        sink.write({"id": 2, "d": "2024-03-02T10:11:12"})
        sink.write({"id": 3, "d": "2024-03-03 23:59:59.250"})
        sink.write({"id": 4, "d": "2024-03-01T01:00:00+05:00"})  # 2024-02-29 20:00 UTC
    finally:
        sink.close()
    rows = [(i, str(d)) for i, d in query(db_url, f"SELECT id, d FROM {table_name} ORDER BY id")]
    assert rows == [(1, "2024-03-01"), (2, "2024-03-02"), (3, "2024-03-03"), (4, "2024-02-29")]


def test_aware_timestamps_are_stored_as_utc_in_naive_columns(db_url: str, table_name: str, make: Any) -> None:
    kind = "TIMESTAMP" if db_url.startswith("postgresql") else "DATETIME"
    execute(db_url, f"CREATE TABLE {table_name} (id INTEGER PRIMARY KEY, t {kind})")
    aware = datetime.datetime(2024, 3, 1, 10, tzinfo=datetime.timezone(datetime.timedelta(hours=5)))
    records = [
        {"id": 1, "t": "2024-03-01T10:00:00+05:00"},
        {"id": 2, "t": "2024-03-01T05:00:00Z"},
        {"id": 3, "t": "2024-03-01T05:00:00"},  # naive: stored as given
        {"id": 4, "t": aware},
        {"id": 5, "t": "2024-03-01T00:30:00-04:30"},
    ]
    run_sink(make(SqlSink, url=db_url, table=table_name), records)
    rows = query(db_url, f"SELECT t FROM {table_name} ORDER BY id")
    assert [str(t)[:19] for (t,) in rows] == ["2024-03-01 05:00:00"] * 5


@pytest.mark.servers
def test_aware_timestamps_keep_their_instant_in_a_timestamptz_column(postgres_url: str, make: Any) -> None:
    name = f"t_{uuid.uuid4().hex[:12]}"
    try:
        execute(postgres_url, f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, t TIMESTAMPTZ)")
        run_sink(make(SqlSink, url=postgres_url, table=name), [{"id": 1, "t": "2024-03-01T10:00:00+05:00"}])
        [(stored,)] = query(postgres_url, f"SELECT t FROM {name}")
        assert stored == datetime.datetime(2024, 3, 1, 5, tzinfo=datetime.timezone.utc)
    finally:
        drop_tables(postgres_url, name)


# ------------------------------------------------------------------------------------------ source
def test_sqlite_table_source_reads_the_smallest_rowid(sqlite_url: str, make: Any) -> None:
    execute(sqlite_url, "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    ids = [-(2**63), -(2**63) + 1, 0, 2**63 - 1]
    execute(
        sqlite_url,
        "INSERT INTO t (id, name) VALUES (:id, :name)",
        params=[{"id": i, "name": "x"} for i in ids],
    )
    for batch in (1, 1000):
        source = make(SqlSource, url=sqlite_url, table="t", batch=batch)
        source.open()
        try:
            assert [r["id"] for r in source.records()] == ids
        finally:
            source.close()


# ------------------------------------------------------------------------------------------ create
def test_create_when_another_writer_creates_the_table_first(db_url: str, table_name: str, make: Any) -> None:
    """Two writers (e.g. Beam workers) with `create = true`: both find no table; the other one creates
    it between this one's check and its CREATE TABLE, which then fails with "already exists"."""
    config = {"url": db_url, "table": table_name, "create": True}
    sink = make(SqlSink, **config)
    other = make(SqlSink, **config)
    sink.open()
    other.open()
    creates: list[str] = []

    def the_other_creates_first(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("CREATE TABLE") and not creates:
            creates.append(statement)
            other.write({"id": 1, "name": "other"})
            other.close()  # flushes: the table now exists, committed

    sqlalchemy.event.listen(sink._engine, "before_cursor_execute", the_other_creates_first)
    try:
        sink.write({"id": 2, "name": "this"})
    finally:
        sink.close()
        other.close()
    assert creates  # the race happened
    assert query(db_url, f"SELECT id, name FROM {table_name} ORDER BY id") == [(1, "other"), (2, "this")]


# ------------------------------------------------------------------------------------------ MariaDB TIME
@pytest.mark.servers
def test_mariadb_time_durations_keep_their_sign(mysql_url: str, make: Any) -> None:
    """MariaDB's TIME is a duration (-838:59:59 to 838:59:59): the driver returns a timedelta."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    stored = ["-01:00:00", "10:00:00", "838:59:59", "-00:00:01", "00:00:00.250000", "-838:59:59", "24:00:00"]
    expected = [
        "-01:00:00",
        datetime.time(10),
        "838:59:59",
        "-00:00:01",
        datetime.time(0, 0, 0, 250000),
        "-838:59:59",
        "24:00:00",
    ]
    try:
        execute(mysql_url, f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, t TIME(6))")
        rows = [{"id": i, "t": t} for i, t in enumerate(stored)]
        execute(mysql_url, f"INSERT INTO {name} (id, t) VALUES (:id, :t)", params=rows)
        for config in ({"table": name}, {"query": f"SELECT id, t FROM {name}"}):
            source = make(SqlSource, url=mysql_url, **config)
            source.open()
            try:
                records = sorted(source.records(), key=lambda r: r["id"])
            finally:
                source.close()
            assert [r["t"] for r in records] == expected, config
    finally:
        drop_tables(mysql_url, name)


# ------------------------------------------------------------------------------------------ URLs
@pytest.mark.parametrize(
    "url",
    [
        "mysql+pymysql://u:Pw@s3cr/et@127.0.0.1:1/db",
        "mysql+pymysql://u:Pw@s3cr@127.0.0.1:1/db",
        "postgresql+psycopg://u:Pw@s3cr/et@127.0.0.1:1/db",
    ],
)
@pytest.mark.parametrize("cls", [SqlSource, SqlSink])
def test_unescaped_at_in_the_password_shows_no_part_of_it(url: str, cls: Any, make: Any) -> None:
    component = make(cls, url=url, table="t")
    with pytest.raises((ValueError, RuntimeError)) as caught:
        component.open()
    component.close()
    message = str(caught.value)
    for part in ("Pw", "s3cr", "et@", "/et"):
        assert part not in message, message
    assert "***" in message and "percent-encode" in message


def test_redacted_urls() -> None:
    from pipec.connectors._sql import redact_url

    assert redact_url("mysql+pymysql://u:Pw@s3cr/et@host/db") == "mysql+pymysql://u:***@host/db"
    assert (
        redact_url("postgresql+psycopg://u:p%40ss@host:5432/db") == "postgresql+psycopg://u:***@host:5432/db"
    )
    assert redact_url("postgresql+psycopg://u@host/db?x=1") == "postgresql+psycopg://u@host/db?x=1"
    assert redact_url("sqlite:///data/a@b.db") == "sqlite:///data/a@b.db"


# ------------------------------------------------------------------------------------------ missing files
@pytest.mark.parametrize("cls_name", ["sql", "sql_metadata"])
def test_a_source_on_a_missing_sqlite_file_fails_and_creates_nothing(
    tmp_path: Any, make: Any, cls_name: str
) -> None:
    from pipec.connectors.sql_metadata import SqlMetadataSource

    missing = tmp_path / "nope.db"
    url = f"sqlite:///{missing}"
    source = make(SqlSource, url=url, table="t") if cls_name == "sql" else make(SqlMetadataSource, url=url)
    with pytest.raises(FileNotFoundError, match="no SQLite database at"):
        source.open()
    source.close()
    assert not missing.exists()
