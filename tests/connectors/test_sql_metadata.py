from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from pipec.connectors.pii import PiiProcessor
from pipec.connectors.sql_metadata import SqlMetadataSource, component

from .conftest import drop_tables


@pytest.fixture
def catalog(db_url: str) -> Iterator[str]:
    """Two tables joined by a foreign key, and a view, under a unique prefix."""
    prefix = f"m{uuid.uuid4().hex[:8]}_"
    engine = sqlalchemy.create_engine(db_url)
    with engine.begin() as connection:
        run = connection.exec_driver_sql
        run(
            f"CREATE TABLE {prefix}customers (id INTEGER NOT NULL PRIMARY KEY, email VARCHAR(120) NOT NULL, "
            "full_name VARCHAR(80), birth_date DATE, status VARCHAR(10) DEFAULT 'new')"
        )
        run(
            f"CREATE TABLE {prefix}orders (id INTEGER NOT NULL PRIMARY KEY, customer_id INTEGER NOT NULL, "
            f"amount NUMERIC(10, 2), CONSTRAINT {prefix}fk FOREIGN KEY (customer_id) "
            f"REFERENCES {prefix}customers (id))"
        )
        run(f"CREATE INDEX {prefix}orders_customer ON {prefix}orders (customer_id)")
        run(f"CREATE VIEW {prefix}big AS SELECT id, amount FROM {prefix}orders WHERE amount > 100")
        run(f"INSERT INTO {prefix}customers (id, email) VALUES (1, 'a@b.co'), (2, 'c@d.co')")
    engine.dispose()
    yield prefix
    engine = sqlalchemy.create_engine(db_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP VIEW IF EXISTS {prefix}big")
    engine.dispose()
    drop_tables(db_url, f"{prefix}orders", f"{prefix}customers")


def read(make: Any, rejects: Any = None, **config: Any) -> list[dict[str, Any]]:
    source = make(SqlMetadataSource, rejects, **config)
    source.open()
    try:
        return list(source.records())
    finally:
        source.close()


def test_component_roles() -> None:
    assert component.roles == ("source",)


def test_reads_tables_views_columns_and_keys(db_url: str, catalog: str, make: Any) -> None:
    records = read(make, url=db_url, include_tables=[f"{catalog}*"], row_counts=True)
    by_name = {r["table"]: r for r in records}
    assert sorted(by_name) == [f"{catalog}big", f"{catalog}customers", f"{catalog}orders"]

    customers = by_name[f"{catalog}customers"]
    assert customers["kind"] == "table"
    assert customers["primary_key"] == ["id"]
    assert customers["row_count"] == 2
    assert (
        customers["fqn"]
        == f"{customers['service']}.{customers['database']}.{customers['schema']}.{catalog}customers"
    )
    columns = {c["name"]: c for c in customers["columns"]}
    assert list(columns) == ["id", "email", "full_name", "birth_date", "status"]
    assert columns["id"]["primary_key"] is True and columns["email"]["primary_key"] is False
    assert columns["email"]["nullable"] is False and columns["full_name"]["nullable"] is True
    assert "VARCHAR" in columns["email"]["type"].upper() and "120" in columns["email"]["type"]
    assert "new" in columns["status"]["default"]
    assert columns["birth_date"]["type"].upper().startswith("DATE")

    orders = by_name[f"{catalog}orders"]
    [fk] = orders["foreign_keys"]
    assert fk["columns"] == ["customer_id"]
    assert fk["referred_table"] == f"{catalog}customers" and fk["referred_columns"] == ["id"]
    assert any(index["columns"] == ["customer_id"] for index in orders["indexes"])

    view = by_name[f"{catalog}big"]
    assert view["kind"] == "view"
    assert [c["name"] for c in view["columns"]] == ["id", "amount"]
    assert "amount" in view["view_definition"].lower()


def test_filters(db_url: str, catalog: str, make: Any) -> None:
    records = read(
        make, url=db_url, include_tables=[f"{catalog}*"], exclude_tables=["*ORDERS"], include_views=False
    )
    assert [r["table"] for r in records] == [f"{catalog}customers"]
    assert read(make, url=db_url, include_tables=[f"{catalog}*"], include_schemas=["no_such_schema"]) == []


def test_pii_tags_catalog_columns(db_url: str, catalog: str, make: Any) -> None:
    [customers] = read(make, url=db_url, include_tables=[f"{catalog}customers"])
    pii = make(PiiProcessor)
    pii.open()
    tagged = pii.process(customers)
    assert tagged["_pii"] == {"email": ["email"], "full_name": ["person_name"], "birth_date": ["birth_date"]}
    assert [c["pii"] for c in tagged["columns"]] == [[], ["email"], ["person_name"], ["birth_date"], []]


def test_a_table_that_cannot_be_described_is_rejected(
    sqlite_url: str, make: Any, rejects: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = sqlalchemy.create_engine(sqlite_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE a (x INTEGER)")
        connection.exec_driver_sql("CREATE TABLE b (y INTEGER)")
    engine.dispose()
    original = sqlalchemy.engine.reflection.Inspector.get_columns

    def failing(self: Any, name: str, schema: Any = None, **kw: Any) -> Any:
        if name == "a":
            raise sqlalchemy.exc.OperationalError("PRAGMA", {}, Exception("permission denied for table a"))
        return original(self, name, schema=schema, **kw)

    monkeypatch.setattr(sqlalchemy.engine.reflection.Inspector, "get_columns", failing)
    records = read(make, rejects, url=sqlite_url)
    assert [r["table"] for r in records] == ["b"]
    assert rejects.messages == ["cannot describe main.a: permission denied for table a"]


def test_sqlite_attached_schemas(tmp_path: Path, make: Any) -> None:
    main, sales = tmp_path / "main.db", tmp_path / "sales.db"
    for path, table in ((main, "users"), (sales, "invoices")):
        with sqlite3.connect(path) as connection:
            connection.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY)")
    records = read(make, url=f"sqlite:///{main}", attach={"sales": str(sales)}, service="shop")
    assert [(r["schema"], r["table"], r["fqn"]) for r in records] == [
        ("main", "users", "shop.main.main.users"),
        ("sales", "invoices", "shop.main.sales.invoices"),
    ]
    source = make(SqlMetadataSource, url=f"sqlite:///{main}", attach={"x": str(tmp_path / "nope.db")})
    with pytest.raises(FileNotFoundError, match="nope.db"):
        source.open()
    source.close()


@pytest.mark.parametrize(
    "url",
    ["postgresql+psycopg://bob:hunter22@127.0.0.1:1/test", "mysql+pymysql://bob:hunter22@127.0.0.1:1/x"],
)
def test_refused_connection(url: str, make: Any) -> None:
    source = make(SqlMetadataSource, url=url)
    with pytest.raises(RuntimeError, match=r"cannot connect to .*bob:\*\*\*@127.0.0.1:1") as caught:
        source.open()
    assert "hunter22" not in str(caught.value)
