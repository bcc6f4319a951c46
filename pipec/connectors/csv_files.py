"""`csv`: comma- (or otherwise-) separated files with a header row. A source and a sink."""

from __future__ import annotations

import csv
import datetime
import decimal
import json
from collections.abc import Callable, Iterator
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipec.connectors._files import json_encode, json_error, open_for_reading, open_for_writing, undecodable
from pipec.runtime import ComponentType, Sink, Source

ColumnType = Literal["str", "int", "float", "bool", "decimal", "date", "datetime", "json"]

_TRUE = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "off"})


def _to_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected true/false, yes/no, 1/0")


def _to_datetime(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))


def _to_date(text: str) -> datetime.date:
    return datetime.date.fromisoformat(text.strip())


def _to_decimal(text: str) -> decimal.Decimal:
    try:
        return decimal.Decimal(text.strip())
    except decimal.InvalidOperation:
        raise ValueError("not a decimal number") from None


CONVERTERS: dict[str, Callable[[str], Any]] = {
    "int": int,
    "float": float,
    "bool": _to_bool,
    "decimal": _to_decimal,
    "date": _to_date,
    "datetime": _to_datetime,
    "json": json.loads,
}


class CsvSource(Source):
    """Reads a CSV file with a header row; each row becomes a dict keyed by the header's names.

    Values are strings unless `columns` declares a type for them. In a typed column an empty field is
    `null`. A row with the wrong number of fields, or a value that does not convert to its column's
    type, is rejected with its line number (`path:LINE: ...`) and reading goes on.
    """

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        path: str = Field(
            description="File to read, relative to the working directory ('.gz' is decompressed)."
        )
        columns: dict[str, ColumnType] = Field(
            default_factory=dict,
            description="Types of columns by name: str, int, float, bool, decimal, date, datetime, json. "
            "Columns not listed stay strings.",
        )
        delimiter: str = Field(",", min_length=1, max_length=1, description="Field separator character.")
        quotechar: str = Field('"', min_length=1, max_length=1, description="Quote character.")
        has_header: bool = Field(True, description="The first row holds the column names.")
        fieldnames: list[str] | None = Field(
            None,
            description="Column names to use instead of the header row (required when has_header is false).",
        )
        encoding: str = Field("utf-8-sig", description="Text encoding (the default skips a UTF-8 BOM).")

        @model_validator(mode="after")
        def _names_known(self) -> CsvSource.Config:
            if not self.has_header and not self.fieldnames:
                raise ValueError("fieldnames is required when has_header is false")
            return self

    config: Config

    def open(self) -> None:
        config = self.config
        self._file: IO[str] = open_for_reading(config.path, config.encoding, "csv source", newline="")
        self._reader = csv.reader(self._file, delimiter=config.delimiter, quotechar=config.quotechar)
        header: list[str] | None = None
        if config.has_header:
            try:
                header = next(self._reader)
            except StopIteration:
                header = None  # an empty file: no header, no rows
            except csv.Error as exc:
                raise ValueError(f"{config.path}:1: unreadable header row: {exc}") from None
        names = config.fieldnames or header or []
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"{config.path}: duplicate column names: {', '.join(duplicates)}")
        unknown = [name for name in config.columns if name not in names] if names else []
        if unknown:
            raise ValueError(
                f"{config.path}: columns {', '.join(map(repr, unknown))} are not in the file "
                f"(its columns: {', '.join(names)})"
            )
        self._names = names
        self._empty = config.has_header and header is None and not config.fieldnames

    def records(self) -> Iterator[dict[str, Any]]:
        if self._empty:
            return
        names = self._names
        width = len(names)
        typed = [
            (name, CONVERTERS[kind], kind) for name, kind in self.config.columns.items() if kind != "str"
        ]
        reject = self.context.reject
        path = self.config.path
        reader = self._reader
        previous_end = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                reject(None, ValueError(f"{path}:{previous_end + 1}: unreadable CSV row: {exc}"))
                previous_end = reader.line_num
                continue
            line = previous_end + 1
            previous_end = reader.line_num
            if any(undecodable(value) for value in row):
                reject(row, ValueError(f"{path}:{line}: not valid {self.config.encoding} text"))
                continue
            if len(row) != width:
                if not row:
                    continue  # a blank line
                reject(row, ValueError(f"{path}:{line}: expected {width} fields, got {len(row)}"))
                continue
            record: dict[str, Any] = dict(zip(names, row))
            if typed:
                try:
                    for name, convert, kind in typed:  # noqa: B007 - name and kind name the failure
                        text = record[name]
                        record[name] = None if text == "" else convert(text)
                except (ValueError, ArithmeticError) as exc:
                    reject(
                        record,
                        ValueError(f"{path}:{line}: column {name!r}: cannot read {text!r} as {kind}: {exc}"),
                    )
                    continue
            yield record

    def close(self) -> None:
        file = getattr(self, "_file", None)
        if file is not None:
            file.close()


