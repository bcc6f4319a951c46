"""`sql_metadata`: a database's catalog as records, one per table or view (OpenMetadata's "database
service" ingestion), read through SQLAlchemy's inspector so that it works on any dialect."""

from __future__ import annotations

import contextlib
import fnmatch
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from pipec.connectors._lazy import lazy_module, release_connection

if TYPE_CHECKING:
    from pipec.connectors import _sql
else:  # SQLAlchemy loads when a node first connects, not when the registry reads this module
    _sql = lazy_module("pipec.connectors._sql")
from pipec.runtime import ComponentType, Source

SYSTEM_SCHEMAS = ["information_schema", "pg_catalog", "pg_toast", "mysql", "performance_schema", "sys"]


def _matches(name: str, patterns: list[str]) -> bool:
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in patterns)


def _selected(name: str, include: list[str], exclude: list[str]) -> bool:
    return (not include or _matches(name, include)) and not _matches(name, exclude)


class SqlMetadataSource(Source):
    """Reads a database's catalog: one record per table (and view), with its columns and keys.

    Each record holds `service`, `database`, `dialect`, `schema`, `table`, `kind` (table or view),
    `fqn` (service.database.schema.table), `comment`, `columns` (each: name, type, nullable, default,
    primary_key, comment, position), `primary_key`, `foreign_keys`, `indexes`, and `view_definition`
    for views, plus `row_count` when `row_counts` is on. Schema and table filters are glob patterns
    (`sales_*`), matched case-insensitively. A table the inspector cannot describe is rejected with
    its name and the rest of the catalog is still read.
    """

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        url: str = Field(
            description="SQLAlchemy database URL, e.g. 'sqlite:///app.db' or 'postgresql+psycopg://user@host/db'."
        )
        service: str | None = Field(
            None, description="Name of the database service in the catalog; default: '<dialect>_<database>'."
        )
        include_schemas: list[str] = Field(
            default_factory=list, description="Glob patterns of schemas to read; default: every schema."
        )
        exclude_schemas: list[str] = Field(
            default_factory=lambda: list(SYSTEM_SCHEMAS),
            description="Glob patterns of schemas to skip; default: the system schemas.",
        )
        include_tables: list[str] = Field(
            default_factory=list, description="Glob patterns of tables/views to read; default: all."
        )
        exclude_tables: list[str] = Field(
            default_factory=list, description="Glob patterns of tables/views to skip."
        )
        include_views: bool = Field(True, description="Also emit views (kind = 'view').")
        row_counts: bool = Field(False, description="Count each table's rows (a COUNT(*) per table).")
        attach: dict[str, str] = Field(
            default_factory=dict,
            description="SQLite only: extra database files to attach as schemas, schema name -> file path.",
        )
        connect_args: dict[str, Any] = Field(
            default_factory=dict, description="Extra keyword arguments for the database driver's connect()."
        )

    config: Config

    def open(self) -> None:
        import sqlalchemy

        config = self.config
        self._engine, self._connection = _sql.connect(
            config.url, "sql_metadata source", config.connect_args, must_exist=True
        )
        url = self._engine.url
        dialect = url.get_backend_name()
        if config.attach:
            if dialect != "sqlite":
                raise ValueError("sql_metadata source: `attach` works with SQLite URLs only")
            for schema, path in config.attach.items():
                if not os.path.exists(path):
                    raise FileNotFoundError(f"sql_metadata source: database file to attach not found: {path}")
                self._connection.exec_driver_sql(f"ATTACH DATABASE ? AS {_quote(schema)}", (path,))
        database = str(url.database or "")
        if dialect == "sqlite":
            database = os.path.splitext(os.path.basename(database))[0] or "memory"
        self._database = database
        self._dialect = dialect
        self._service = config.service or f"{dialect}_{database}"
        self._inspector = sqlalchemy.inspect(self._connection)

    def records(self) -> Iterator[dict[str, Any]]:
        config = self.config
        inspector = self._inspector
        try:
            schemas = [
                s
                for s in inspector.get_schema_names()
                if _selected(s, config.include_schemas, config.exclude_schemas)
            ]
        except Exception as exc:
            shown = _sql.redact_url(config.url)
            raise _sql.DatabaseError(
                f"sql_metadata source: cannot list schemas of {shown}: {_sql.reason(exc)}"
            ) from None
        for schema in sorted(schemas):
            yield from self._schema(schema)

    def _schema(self, schema: str) -> Iterator[dict[str, Any]]:
        config = self.config
        inspector = self._inspector
        try:
            names = [(name, "table") for name in inspector.get_table_names(schema=schema)]
            if config.include_views:
                names += [(name, "view") for name in inspector.get_view_names(schema=schema)]
                with contextlib.suppress(NotImplementedError):  # only some dialects have them
                    names += [(name, "view") for name in inspector.get_materialized_view_names(schema=schema)]
        except Exception as exc:
            self.context.reject(
                {"schema": schema}, _sql.DatabaseError(f"schema {schema}: {_sql.reason(exc)}")
            )
            return
        for name, kind in sorted(set(names)):
            if not _selected(name, config.include_tables, config.exclude_tables):
                continue
            try:
                record = self._describe(schema, name, kind)
            except Exception as exc:
                self._connection.rollback()  # PostgreSQL refuses further queries in a failed transaction
                self.context.reject(
                    {"schema": schema, "table": name},
                    _sql.DatabaseError(f"cannot describe {schema}.{name}: {_sql.reason(exc)}"),
                )
                continue
            yield record

    def _describe(self, schema: str, name: str, kind: str) -> dict[str, Any]:
        inspector = self._inspector
        primary = inspector.get_pk_constraint(name, schema=schema) or {}
        primary_columns = list(primary.get("constrained_columns") or [])
        columns = []
        for position, column in enumerate(inspector.get_columns(name, schema=schema), 1):
            default = column.get("default")
            columns.append(
                {
                    "name": column["name"],
                    "type": self._type_name(column["type"]),
                    # SQLite's inspector calls `id INTEGER PRIMARY KEY` nullable (it is the rowid);
                    # a primary key column holds no NULLs on any database a catalog describes.
                    "nullable": bool(column.get("nullable", True)) and column["name"] not in primary_columns,
                    "default": None if default is None else str(default),
                    "primary_key": column["name"] in primary_columns,
                    "comment": column.get("comment"),
                    "position": position,
                }
            )
        foreign_keys = [
            {
                "name": fk.get("name"),
                "columns": list(fk.get("constrained_columns") or []),
                "referred_schema": fk.get("referred_schema") or schema,
                "referred_table": fk.get("referred_table"),
                "referred_columns": list(fk.get("referred_columns") or []),
            }
            for fk in inspector.get_foreign_keys(name, schema=schema)
        ]
        indexes = [
            {
                "name": index.get("name"),
                "columns": [c for c in index.get("column_names") or [] if c is not None],
                "unique": bool(index.get("unique")),
            }
            for index in inspector.get_indexes(name, schema=schema)
        ]
        try:
            comment = inspector.get_table_comment(name, schema=schema).get("text")
        except NotImplementedError:
            comment = None
        record: dict[str, Any] = {
            "service": self._service,
            "database": self._database,
            "dialect": self._dialect,
            "schema": schema,
            "table": name,
            "kind": kind,
            "fqn": f"{self._service}.{self._database}.{schema}.{name}",
            "comment": comment,
            "columns": columns,
            "primary_key": primary_columns,
            "foreign_keys": foreign_keys,
            "indexes": sorted(indexes, key=lambda i: str(i["name"])),
        }
        if kind == "view":
            try:
                definition = inspector.get_view_definition(name, schema=schema)
            except Exception:
                definition = None
            record["view_definition"] = None if definition is None else str(definition)
        if self.config.row_counts:
            record["row_count"] = self._count(schema, name)
        return record

    def _type_name(self, kind: Any) -> str:
        try:
            return str(kind.compile(dialect=self._engine.dialect))
        except Exception:
            return "NULL" if type(kind).__name__ == "NullType" else str(kind)

    def _count(self, schema: str, name: str) -> int:
        import sqlalchemy

        table = sqlalchemy.table(name, schema=schema)
        statement = sqlalchemy.select(sqlalchemy.func.count()).select_from(table)
        return int(self._connection.execute(statement).scalar_one())

    def close(self) -> None:
        release_connection(self)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


component = ComponentType(
    name="sql_metadata",
    implementations={"source": SqlMetadataSource},
    summary="A database's catalog (schemas, tables, views, columns, keys, indexes) as one record per table",
)
