from __future__ import annotations

import datetime
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from pipec.connectors.sql import SqlBulkSink, SqlSink, SqlSource, component

from .conftest import drop_tables


def execute(url: str, *statements: str, params: list[dict[str, Any]] | None = None) -> None:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as connection:
            for statement in statements:
                if params is not None and statement.lstrip().upper().startswith("INSERT"):
                    connection.execute(sqlalchemy.text(statement), params)
                else:
                    connection.execute(sqlalchemy.text(statement))
    finally:
        engine.dispose()


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sqlalchemy.text(sql))]
    finally:
        engine.dispose()


def people_table(url: str, name: str) -> None:
    execute(
        url,
        f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL, score INTEGER, born DATE)",
    )


def run_sink(sink: Any, records: list[dict[str, Any]]) -> None:
    sink.open()
    try:
        for record in records:
            sink.write(record)
    finally:
        sink.close()


def test_component_roles() -> None:
    assert component.roles == ("source", "sink", "bulksink")


# ------------------------------------------------------------------------------------------ source
def test_source_streams_a_table(db_url: str, table_name: str, make: Any) -> None:
    people_table(db_url, table_name)
    rows = [{"id": i, "name": f"p{i}", "score": i % 7, "born": None} for i in range(2500)]
    execute(db_url, f"INSERT INTO {table_name} (id, name, score) VALUES (:id, :name, :score)", params=rows)
    source = make(SqlSource, url=db_url, table=table_name, batch=100)
    source.open()
    try:
        records = list(source.records())
    finally:
        source.close()
    assert sorted(r["id"] for r in records) == list(range(2500))
    assert set(records[0]) == {"id", "name", "score", "born"}

    source = make(SqlSource, url=db_url, table=table_name, columns=["id", "name"])
    source.open()
    try:
        first = next(iter(source.records()))
    finally:
        source.close()
    assert set(first) == {"id", "name"}


def test_source_query_with_params(db_url: str, table_name: str, make: Any) -> None:
    people_table(db_url, table_name)
    rows = [{"id": i, "name": f"p{i}", "score": i} for i in range(10)]
    execute(db_url, f"INSERT INTO {table_name} (id, name, score) VALUES (:id, :name, :score)", params=rows)
    sql = f"SELECT id, name FROM {table_name} WHERE score >= :low ORDER BY id"
    source = make(SqlSource, url=db_url, query=sql, params={"low": 7})
    source.open()
    try:
        assert list(source.records()) == [
            {"id": 7, "name": "p7"},
            {"id": 8, "name": "p8"},
            {"id": 9, "name": "p9"},
        ]
    finally:
        source.close()


@pytest.mark.servers
def test_source_uses_a_server_side_cursor_on_postgres(postgres_url: str, make: Any) -> None:
    name = f"t_{uuid.uuid4().hex[:12]}"
    try:
        execute(postgres_url, f"CREATE TABLE {name} AS SELECT g AS id FROM generate_series(1, 5000) g")
        source = make(SqlSource, url=postgres_url, table=name, batch=50)
        source.open()
        try:
            records = source.records()
            next(records)
            cursors = source._connection.exec_driver_sql("SELECT count(*) FROM pg_cursors").scalar_one()
            assert cursors >= 1  # the rows stay on the server, fetched `batch` at a time
            assert 1 + sum(1 for _ in records) == 5000
        finally:
            source.close()
    finally:
        drop_tables(postgres_url, name)


def test_source_missing_table_and_columns(db_url: str, table_name: str, make: Any) -> None:
    query(db_url, "SELECT 1")  # the database exists (a SQLite file is created by connecting)
    source = make(SqlSource, url=db_url, table="no_such_table_here")
    with pytest.raises(ValueError, match="table no_such_table_here does not exist in"):
        source.open()
    source.close()
    people_table(db_url, table_name)
    source = make(SqlSource, url=db_url, table=table_name, columns=["id", "nme"])
    with pytest.raises(ValueError, match=r"has no column\(s\) 'nme'"):
        source.open()
    source.close()


def test_source_bad_query_names_the_database(sqlite_url: str, make: Any) -> None:
    query(sqlite_url, "SELECT 1")  # the database exists
    source = make(SqlSource, url=sqlite_url, query="SELEC nonsense")
    with pytest.raises(RuntimeError, match="query failed on sqlite:///"):
        source.open()
    source.close()


