"""SQLAlchemy plumbing shared by `sql`, `sql_metadata` and `query_log`: engines with clear, password-free
connection errors, table reflection, value coercion, and dialect-specific insert / upsert statements.

Imported only by those connectors, so SQLAlchemy is never loaded by a runner that does not use them.
"""

from __future__ import annotations

import datetime
import decimal
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError, NoSuchTableError

from pipec.connectors._files import json_encode

# "scheme://user:" then the password up to the LAST "@" before any "?": a password with an unescaped
# "@" or "/" is hidden whole (SQLAlchemy would take its part after the first "@" for the host).
_USERINFO_IN_URL = re.compile(r"^(?P<head>[A-Za-z][\w+.\-]*://[^:/@?#\s]*:)(?P<password>[^?#\s]*)@")
_PASSWORD_IN_TEXT = re.compile(r"(://[^:/@?#\s'\"]*:)[^?#\s'\"]*@")


def redact_url(url: str) -> str:
    """The URL for messages: its password, whole, replaced by ***, whether or not it parses."""
    found = _USERINFO_IN_URL.match(url)
    if found is None:
        return url
    return f"{found['head']}***@{url[found.end() :]}"


def _ambiguous_password(url_text: str) -> bool:
    """True when the password holds a raw "@": SQLAlchemy would read part of it as the host."""
    found = _USERINFO_IN_URL.match(url_text)
    return found is not None and "@" in found["password"]


def _scrub(text: str, url: URL | None) -> str:
    if url is not None and url.password:
        text = text.replace(str(url.password), "***")
    return _PASSWORD_IN_TEXT.sub(r"\1***@", text)


def reason(exc: BaseException, url: URL | None = None) -> str:
    """A one-line, password-free reason from a driver or SQLAlchemy error."""
    original = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(original).strip().splitlines() if line.strip()]
    text = lines[0] if lines else type(original).__name__
    return _scrub(text, url)


class DatabaseError(RuntimeError):
    """A database operation failed; the message names the database (password hidden)."""


def connect(
    url_text: str,
    what: str,
    connect_args: Mapping[str, Any] | None = None,
    create_dirs: bool = False,
    must_exist: bool = False,
) -> tuple[Engine, Connection]:
    """Create an engine and open one connection, or raise a clear error naming the URL (no password).

    `must_exist` (sources): a SQLite file that is not there is an error, not a new empty database."""
    shown = redact_url(url_text)
    try:
        url = sqlalchemy.make_url(url_text)
    except ArgumentError:
        raise ValueError(f"{what}: not a valid database URL: {shown}") from None
    if _ambiguous_password(url_text):
        # Connecting would name part of the password as the host in the driver's error.
        raise ValueError(
            f"{what}: not a valid database URL: {shown}: percent-encode '@' in the password (as %40)"
        )
    on_disk = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
    database = str(url.database)
    if must_exist and on_disk and not database.startswith("file:") and not os.path.exists(database):
        raise FileNotFoundError(f"{what}: no SQLite database at {database} (reading creates none)")
    if create_dirs and on_disk:
        parent = os.path.dirname(str(url.database))
        if parent and not str(url.database).startswith("file:"):
            os.makedirs(parent, exist_ok=True)
    try:
        engine = sqlalchemy.create_engine(url, connect_args=dict(connect_args or {}))
    except Exception as exc:  # unknown dialect, missing driver
        raise ValueError(f"{what}: cannot use database URL {shown}: {reason(exc, url)}") from None
    try:
        connection = engine.connect()
    except Exception as exc:
        engine.dispose()
        raise DatabaseError(f"{what}: cannot connect to {shown}: {reason(exc, url)}") from None
    return engine, connection


def reflect_table(connection: Connection, name: str, schema: str | None) -> sqlalchemy.Table | None:
    """The table as the database describes it, or None when it does not exist."""
    try:
        return sqlalchemy.Table(name, sqlalchemy.MetaData(), autoload_with=connection, schema=schema)
    except NoSuchTableError:
        return None


def qualified(name: str, schema: str | None) -> str:
    return f"{schema}.{name}" if schema else name


# ------------------------------------------------------------------------------------------ values
def _parse_datetime(text: str) -> datetime.datetime:
    if text[-1:] in ("Z", "z"):  # fromisoformat takes "Z" only from Python 3.11
        text = text[:-1] + "+00:00"
    return datetime.datetime.fromisoformat(text)


