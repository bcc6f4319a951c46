from __future__ import annotations

from typing import Any

import pytest

from pipec.connectors.sql_usage import SqlUsageProcessor, component


def usage(make: Any, sql: str, **config: Any) -> tuple[str, list[str], list[str]]:
    processor = make(SqlUsageProcessor, **config)
    processor.open()
    out = processor.process({"query": sql, "user": "ann"})
    assert out["user"] == "ann"
    return out["statement_type"], out["tables"], out["written_tables"]


def test_component_roles() -> None:
    assert component.roles == ("processor",)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "SELECT * FROM orders o JOIN sales.customers c ON o.cid = c.id",
            ("SELECT", ["orders", "sales.customers"], []),
        ),
        ("WITH recent AS (SELECT * FROM orders) SELECT * FROM recent", ("SELECT", ["orders"], [])),
        ("INSERT INTO archive.orders SELECT * FROM orders", ("INSERT", ["orders"], ["archive.orders"])),
        ("INSERT INTO t (a, b) VALUES (1, 2)", ("INSERT", [], ["t"])),
        ("UPDATE t SET a = 1 WHERE id IN (SELECT id FROM u)", ("UPDATE", ["u"], ["t"])),
        ("DELETE FROM t WHERE a = 1", ("DELETE", [], ["t"])),
        ("CREATE TABLE s.a AS SELECT * FROM b", ("CREATE TABLE", ["b"], ["s.a"])),
        ("CREATE VIEW v AS SELECT * FROM b UNION SELECT * FROM c", ("CREATE VIEW", ["b", "c"], ["v"])),
        ("DROP TABLE a", ("DROP TABLE", [], ["a"])),
        ("TRUNCATE TABLE a", ("TRUNCATE", [], ["a"])),
        ("SELECT 1; INSERT INTO t SELECT * FROM t", ("SELECT;INSERT", ["t"], ["t"])),
        ("SELECT * FROM generate_series(1, 3)", ("SELECT", [], [])),
        ("SELECT * FROM db.sch.tab", ("SELECT", ["db.sch.tab"], [])),
    ],
)
def test_tables_read_and_written(make: Any, sql: str, expected: tuple[str, list[str], list[str]]) -> None:
    assert usage(make, sql, dialect="postgres") == expected


def test_defaults_qualify_names_and_identifiers_normalize(make: Any) -> None:
    result = usage(
        make, 'SELECT * FROM Orders JOIN "Sales".x ON 1 = 1', default_database="shop", default_schema="public"
    )
    assert result == ("SELECT", ["shop.public.orders", "shop.Sales.x"], [])
    assert usage(make, "SELECT * FROM Orders", normalize=False)[1] == ["Orders"]


def test_mysql_dialect(make: Any) -> None:
    assert usage(make, "SELECT * FROM `db`.`t` LIMIT 1", dialect="mysql") == ("SELECT", ["db.t"], [])


@pytest.mark.parametrize(
    "sql", ["SELECT * FROM", "SELEC nonsense", "SELECT * FROM t WHERE (a", "   ", "select 'x"]
)
def test_unparseable_sql_raises_value_error(make: Any, sql: str) -> None:
    processor = make(SqlUsageProcessor, dialect="postgres")
    processor.open()
    with pytest.raises(ValueError):
        processor.process({"query": sql})


def test_error_message_is_readable(make: Any) -> None:
    processor = make(SqlUsageProcessor)
    processor.open()
    with pytest.raises(
        ValueError, match="Expected table name but got the end of the statement: SELECT \\* FROM"
    ):
        processor.process({"query": "SELECT * FROM"})
    with pytest.raises(TypeError):
        processor.process("SELECT 1")


def test_unknown_dialect_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="unknown SQL dialect 'postgress'"):
        SqlUsageProcessor.Config(dialect="postgress")