def test_config_needs_table_or_query() -> None:
    with pytest.raises(ValueError, match="exactly one of"):
        SqlSource.Config(url="sqlite://")
    with pytest.raises(ValueError, match="exactly one of"):
        SqlSource.Config(url="sqlite://", table="a", query="select 1")
    with pytest.raises(ValueError, match="needs `key`"):
        SqlSink.Config(url="sqlite://", table="a", mode="upsert")
    assert SqlSink.Config.model_validate({"url": "sqlite://", "table": "a", "schema": "s"}).schema_ == "s"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://alice:s3cr3tpw@127.0.0.1:1/test",
        "mysql+pymysql://alice:s3cr3tpw@127.0.0.1:1/test",
    ],
)
@pytest.mark.parametrize("cls", [SqlSource, SqlSink, SqlBulkSink])
def test_refused_connection_is_clear_and_hides_the_password(url: str, cls: Any, make: Any) -> None:
    config: dict[str, Any] = {"url": url, "table": "t"}
    component = make(cls, **config)
    with pytest.raises(RuntimeError) as caught:
        component.open()
    component.close()
    message = str(caught.value)
    assert "cannot connect to" in message and "127.0.0.1:1" in message
    assert "s3cr3tpw" not in message and "***" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_sqlite_file_that_cannot_be_opened(tmp_path: Path, make: Any) -> None:
    source = make(SqlSource, url=f"sqlite:///{tmp_path}/missing/dir/x.db", table="t")
    with pytest.raises(FileNotFoundError, match="sql source: no SQLite database at .*x.db"):
        source.open()
        list(source.records())
    source.close()


def test_invalid_url(make: Any) -> None:
    source = make(SqlSource, url="nonsense://u:pw123@h/db", table="t")
    with pytest.raises(ValueError) as caught:
        source.open()
    assert "pw123" not in str(caught.value)


# ------------------------------------------------------------------------------------------ sink
def test_sink_inserts_in_batches(db_url: str, table_name: str, make: Any) -> None:
    people_table(db_url, table_name)
    records = [{"id": i, "name": f"p{i}", "born": "2001-02-03" if i == 0 else None} for i in range(1234)]
    run_sink(make(SqlSink, url=db_url, table=table_name, batch=100), records)
    assert query(db_url, f"SELECT count(*) FROM {table_name}") == [(1234,)]
    [(born,)] = query(db_url, f"SELECT born FROM {table_name} WHERE id = 0")
    assert str(born) == "2001-02-03"  # stored as a date (SQLite: as its ISO text)


def test_sink_write_batch(db_url: str, table_name: str, make: Any) -> None:
    people_table(db_url, table_name)
    sink = make(SqlSink, url=db_url, table=table_name, batch=40)
    sink.open()
    sink.write_batch([{"id": i, "name": "x"} for i in range(100)])
    with pytest.raises(RuntimeError, match="failed"):
        sink.write_batch([{"id": 1000, "name": "ok"}, {"id": 0, "name": "duplicate"}])
    sink.close()
    assert query(db_url, f"SELECT count(*) FROM {table_name}") == [(100,)]


def test_sink_upserts(db_url: str, table_name: str, make: Any) -> None:
    people_table(db_url, table_name)
    config = {"url": db_url, "table": table_name, "mode": "upsert", "key": ["id"], "batch": 3}
    run_sink(make(SqlSink, **config), [{"id": i, "name": f"a{i}", "score": i} for i in range(5)])
    run_sink(
        make(SqlSink, **config),
        [{"id": 3, "name": "b3", "score": 30}, {"id": 9, "name": "b9", "score": 90}, {"id": 4, "name": "b4"}],
    )
    rows = query(db_url, f"SELECT id, name, score FROM {table_name} ORDER BY id")
    assert rows == [(0, "a0", 0), (1, "a1", 1), (2, "a2", 2), (3, "b3", 30), (4, "b4", 4), (9, "b9", 90)]


def test_sink_upsert_with_only_key_columns(db_url: str, table_name: str, make: Any) -> None:
    execute(db_url, f"CREATE TABLE {table_name} (id INTEGER PRIMARY KEY)")
    config = {"url": db_url, "table": table_name, "mode": "upsert", "key": ["id"]}
    run_sink(make(SqlSink, **config), [{"id": 1}, {"id": 2}])
    run_sink(make(SqlSink, **config), [{"id": 2}, {"id": 3}])
    assert query(db_url, f"SELECT id FROM {table_name} ORDER BY id") == [(1,), (2,), (3,)]


