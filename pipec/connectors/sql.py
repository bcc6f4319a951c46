"""`sql`: any database SQLAlchemy 2 can reach (SQLite embedded, PostgreSQL, MariaDB/MySQL, ...).

A source (a table or a query, streamed through a server-side cursor), a sink (insert or upsert, one
transaction per batch) and a bulk sink (loads a stage's JSON Lines hand-off inside one transaction: all
or nothing, with the row count checked). Passwords never appear in messages.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipec.connectors._files import open_handoff
from pipec.connectors._lazy import lazy_module, release_connection

if TYPE_CHECKING:
    from pipec.connectors import _sql
else:  # SQLAlchemy loads when a node first connects, not when the registry reads this module
    _sql = lazy_module("pipec.connectors._sql")
from pipec.runtime import BulkSink, ComponentType, Sink, Source

_URL_HELP = (
    "SQLAlchemy database URL, e.g. 'sqlite:///data/app.db' (relative to the working directory), "
    "'postgresql+psycopg://user@host/db', 'mysql+pymysql://user@host/db'. Use secret(...) for passwords."
)


class SqlSource(Source):
    """Reads rows of a table, or of a query, as dicts keyed by column name.

    Rows are streamed (`stream_results` with a server-side cursor where the driver has one, fetched
    `batch` at a time), never loaded whole; a SQLite table is read in pages by rowid, so that the same
    file can be written while it is read. A missing table, a failing query or a refused connection
    fails in `open()`, before any record moves.
    """

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid", populate_by_name=True)

        url: str = Field(description=_URL_HELP)
        table: str | None = Field(None, description="Table (or view) to read; give either table or query.")
        schema_: str | None = Field(
            None, alias="schema", description="Schema (database on MySQL) of the table; default: the URL's."
        )
        columns: list[str] | None = Field(None, description="Columns of `table` to read; default: all.")
        query: str | None = Field(
            None, description="SQL query to read instead of a table; `:name` placeholders take `params`."
        )
        params: dict[str, Any] = Field(
            default_factory=dict, description="Values for the query's :name placeholders."
        )
        batch: int = Field(1000, ge=1, description="Rows fetched from the server at a time.")
        connect_args: dict[str, Any] = Field(
            default_factory=dict, description="Extra keyword arguments for the database driver's connect()."
        )

        @model_validator(mode="after")
        def _table_or_query(self) -> SqlSource.Config:
            if (self.table is None) == (self.query is None):
                raise ValueError("give exactly one of `table` or `query`")
            if self.columns is not None and self.table is None:
                raise ValueError("`columns` applies to `table` only")
            return self

    config: Config

    def open(self) -> None:
        import sqlalchemy

        config = self.config
        self._engine, self._connection = _sql.connect(
            config.url, "sql source", config.connect_args, must_exist=True
        )
        shown = _sql.redact_url(config.url)
        # MariaDB/MySQL TIME values are durations, read as timedeltas: see _sql.duration.
        self._durations = self._connection.dialect.name in ("mysql", "mariadb")
        if config.table is not None:
            table = _sql.reflect_table(self._connection, config.table, config.schema_)
            if table is None:
                name = _sql.qualified(config.table, config.schema_)
                raise ValueError(f"sql source: table {name} does not exist in {shown}")
            if config.columns:
                unknown = [c for c in config.columns if c not in table.columns]
                if unknown:
                    raise ValueError(
                        f"sql source: table {table.name} has no column(s) {', '.join(map(repr, unknown))} "
                        f"(its columns: {', '.join(c.name for c in table.columns)})"
                    )
                columns: list[Any] = [table.columns[c] for c in config.columns]
            else:
                columns = list(table.columns)
            if self._durations:
                columns = _sql.raw_durations(columns)
            statement: Any = sqlalchemy.select(*columns)
            self._params: dict[str, Any] = {}
            self._pages = self._rowid_pages(statement)
        else:
            statement = sqlalchemy.text(config.query or "")
            self._params = dict(config.params)
            self._pages = None
        self._connection.rollback()  # end the reflection's implicit transaction; reading starts afresh
        if self._pages is not None:
            return
        # Run the query now, so a bad query fails in open(), before any record moves; rows stay on the
        # server until records() fetches them.
        connection = self._connection.execution_options(stream_results=True, yield_per=config.batch)
        try:
            self._result = connection.execute(statement, self._params)
        except Exception as exc:
            raise _sql.DatabaseError(f"sql source: query failed on {shown}: {_sql.reason(exc)}") from None

    def _rowid_pages(self, statement: Any) -> Any:
        """On SQLite, a statement for reading a rowid table page by page, or None.

        A SQLite cursor left open holds a lock that stops every other connection from committing, so a
        pipeline reading one table and writing another table of the same file would fail with "database
        is locked". Reading `batch` rows at a time by rowid (each page fully fetched) holds no lock
        between pages. Views and WITHOUT ROWID tables are streamed instead.
        """
        import sqlalchemy

        if self._connection.dialect.name != "sqlite":
            return None
        schema = self.config.schema_ or "main"
        catalog = sqlalchemy.text(
            f'SELECT type, sql FROM "{schema.replace(chr(34), chr(34) * 2)}".sqlite_master WHERE name = :name'
        )
        found = self._connection.execute(catalog, {"name": self.config.table}).first()
        if found is None or found[0] != "table" or "WITHOUT ROWID" in str(found[1] or "").upper():
            return None  # a view, or a table without rowids: stream it
        rowid: Any = sqlalchemy.literal_column("_rowid_")
        first = statement.add_columns(rowid.label("__pipec_rowid")).order_by(rowid).limit(self.config.batch)
        # The first page has no lower bound: any "rowid > x" would skip a row whose rowid is x.
        self._first_page = first
        return first.where(rowid > sqlalchemy.bindparam("after"))

    def records(self) -> Iterator[dict[str, Any]]:
        if self._pages is not None:
            yield from self._paged()
            return
        with self._result as result:
            keys = list(result.keys())
            if not self._durations:
                for row in result:
                    yield dict(zip(keys, row))
                return
            timedelta = datetime.timedelta
            duration = _sql.duration
            for row in result:
                yield {
                    key: duration(value) if type(value) is timedelta else value
                    for key, value in zip(keys, row)
                }

    def _paged(self) -> Iterator[dict[str, Any]]:
        after: int | None = None
        connection = self._connection
        while True:
            if after is None:
                result = connection.execute(self._first_page)
            else:
                result = connection.execute(self._pages, {"after": after})
            keys = list(result.keys())[:-1]
            rows = result.fetchall()
            connection.rollback()
            if not rows:
                return
            for row in rows:
                yield dict(zip(keys, row[:-1]))
            after = rows[-1][-1]

    def close(self) -> None:
        result = getattr(self, "_result", None)
        if result is not None:
            result.close()
        release_connection(self)


class _WriteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    url: str = Field(description=_URL_HELP)
    table: str = Field(description="Table to write to.")
    schema_: str | None = Field(
        None, alias="schema", description="Schema (database on MySQL) of the table; default: the URL's."
    )
    mode: Literal["insert", "upsert"] = Field(
        "insert",
        description="insert: add every record as a new row. upsert: insert, or update the row with the same "
        "`key` (ON CONFLICT on SQLite/PostgreSQL, ON DUPLICATE KEY on MariaDB/MySQL).",
    )
    key: list[str] = Field(
        default_factory=list,
        description="Column(s) identifying a row, for mode upsert (a primary key or unique index on them).",
    )
    batch: int = Field(500, ge=1, description="Rows per INSERT batch.")
    create: bool = Field(
        False,
        description="Create the table if it does not exist, with columns typed from the first record "
        "(`key` becomes its primary key).",
    )
    connect_args: dict[str, Any] = Field(
        default_factory=dict, description="Extra keyword arguments for the database driver's connect()."
    )

    @model_validator(mode="after")
    def _key_for_upsert(self) -> _WriteConfig:
        if self.mode == "upsert" and not self.key:
            raise ValueError("mode 'upsert' needs `key`: the column(s) that identify a row")
        return self


class _TableOutput:
    """What the sink and the bulk sink share: connect, find or create the table, write rows."""

    config: Any
    what: str

    def _open_output(self) -> None:
        config = self.config
        self._shown = _sql.redact_url(config.url)
        self._engine, self._connection = _sql.connect(
            config.url, self.what, config.connect_args, create_dirs=True
        )
        table = _sql.reflect_table(self._connection, config.table, config.schema_)
        self._connection.rollback()
        if table is None and not config.create:
            raise ValueError(
                f"{self.what}: table {_sql.qualified(config.table, config.schema_)} does not exist in "
                f"{self._shown} (set create = true to create it from the first record)"
            )
        self._writer: _sql.TableWriter | None = None
        if table is not None:
            self._writer = _sql.TableWriter(self._connection, table, config.mode, config.key)

    def _writer_for(self, record: Any) -> _sql.TableWriter:
        """The writer; on the first record of a table to create, create it from that record."""
        if self._writer is None:
            if not isinstance(record, dict):
                raise TypeError(f"expected a dict record, got {type(record).__name__}")
            config = self.config
            absent = [key for key in config.key if record.get(key) is None]
            if absent:
                raise ValueError(
                    f"{self.what}: cannot create table {config.table} from a record without its key "
                    f"column(s) {', '.join(map(repr, absent))}"
                )
            try:
                with self._connection.begin():
                    table = _sql.create_table(
                        self._connection, config.table, config.schema_, record, config.key
                    )
            except Exception as exc:
                # Another writer (e.g. a parallel worker) may have created it between the check and the
                # CREATE TABLE ("already exists"): if the table is there now, that is success.
                try:
                    created = _sql.reflect_table(self._connection, config.table, config.schema_)
                    self._connection.rollback()
                except Exception:  # the connection itself failed: report the CREATE's error
                    created = None
                if created is None:
                    raise _sql.DatabaseError(
                        f"{self.what}: cannot create table {config.table} in {self._shown}: "
                        f"{_sql.reason(exc)}"
                    ) from None
                table = created
            self._writer = _sql.TableWriter(self._connection, table, config.mode, config.key)
        return self._writer

    def _close_output(self) -> None:
        release_connection(self)


class SqlSink(_TableOutput, Sink):
    """Inserts (or upserts) records as rows of a table, `batch` rows per transaction.

    Each record's keys must be columns of the table (a record with an unknown column fails on its own);
    missing columns take their defaults. ISO text is converted for date/time columns and lists/maps are
    stored as JSON text outside JSON columns. If a batch fails, its rows are retried one by one, each in
    its own transaction, so that only the bad rows fail (each reported with its error).
    """

    Config = _WriteConfig
    config: _WriteConfig
    what = "sql sink"

    def open(self) -> None:
        self._open_output()
        self._pending: list[tuple[Any, dict[str, Any]]] = []

    def write(self, record: Any) -> None:
        writer = self._writer or self._writer_for(record)
        self._pending.append((record, writer.row(record)))
        if len(self._pending) >= self.config.batch:
            self._flush()

    def write_batch(self, records: list[Any]) -> None:
        """Write `records` all or nothing: one transaction, `batch` rows per statement; raises on error.

        The runtime retries a failed write_batch and then writes its records one by one, so keeping any
        part of a failed list would write those records twice.
        """
        self._flush()
        if not records:
            return
        writer = self._writer or self._writer_for(records[0])
        rows = [writer.row(record) for record in records]
        self._commit(rows)

    def _commit(self, rows: list[dict[str, Any]]) -> None:
        """Write `rows` in one transaction, `batch` rows per statement; rolled back on any failure."""
        assert self._writer is not None
        size = self.config.batch
        try:
            with self._connection.begin():
                for start in range(0, len(rows), size):
                    self._writer.execute(rows[start : start + size])
        except Exception as exc:
            raise _sql.DatabaseError(
                f"{self.what}: writing {len(rows)} row(s) to {self.config.table} in {self._shown} failed: "
                f"{_sql.reason(exc)}"
            ) from None

    def _flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        self._pending = []
        try:
            self._commit([row for _, row in pending])
            return
        except _sql.DatabaseError:
            if len(pending) == 1:
                raise
        # Find the bad rows: each row alone, in its own transaction.
        for record, row in pending:
            try:
                self._commit([row])
            except _sql.DatabaseError as exc:
                self.context.reject(record, exc)

    def flush(self) -> None:
        """Commit the buffered rows now; each row the database refuses is rejected on its own."""
        pending = getattr(self, "_pending", None)
        if not pending:
            return
        try:
            self._flush()
        except _sql.DatabaseError as exc:  # a single buffered row failed: reject it, as batches do
            self.context.reject(pending[0][0], exc)

    def close(self) -> None:
        try:
            if getattr(self, "_pending", None):
                self._flush()
        finally:
            self._close_output()


class SqlBulkSink(_TableOutput, BulkSink):
    """Loads a stage's hand-off (a JSON Lines file path, e.g. from the `jsonl` stage) into a table.

    Everything is loaded inside ONE transaction, `batch` rows per INSERT: if any line is malformed or any
    row fails, nothing is committed. Before committing, the table's row count is checked against the
    lines read (mode insert). With `replace`, the table's existing rows are deleted in that same
    transaction, so readers see either the old contents or the new, never a mix.
    """

    class Config(_WriteConfig):
        replace: bool = Field(
            False, description="Delete the table's existing rows first, in the same transaction as the load."
        )
        verify_count: bool = Field(
            True, description="Check, before committing, that the table gained exactly one row per line read."
        )

    config: Config
    what = "sql bulksink"

    def open(self) -> None:
        self._open_output()

    def publish(self, handoff: Any) -> None:
        path, file = open_handoff(handoff, self.what)
        with file:
            lines = self._lines(file, path)
            first = next(lines, None)
            if first is None:
                if self._writer is not None and self.config.replace:
                    with self._connection.begin():
                        self._connection.execute(self._writer.table.delete())
                return
            writer = self._writer or self._writer_for(first[1])
            self._load(writer, first, lines, path)

    @staticmethod
    def _lines(file: Any, path: str) -> Iterator[tuple[int, dict[str, Any]]]:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: malformed JSON in the stage's hand-off: {exc}") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            yield number, record

    def _load(
        self,
        writer: _sql.TableWriter,
        first: tuple[int, dict[str, Any]],
        lines: Iterator[tuple[int, dict[str, Any]]],
        path: str,
    ) -> None:
        config = self.config
        connection = self._connection
        table = writer.table
        read = 0
        try:
            with connection.begin():
                if config.replace:
                    connection.execute(table.delete())
                before = _sql.count_rows(connection, table) if config.verify_count else 0
                rows: list[dict[str, Any]] = []
                for number, record in _chain(first, lines):
                    try:
                        rows.append(writer.row(record))
                    except (ValueError, TypeError) as exc:
                        raise ValueError(f"{path}:{number}: {exc}") from None
                    read += 1
                    if len(rows) >= config.batch:
                        writer.execute(rows)
                        rows = []
                if rows:
                    writer.execute(rows)
                if config.verify_count and config.mode == "insert":
                    after = _sql.count_rows(connection, table)
                    if after - before != read:
                        raise _sql.DatabaseError(
                            f"{self.what}: row count check failed for {table.name}: read {read} line(s) but "
                            f"the table gained {after - before} row(s); nothing was committed"
                        )
        except _sql.DatabaseError:
            raise
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{self.what}: {exc}; nothing was committed") from None
        except Exception as exc:
            raise _sql.DatabaseError(
                f"{self.what}: loading {path} into {table.name} in {self._shown} failed after {read} line(s) "
                f"read; nothing was committed: {_sql.reason(exc)}"
            ) from None
        self.context.logger.info("%s: loaded %d row(s) into %s", self.context.node, read, table.name)

    def close(self) -> None:
        self._close_output()


def _chain(first: tuple[int, dict[str, Any]], rest: Iterator[tuple[int, dict[str, Any]]]) -> Iterator[Any]:
    yield first
    yield from rest


component = ComponentType(
    name="sql",
    implementations={"source": SqlSource, "sink": SqlSink, "bulksink": SqlBulkSink},
    summary="SQL databases through SQLAlchemy (SQLite, PostgreSQL, MariaDB/MySQL, ...): "
    "read a table or query, insert/upsert, bulk load",
)