def _utc_naive(value: datetime.datetime) -> datetime.datetime:
    """An aware value as naive UTC, for a column without a time zone; a naive value as it is.

    Drivers disagree on an aware value for such a column (PostgreSQL converts it to the session's time
    zone, MariaDB and SQLite drop the offset), so it is converted here, the same on every database.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        return value
    return value.astimezone(datetime.timezone.utc).replace(tzinfo=None)


def _parse_naive_datetime(text: str) -> datetime.datetime:
    return _utc_naive(_parse_datetime(text))


def _parse_date(text: str) -> datetime.date:
    """An ISO date, or the (UTC) date of an ISO date-time; anything else is refused, not truncated."""
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return _parse_naive_datetime(text).date()
    except ValueError:
        raise ValueError("not an ISO date (YYYY-MM-DD) or date-time") from None


def _parse_time(text: str) -> datetime.time:
    return datetime.time.fromisoformat(text)


def _parse_decimal(text: str) -> decimal.Decimal:
    return decimal.Decimal(text)


def column_coercers(table: sqlalchemy.Table) -> dict[str, Callable[[Any], Any]]:
    """Per column, how to turn a JSON-ish value into what the column's type binds.

    Records from files carry dates as ISO text and nested values as dicts/lists; the drivers want
    date objects and (outside JSON columns) text. Only columns that need it get a coercer.
    """
    coercers: dict[str, Callable[[Any], Any]] = {}
    for column in table.columns:
        kind = column.type
        text_parser: Callable[[str], Any] | None = None
        naive = False
        if isinstance(kind, sqlalchemy.DateTime):
            naive = not kind.timezone
            text_parser = _parse_naive_datetime if naive else _parse_datetime
        elif isinstance(kind, sqlalchemy.Date):
            text_parser = _parse_date
        elif isinstance(kind, sqlalchemy.Time):
            text_parser = _parse_time
        elif isinstance(kind, sqlalchemy.Numeric) and kind.asdecimal:
            text_parser = _parse_decimal
        if isinstance(kind, sqlalchemy.JSON):
            continue
        coercers[column.name] = _make_coercer(text_parser, naive)
    return coercers


def _make_coercer(text_parser: Callable[[str], Any] | None, naive: bool = False) -> Callable[[Any], Any]:
    to_json = json_encode(sort_keys=True)  # the same strict, lossless JSON as every other writer

    def coerce(value: Any) -> Any:
        if type(value) is str and text_parser is not None:
            return text_parser(value)
        if naive and isinstance(value, datetime.datetime):
            return _utc_naive(value)
        if type(value) in (dict, list):
            return to_json(value)
        return value

    return coerce


def duration(value: datetime.timedelta) -> datetime.time | str:
    """A MariaDB/MySQL TIME value (a duration, which the driver returns as a timedelta) for a record.

    Within a day, a `datetime.time`, as a TIME column gives on other databases; otherwise (negative, or
    24 hours and more) text "[-]HH:MM:SS[.ffffff]" that keeps its sign: a timedelta of -1 hour is
    days=-1, seconds=82800, which a plain conversion reads as 23:00:00.
    """
    micros = value // datetime.timedelta(microseconds=1)
    if 0 <= micros < 86_400_000_000:
        return (datetime.datetime.min + value).time()
    sign = "-" if micros < 0 else ""
    seconds, fraction = divmod(abs(micros), 1_000_000)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    text = f"{sign}{hours:02d}:{minute:02d}:{second:02d}"
    return f"{text}.{fraction:06d}" if fraction else text


def raw_durations(columns: Iterable[Any]) -> list[Any]:
    """The columns to select, each TIME column typed so its driver value (a timedelta) comes back as it
    is: SQLAlchemy's MySQL TIME conversion drops the sign of a negative duration."""
    return [
        sqlalchemy.type_coerce(column, sqlalchemy.types.NullType()).label(column.name)
        if isinstance(column.type, sqlalchemy.Time)
        else column
        for column in columns
    ]


def type_for(value: Any, is_key: bool) -> sqlalchemy.types.TypeEngine[Any]:
    """A column type for a new table, from a record's value."""
    if isinstance(value, bool):
        return sqlalchemy.Boolean()
    if isinstance(value, int):
        return sqlalchemy.BigInteger()
    if isinstance(value, float):
        return sqlalchemy.Float()
    if isinstance(value, decimal.Decimal):
        return sqlalchemy.Numeric(38, 10)
    if isinstance(value, datetime.datetime):
        return sqlalchemy.DateTime()
    if isinstance(value, datetime.date):
        return sqlalchemy.Date()
    if isinstance(value, (dict, list)):
        return sqlalchemy.JSON()
    # Text cannot be a key or be indexed on MySQL/MariaDB without a length.
    return sqlalchemy.String(255) if is_key else sqlalchemy.Text()


def create_table(
    connection: Connection, name: str, schema: str | None, sample: Mapping[str, Any], key: Sequence[str]
) -> sqlalchemy.Table:
    """Create `name` with one column per key of `sample` (typed from its values); `key` is the primary key."""
    columns = [
        sqlalchemy.Column(
            column, type_for(value, column in key), primary_key=column in key, nullable=column not in key
        )
        for column, value in sample.items()
    ]
    table = sqlalchemy.Table(name, sqlalchemy.MetaData(), *columns, schema=schema)
    table.create(connection, checkfirst=True)
    return table


