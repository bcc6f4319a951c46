from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from pipec.connectors.query_log import QueryLogSource, component, split_statements


def read(make: Any, rejects: Any = None, **config: Any) -> list[dict[str, Any]]:
    source = make(QueryLogSource, rejects, **config)
    source.open()
    try:
        return list(source.records())
    finally:
        source.close()


def test_component_roles() -> None:
    assert component.roles == ("source",)


def test_jsonl_log(tmp_path: Path, make: Any, rejects: Any) -> None:
    path = tmp_path / "log.jsonl"
    lines = [
        json.dumps({"query": "SELECT * FROM a", "user": "ann", "start_time": "2024-01-01T10:00:00", "ms": 5}),
        "{broken",
        json.dumps({"query": "  ", "user": "bob"}),
        json.dumps({"user": "bob"}),
        "",
        json.dumps({"query": "SELECT 1", "user": "cy"}),
    ]
    path.write_text("\n".join(lines) + "\n")
    records = read(make, rejects, path=str(path))
    assert records == [
        {"query": "SELECT * FROM a", "user": "ann", "start_time": "2024-01-01T10:00:00", "ms": 5},
        {"query": "SELECT 1", "user": "cy", "start_time": None},
    ]
    assert [m.split(": ", 1)[0] for m in rejects.messages] == [f"{path}:2", f"{path}:3", f"{path}:4"]
    assert "no SQL statement in field 'query'" in rejects.messages[1]


def test_csv_log_with_other_field_names(tmp_path: Path, make: Any, rejects: Any) -> None:
    path = tmp_path / "log.csv"
    path.write_text(
        'sql,who,at\n"SELECT a, b FROM t",ann,2024-01-01\nSELECT 2,bob\n"UPDATE t SET a = 1",cy,2024-01-02\n'
    )
    records = read(make, rejects, path=str(path), query_field="sql", user_field="who", time_field="at")
    assert records == [
        {"query": "SELECT a, b FROM t", "user": "ann", "start_time": "2024-01-01"},
        {"query": "UPDATE t SET a = 1", "user": "cy", "start_time": "2024-01-02"},
    ]
    assert rejects.messages == [f"{path}:3: expected 3 fields, got 2"]
    source = make(QueryLogSource, path=str(path))
    with pytest.raises(ValueError, match="no 'query' column"):
        source.open()
        list(source.records())
    source.close()


def test_sql_file_split_on_semicolons(tmp_path: Path, make: Any) -> None:
    path = tmp_path / "queries.sql"
    path.write_text("-- nightly\nSELECT * FROM a;\n\nINSERT INTO b\n  SELECT ';' FROM c;\n/* done */\n")
    assert read(make, path=str(path)) == [
        {"query": "SELECT * FROM a", "user": None, "start_time": None, "line": 2},
        {"query": "INSERT INTO b\n  SELECT ';' FROM c", "user": None, "start_time": None, "line": 4},
    ]


def test_log_file_one_statement_per_line(tmp_path: Path, make: Any) -> None:
    path = tmp_path / "queries.log"
    path.write_text("SELECT 1\n\nSELECT * FROM t\n-- comment\n")
    assert [(r["line"], r["query"]) for r in read(make, path=str(path))] == [
        (1, "SELECT 1"),
        (3, "SELECT * FROM t"),
    ]


def test_split_statements_handles_quotes_and_comments() -> None:
    text = "select 'a;b' as \"x;y\"; -- c;\nselect 2 /* ; */; select 'it''s'"
    assert list(split_statements(text)) == [
        (1, "select 'a;b' as \"x;y\""),
        (2, "select 2 /* ; */"),
        (2, "select 'it''s'"),
    ]


def test_split_statements_keeps_dollar_quoted_bodies_whole() -> None:
    function = "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; SELECT 2; $$ LANGUAGE sql"
    assert list(split_statements(function + ";")) == [(1, function)]
    tagged = (
        "CREATE FUNCTION g() RETURNS text AS $body$\nBEGIN\n  RETURN 'a;' || $$x;$$;\nEND;\n$body$ "
        "LANGUAGE plpgsql"
    )
    text = f"SELECT $1, a$b FROM t WHERE c = $2;\n{tagged};\nSELECT $q$;$q$, $Q$ x $Q$"
    assert list(split_statements(text)) == [
        (1, "SELECT $1, a$b FROM t WHERE c = $2"),  # parameters and identifiers with $ are not quotes
        (2, tagged),  # $$ inside $body$ ... $body$ does not end it
        (7, "SELECT $q$;$q$, $Q$ x $Q$"),
    ]
    assert list(split_statements("SELECT $$ never closed; SELECT 2")) == [(1, "SELECT $$ never closed; SELECT 2")]


def test_sql_file_with_a_function_body(tmp_path: Path, make: Any) -> None:
    path = tmp_path / "ddl.sql"
    path.write_text("CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; SELECT 2; $$ LANGUAGE sql;\nSELECT f();\n")
    assert [(r["line"], r["query"]) for r in read(make, path=str(path))] == [
        (1, "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; SELECT 2; $$ LANGUAGE sql"),
        (2, "SELECT f()"),
    ]


def test_missing_file(tmp_path: Path, make: Any) -> None:
    source = make(QueryLogSource, path=str(tmp_path / "none.jsonl"))
    with pytest.raises(FileNotFoundError, match="none.jsonl"):
        source.open()
    source.close()


def test_config_needs_one_origin() -> None:
    with pytest.raises(ValueError, match="either `path`"):
        QueryLogSource.Config()
    with pytest.raises(ValueError, match="exactly one of `table` or `sql`"):
        QueryLogSource.Config(url="sqlite://")


def test_table_log(db_url: str, table_name: str, make: Any, rejects: Any) -> None:
    engine = sqlalchemy.create_engine(db_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE TABLE {table_name} (id INTEGER, statement TEXT, usr VARCHAR(20))")
        connection.exec_driver_sql(
            f"INSERT INTO {table_name} VALUES (1, 'SELECT 1', 'ann'), (2, NULL, 'bob'), (3, 'SELECT 3', 'cy')"
        )
    engine.dispose()
    records = read(
        make,
        rejects,
        url=db_url,
        sql=f"SELECT id, statement, usr FROM {table_name} ORDER BY id",
        query_field="statement",
        user_field="usr",
    )
    assert records == [
        {"id": 1, "query": "SELECT 1", "user": "ann", "start_time": None},
        {"id": 3, "query": "SELECT 3", "user": "cy", "start_time": None},
    ]
    assert rejects.messages == ["table row 2: no SQL statement in field 'statement'"]
    assert len(read(make, url=db_url, table=table_name, query_field="statement")) == 2


def test_truncated_gzip_sql_file_names_the_file(tmp_path: Path, make: Any) -> None:
    import gzip

    whole = gzip.compress(b"".join(b"SELECT %d FROM t;\n" % i for i in range(5000)))
    path = tmp_path / "q.sql.gz"
    path.write_bytes(whole[:-20])
    with pytest.raises(EOFError, match=rf"^{path}:\d+: the gzip file is truncated"):
        read(make, path=str(path))