def test_sink_wrong_column_fails_only_that_record(db_url: str, table_name: str, make: Any) -> None:
    people_table(db_url, table_name)
    sink = make(SqlSink, url=db_url, table=table_name)
    sink.open()
    sink.write({"id": 1, "name": "a"})
    with pytest.raises(ValueError, match=r"columns that table \w+ does not: 'email'"):
        sink.write({"id": 2, "name": "b", "email": "b@example.com"})
    with pytest.raises(ValueError, match="column 'born'"):
        sink.write({"id": 3, "name": "c", "born": "yesterday"})
    sink.write({"id": 4, "name": "d"})
    sink.close()
    assert query(db_url, f"SELECT id FROM {table_name} ORDER BY id") == [(1,), (4,)]


def test_sink_bad_row_in_a_batch_is_rejected_alone(
    db_url: str, table_name: str, make: Any, rejects: Any
) -> None:
    people_table(db_url, table_name)
    records = [{"id": i, "name": f"p{i}"} for i in range(10)]
    records[4] = {"id": 2, "name": "duplicate key"}
    records[7] = {"id": 70, "name": None}  # NOT NULL
    run_sink(make(SqlSink, rejects, url=db_url, table=table_name, batch=5), records)
    assert query(db_url, f"SELECT count(*) FROM {table_name}") == [(8,)]
    assert [record for record, _ in rejects.items] == [records[4], records[7]]
    assert all("failed" in message for message in rejects.messages)


def test_sink_missing_table_and_create(db_url: str, table_name: str, make: Any) -> None:
    sink = make(SqlSink, url=db_url, table=table_name)
    with pytest.raises(ValueError, match="does not exist"):
        sink.open()
    sink.close()
    records = [
        {
            "id": 1,
            "name": "a",
            "score": 1.5,
            "ok": True,
            "tags": ["x"],
            "when": datetime.datetime(2024, 1, 2, 3, 4),
        },
        {"id": 2, "name": "b", "score": None, "ok": False, "tags": [], "when": "2024-05-06T07:08:09"},
    ]
    config = {"url": db_url, "table": table_name, "create": True, "mode": "upsert", "key": ["id"]}
    run_sink(make(SqlSink, **config), records)
    run_sink(make(SqlSink, **config), [{"id": 2, "name": "b2"}])
    when = "`when`" if "mysql" in db_url else '"when"'
    rows = query(db_url, f"SELECT id, name, score, tags, {when} FROM {table_name} ORDER BY id")
    assert [row[:3] for row in rows] == [(1, "a", 1.5), (2, "b2", None)]
    assert str(rows[1][4]).startswith("2024-05-06 07:08:09")
    tags = rows[0][3]
    assert (json.loads(tags) if isinstance(tags, str) else tags) == ["x"]


def test_sink_creates_sqlite_parent_folders(tmp_path: Path, make: Any) -> None:
    url = f"sqlite:///{tmp_path}/new/dir/out.db"
    run_sink(make(SqlSink, url=url, table="t", create=True), [{"a": 1}])
    assert query(url, "SELECT a FROM t") == [(1,)]


# ------------------------------------------------------------------------------------------ bulk sink
def stage_file(tmp_path: Path, records: list[Any]) -> str:
    path = tmp_path / "stage.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def publish(bulk: Any, handoff: str) -> None:
    bulk.open()
    try:
        bulk.publish(handoff)
    finally:
        bulk.close()


def test_bulksink_loads_everything(db_url: str, table_name: str, make: Any, tmp_path: Path) -> None:
    people_table(db_url, table_name)
    handoff = stage_file(tmp_path, [{"id": i, "name": f"p{i}", "score": i} for i in range(2500)])
    publish(make(SqlBulkSink, url=db_url, table=table_name, batch=300), handoff)
    assert query(db_url, f"SELECT count(*), sum(score) FROM {table_name}") == [(2500, sum(range(2500)))]