# ------------------------------------------------------------------------------------------ writes
class TableWriter:
    """Inserts or upserts dict records into one table, in order, one statement per run of rows with the
    same columns."""

    def __init__(
        self, connection: Connection, table: sqlalchemy.Table, mode: str, key: Sequence[str]
    ) -> None:
        self.connection = connection
        self.table = table
        self.mode = mode
        self.key = list(key)
        self.columns = frozenset(column.name for column in table.columns)
        self.coercers = column_coercers(table)
        self.dialect = connection.dialect.name
        self._statements: dict[tuple[str, ...], Any] = {}
        if mode == "upsert":
            missing = [k for k in self.key if k not in self.columns]
            if not self.key:
                raise ValueError("mode 'upsert' needs `key`: the column(s) that identify a row")
            if missing:
                raise ValueError(
                    f"key column(s) {', '.join(map(repr, missing))} are not in table {table.name}"
                )

    def row(self, record: Any) -> dict[str, Any]:
        """The record as column values, or ValueError naming the keys that are not columns."""
        if not isinstance(record, dict):
            raise TypeError(f"expected a dict record, got {type(record).__name__}")
        if not self.columns.issuperset(record):
            unknown = [key for key in record if key not in self.columns]
            raise ValueError(
                f"record has columns that table {self.table.name} does not: {', '.join(map(repr, unknown))} "
                f"(its columns: {', '.join(c.name for c in self.table.columns)})"
            )
        coercers = self.coercers
        if self.mode == "upsert":
            absent = [k for k in self.key if record.get(k) is None]
            if absent:
                raise ValueError(f"record has no value for key column(s) {', '.join(map(repr, absent))}")
        try:
            return {
                name: coercers[name](value) if name in coercers else value for name, value in record.items()
            }
        except (ValueError, TypeError, ArithmeticError):
            pass
        row: dict[str, Any] = {}
        for name, value in record.items():
            try:
                row[name] = coercers[name](value) if name in coercers else value
            except (ValueError, TypeError, ArithmeticError) as exc:
                kind = self.table.columns[name].type
                raise ValueError(f"column {name!r} ({kind}): cannot store {value!r:.60}: {exc}") from None
        return row

    def execute(self, rows: Iterable[dict[str, Any]]) -> int:
        """Write rows (inside the caller's transaction), in order; returns how many rows were sent.

        One statement per run of consecutive rows with the same columns: grouping rows from further
        apart would reorder them, and a later upsert of a row could then be overwritten by an earlier one.
        """
        groups: list[tuple[tuple[str, ...], list[dict[str, Any]]]] = []
        for row in rows:
            names = tuple(sorted(row))
            if groups and groups[-1][0] == names:
                groups[-1][1].append(row)
            else:
                groups.append((names, [row]))
        sent = 0
        for names, group in groups:
            if self.mode == "upsert" and self.dialect not in ("sqlite", "postgresql", "mysql", "mariadb"):
                for row in group:
                    self._upsert_generic(row)
            else:
                self.connection.execute(self._statement(names), group)
            sent += len(group)
        return sent

    def _statement(self, names: tuple[str, ...]) -> Any:
        statement = self._statements.get(names)
        if statement is not None:
            return statement
        table = self.table
        if self.mode == "insert":
            statement = table.insert()
        else:
            updates = [name for name in names if name not in self.key]
            if self.dialect in ("sqlite", "postgresql"):
                if self.dialect == "sqlite":
                    from sqlalchemy.dialects.sqlite import insert
                else:
                    from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
                base = insert(table)
                if updates:
                    statement = base.on_conflict_do_update(
                        index_elements=self.key, set_={name: base.excluded[name] for name in updates}
                    )
                else:
                    statement = base.on_conflict_do_nothing(index_elements=self.key)
            else:
                from sqlalchemy.dialects.mysql import insert as mysql_insert

                mysql_base = mysql_insert(table)
                # With nothing else to update, re-assigning the key turns a duplicate into a no-op.
                targets = updates or self.key[:1]
                statement = mysql_base.on_duplicate_key_update(
                    {name: mysql_base.inserted[name] for name in targets}
                )
        self._statements[names] = statement
        return statement

    def _upsert_generic(self, row: dict[str, Any]) -> None:
        table = self.table
        condition = sqlalchemy.and_(*(table.c[k] == row[k] for k in self.key))
        values = {name: value for name, value in row.items() if name not in self.key}
        if values:
            result = self.connection.execute(table.update().where(condition).values(**values))
            if result.rowcount:
                return
        else:
            found = self.connection.execute(sqlalchemy.select(sqlalchemy.func.count()).where(condition))
            if found.scalar_one():
                return
        self.connection.execute(table.insert().values(**row))


def count_rows(connection: Connection, table: sqlalchemy.Table) -> int:
    return int(connection.execute(sqlalchemy.select(sqlalchemy.func.count()).select_from(table)).scalar_one())