_PLAIN = (str, int, float)
_to_json = json_encode(sort_keys=True)  # lists and maps in a cell: the same JSON as the jsonl sink


def _cell(value: Any) -> Any:
    """A record value as CSV text: None is empty, booleans are true/false, lists and maps are JSON."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (dict, list, tuple)):
        return _to_json(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return value


class CsvSink(Sink):
    """Writes records as CSV rows under a header row.

    The columns are `fields` if given, otherwise the first record's keys in order. A record with keys
    that are not columns fails (`extra = "error"`, the default) or has them dropped (`"ignore"`); missing
    keys are written empty. None is written empty, booleans as true/false, lists and maps as JSON.
    """

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        path: str = Field(
            description="File to write, relative to the working directory; parents are created."
        )
        fields: list[str] | None = Field(
            None, description="Column names and order; default: the first record's keys."
        )
        extra: Literal["error", "ignore"] = Field(
            "error",
            description="What to do with a record's keys that are not columns: fail it, or drop them.",
        )
        delimiter: str = Field(",", min_length=1, max_length=1, description="Field separator character.")
        line_terminator: Literal["\n", "\r\n"] = Field(
            "\n", description="Line ending written after each row."
        )
        header: bool = Field(
            True, description="Write a header row (not repeated when appending to a non-empty file)."
        )
        append: bool = Field(False, description="Append to the file instead of replacing it.")
        encoding: str = Field("utf-8", description="Text encoding of the file.")

    config: Config

    def open(self) -> None:
        config = self.config
        import os

        had_content = config.append and os.path.exists(config.path) and os.path.getsize(config.path) > 0
        self._file: IO[str] = open_for_writing(
            config.path, config.encoding, config.append, "csv sink", newline=""
        )
        self._writer = csv.writer(
            self._file, delimiter=config.delimiter, lineterminator=config.line_terminator
        )
        self._write_header = config.header and not had_content
        self._fields: list[str] | None = None
        if config.fields is not None:
            self._start(list(config.fields))

    def _start(self, fields: list[str]) -> None:
        self._fields = fields
        self._known = frozenset(fields)
        if self._write_header:
            self._writer.writerow(fields)

    def _row(self, record: Any) -> list[Any]:
        if not isinstance(record, dict):
            raise TypeError(f"csv sink: expected a dict record, got {type(record).__name__}")
        if self._fields is None:
            self._start([str(key) for key in record])
        fields = self._fields
        assert fields is not None
        if self.config.extra == "error" and not self._known.issuperset(record):
            extra = [key for key in record if key not in self._known]
            raise ValueError(
                f"csv sink {self.config.path}: record has keys that are not columns: "
                f"{', '.join(map(repr, extra))} (columns: {', '.join(fields)})"
            )
        get = record.get
        try:
            return [value if type(value) in _PLAIN else _cell(value) for value in (get(f) for f in fields)]
        except ValueError as exc:  # NaN/Infinity inside a list or map: name its column
            cells = {f: value for f in fields if isinstance(value := get(f), (dict, list, tuple))}
            raise json_error(cells, exc) from None

    def write(self, record: Any) -> None:
        self._writer.writerow(self._row(record))

    def write_batch(self, records: list[Any]) -> None:
        self._writer.writerows([self._row(record) for record in records])

    def close(self) -> None:
        file = getattr(self, "_file", None)
        if file is not None:
            file.close()


component = ComponentType(
    name="csv",
    implementations={"source": CsvSource, "sink": CsvSink},
    summary="CSV files with a header row: read rows as records (typed columns), or write records as rows",
)