def test_bulksink_failing_half_way_commits_nothing(
    db_url: str, table_name: str, make: Any, tmp_path: Path
) -> None:
    people_table(db_url, table_name)
    records = [{"id": i, "name": f"p{i}"} for i in range(2000)]
    records[1500] = {"id": 3, "name": "duplicate primary key"}
    handoff = stage_file(tmp_path, records)
    with pytest.raises(RuntimeError, match="nothing was committed"):
        publish(make(SqlBulkSink, url=db_url, table=table_name, batch=250), handoff)
    assert query(db_url, f"SELECT count(*) FROM {table_name}") == [(0,)]


def test_bulksink_malformed_line_commits_nothing(
    db_url: str, table_name: str, make: Any, tmp_path: Path
) -> None:
    people_table(db_url, table_name)
    path = tmp_path / "stage.jsonl"
    path.write_text("".join(json.dumps({"id": i, "name": "x"}) + "\n" for i in range(600)) + "{oops\n")
    with pytest.raises(ValueError, match=rf"{path}:601: malformed JSON.*nothing was committed"):
        publish(make(SqlBulkSink, url=db_url, table=table_name, batch=100), str(path))
    path.write_text('{"id": 1, "name": "a"}\n{"id": 2, "nam": "b"}\n')
    with pytest.raises(ValueError, match=rf"{path}:2: record has columns .* 'nam'"):
        publish(make(SqlBulkSink, url=db_url, table=table_name, batch=100), str(path))
    assert query(db_url, f"SELECT count(*) FROM {table_name}") == [(0,)]


def test_bulksink_replace_and_create(db_url: str, table_name: str, make: Any, tmp_path: Path) -> None:
    config = {"url": db_url, "table": table_name, "create": True, "replace": True}
    publish(make(SqlBulkSink, **config), stage_file(tmp_path, [{"k": "a", "n": 1}, {"k": "b", "n": 2}]))
    publish(make(SqlBulkSink, **config), stage_file(tmp_path, [{"k": "c", "n": 3}]))
    assert query(db_url, f"SELECT k, n FROM {table_name}") == [("c", 3)]
    publish(make(SqlBulkSink, **config), stage_file(tmp_path, []))
    assert query(db_url, f"SELECT count(*) FROM {table_name}") == [(0,)]


def test_bulksink_upsert(db_url: str, table_name: str, make: Any, tmp_path: Path) -> None:
    people_table(db_url, table_name)
    config = {"url": db_url, "table": table_name, "mode": "upsert", "key": ["id"]}
    publish(
        make(SqlBulkSink, **config), stage_file(tmp_path, [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
    )
    publish(
        make(SqlBulkSink, **config), stage_file(tmp_path, [{"id": 2, "name": "B"}, {"id": 3, "name": "c"}])
    )
    assert query(db_url, f"SELECT id, name FROM {table_name} ORDER BY id") == [(1, "a"), (2, "B"), (3, "c")]


def test_bulksink_missing_handoff(sqlite_url: str, make: Any, tmp_path: Path) -> None:
    bulk = make(SqlBulkSink, url=sqlite_url, table="t", create=True)
    bulk.open()
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        bulk.publish(str(tmp_path / "nope.jsonl"))
    bulk.close()


def test_sqlite_source_and_sink_on_the_same_file(sqlite_url: str, make: Any) -> None:
    """A SQLite read cursor left open would lock out the sink's commits ("database is locked")."""
    people_table(sqlite_url, "src")
    people_table(sqlite_url, "dst")
    rows = [{"id": i, "name": f"p{i}", "score": i} for i in range(1050)]
    execute(sqlite_url, "INSERT INTO src (id, name, score) VALUES (:id, :name, :score)", params=rows)
    execute(sqlite_url, "CREATE VIEW src_view AS SELECT id, name FROM src WHERE id < 10")
    source = make(SqlSource, url=sqlite_url, table="src", batch=100)
    sink = make(SqlSink, url=sqlite_url, table="dst", batch=100)
    source.open()
    sink.open()
    for record in source.records():
        sink.write(record)
    sink.close()
    source.close()
    assert query(sqlite_url, "SELECT count(*), sum(score) FROM dst") == [(1050, sum(range(1050)))]
    view = make(SqlSource, url=sqlite_url, table="src_view", columns=["name"])
    view.open()
    try:
        assert [r["name"] for r in view.records()] == [f"p{i}" for i in range(10)]
    finally:
        view.close()
