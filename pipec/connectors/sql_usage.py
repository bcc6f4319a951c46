"""`sql_usage`: which tables each SQL statement reads and writes, parsed with sqlglot (the processor of
OpenMetadata's usage workflow, after `query_log`)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipec.runtime import ComponentType, Processor


class SqlUsageProcessor(Processor):
    """Parses each record's SQL and adds `tables` (tables read), `written_tables` and `statement_type`.

    Table names are qualified as far as the statement (and `default_database` / `default_schema`) allow:
    `database.schema.table`. Names of CTEs and table functions are not tables. A statement that modifies a
    table (INSERT, UPDATE, DELETE, MERGE, CREATE, DROP, ALTER, TRUNCATE, COPY FROM) lists it under
    `written_tables`; it is also under `tables` only when the statement reads it elsewhere too.
    Several statements in one record are all analysed (their types joined with ';'). SQL that does
    not parse raises ValueError, which fails that record only.
    """

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        dialect: str | None = Field(
            None,
            description="SQL dialect of the statements, as sqlglot names it: postgres, mysql, sqlite, tsql, "
            "snowflake, bigquery, ... (default: generic SQL).",
        )
        query_field: str = Field("query", description="Field holding the SQL text.")
        default_database: str | None = Field(None, description="Database (catalog) for names that give none.")
        default_schema: str | None = Field(None, description="Schema for unqualified table names.")
        normalize: bool = Field(
            True, description="Normalize unquoted identifiers the way the dialect does (e.g. lowercase)."
        )

        @field_validator("dialect")
        @classmethod
        def _known_dialect(cls, dialect: str | None) -> str | None:
            if dialect is None:
                return None
            from sqlglot.dialects.dialect import Dialect

            try:
                Dialect.get_or_raise(dialect)
            except ValueError as exc:
                raise ValueError(f"unknown SQL dialect {dialect!r}: {exc}") from None
            return dialect

    config: Config

    def open(self) -> None:
        import sqlglot
        from sqlglot import exp
        from sqlglot.errors import ErrorLevel, ParseError
        from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

        self._sqlglot = sqlglot
        self._exp = exp
        self._error_level = ErrorLevel.RAISE
        self._parse_error = ParseError
        self._normalize = normalize_identifiers
        names = [
            *("Query", "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "TruncateTable"),
            *("Copy", "Command", "Set", "Use", "Describe", "Show", "Transaction", "Commit", "Rollback"),
            *("Grant", "Revoke", "Pragma", "Cache", "Uncache", "LoadData", "Analyze", "Comment", "Kill"),
            "Refresh",
        ]
        self._statements = tuple(getattr(exp, name) for name in names if hasattr(exp, name))
        writes = ["Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "TruncateTable"]
        self._writes = tuple(getattr(exp, name) for name in writes if hasattr(exp, name))

    def process(self, record: Any) -> Any:
        if not isinstance(record, dict):
            raise TypeError(f"sql_usage: expected a dict record, got {type(record).__name__}")
        sql = record.get(self.config.query_field)
        if not isinstance(sql, str) or not sql.strip():
            raise ValueError(f"sql_usage: no SQL in field {self.config.query_field!r}")
        read: list[str] = []
        written: list[str] = []
        types: list[str] = []
        for statement in self._parse(sql):
            kind, reads, writes = self.analyse(statement)
            types.append(kind)
            read += [name for name in reads if name not in read]
            written += [name for name in writes if name not in written]
        return {**record, "tables": read, "written_tables": written, "statement_type": ";".join(types)}

    def _parse(self, sql: str) -> list[Any]:
        try:
            parsed = self._sqlglot.parse(sql, read=self.config.dialect, error_level=self._error_level)
        except self._parse_error as exc:
            first = exc.errors[0] if exc.errors else {}
            where = f" at line {first.get('line')}, column {first.get('col')}" if first.get("line") else ""
            description = _TOKEN.sub(_token_text, str(first.get("description") or exc).split("\n")[0])
            description = _CLASS.sub(lambda m: m.group(1).lower(), description)  # not sqlglot's names
            raise ValueError(f"cannot parse SQL{where}: {description}: {_preview(sql)}") from None
        except Exception as exc:  # sqlglot's tokenizer raises its own errors too
            raise ValueError(f"cannot parse SQL: {exc}: {_preview(sql)}") from None
        statements = [statement for statement in parsed if statement is not None]
        if not statements:
            raise ValueError(f"no SQL statement: {_preview(sql)}")
        for statement in statements:
            if not isinstance(statement, self._statements):
                raise ValueError(
                    f"not a SQL statement (it reads as {type(statement).__name__}): {_preview(sql)}"
                )
        return statements

    def analyse(self, statement: Any) -> tuple[str, list[str], list[str]]:
        """(statement type, tables read, tables written) of one parsed statement."""
        exp = self._exp
        if self.config.normalize:
            statement = self._normalize(statement, dialect=self.config.dialect)
        ctes = {cte.alias_or_name for cte in statement.find_all(exp.CTE)}
        targets = self._targets(statement)
        target_ids = {id(table) for table in targets}
        reads: list[str] = []
        for table in statement.find_all(exp.Table):
            if id(table) in target_ids or not isinstance(table.this, exp.Identifier):
                continue  # the written table itself, or a table function like generate_series(...)
            if not table.db and table.name in ctes:
                continue
            name = self._qualified(table)
            if name not in reads:
                reads.append(name)
        writes: list[str] = []
        for table in targets:
            name = self._qualified(table)
            if name not in writes:
                writes.append(name)
        return self._kind(statement), reads, writes

    def _targets(self, statement: Any) -> list[Any]:
        exp = self._exp
        targets: list[Any] = []
        if isinstance(statement, self._writes):
            if isinstance(statement, exp.TruncateTable):
                candidates = list(statement.expressions)
            elif isinstance(statement, exp.Drop) and statement.args.get("tables"):
                candidates = list(statement.args["tables"])  # DROP TABLE a, b (newer sqlglot)
            else:
                candidates = [statement.this]
            for candidate in candidates:
                if isinstance(candidate, exp.Schema):  # INSERT INTO t (a, b) / CREATE TABLE t (...)
                    candidate = candidate.this
                if isinstance(candidate, exp.Table) and isinstance(candidate.this, exp.Identifier):
                    targets.append(candidate)
        elif (
            isinstance(statement, exp.Copy)
            and statement.args.get("kind")
            and isinstance(statement.this, exp.Table)
        ):  # COPY t FROM ...
            targets.append(statement.this)
        return targets

    def _qualified(self, table: Any) -> str:
        schema = table.db or self.config.default_schema
        database = table.catalog or (self.config.default_database if schema else None)
        return ".".join(part for part in (database, schema, table.name) if part)

    def _kind(self, statement: Any) -> str:
        exp = self._exp
        if isinstance(statement, exp.Query):
            return "SELECT"
        if isinstance(statement, (exp.Create, exp.Drop)):
            kind = statement.args.get("kind")
            verb = "CREATE" if isinstance(statement, exp.Create) else "DROP"
            return f"{verb} {kind}".strip() if kind else verb
        if isinstance(statement, exp.TruncateTable):
            return "TRUNCATE"
        if isinstance(statement, exp.Command):
            return str(statement.this).upper()
        return str(statement.key).upper()


_CLASS = re.compile(r"<class '[\w.]*?\.(\w+)'>")  # `<class 'sqlglot.expressions.core.Mul'>` -> `mul`
_TOKEN = re.compile(r"<Token token_type: TokenType\.(\w+), text: (.*?), line: .*?>")


def _token_text(match: re.Match[str]) -> str:
    return "the end of the statement" if match.group(1) == "SENTINEL" else repr(match.group(2))


def _preview(sql: str) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= 120 else flat[:117] + "..."


component = ComponentType(
    name="sql_usage",
    implementations={"processor": SqlUsageProcessor},
    summary="Tables each SQL statement reads and writes, and its type, parsed with sqlglot",
)
