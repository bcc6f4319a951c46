"""`query_log`: SQL statements with who ran them and when, from a file or a database table (the input of
OpenMetadata's usage workflow, feeding `sql_usage`)."""

from __future__ import annotations

import bisect
import csv
import json
import re
from collections.abc import Iterator
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipec.connectors._files import open_for_reading, undecodable
from pipec.runtime import ComponentType, Source

# A PostgreSQL dollar quote's opening delimiter: `$$` or `$tag$` (the tag is an identifier without `$`).
_DOLLAR_QUOTE = re.compile(r"\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$")


def split_statements(text: str) -> Iterator[tuple[int, str]]:
    """Split SQL text on `;` outside quotes and comments; yields (line the statement starts on, text).

    Quotes are '...', "...", `...` and PostgreSQL's dollar quotes ($$...$$, $tag$...$tag$: function
    bodies, whose `;` do not end the statement). Pieces holding only comments or blanks are skipped.
    """
    newlines = [index for index, char in enumerate(text) if char == "\n"]
    code_at = -1  # index of the first character of code (not blank, not comment) since `start`
    i = 0
    length = len(text)
    while i < length:
        char = text[i]
        if char in "'\"`":
            if code_at < 0:
                code_at = i
            i += 1
            while i < length:
                if text[i] == "\\" and char == "'":
                    i += 2
                    continue
                if text[i] == char:
                    if i + 1 < length and text[i + 1] == char:  # a doubled quote inside the literal
                        i += 2
                        continue
                    break
                i += 1
        elif char == "$" and (i == 0 or not _identifier_char(text[i - 1])):
            # `$1` (a parameter) and `a$b` (an identifier) are not quotes: only `$$` / `$tag$` here.
            opening = _DOLLAR_QUOTE.match(text, i)
            if opening is not None:
                if code_at < 0:
                    code_at = i
                end = text.find(opening.group(), opening.end())
                i = length if end < 0 else end + len(opening.group())
                continue
            if code_at < 0:
                code_at = i
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = length if end < 0 else end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = length if end < 0 else end + 2
            continue
        elif char == ";":
            if code_at >= 0:
                yield bisect.bisect_left(newlines, code_at) + 1, text[code_at:i].strip()
            code_at = -1
        elif code_at < 0 and not char.isspace():
            code_at = i
        i += 1
    if code_at >= 0:
        yield bisect.bisect_left(newlines, code_at) + 1, text[code_at:].strip()


def _identifier_char(char: str) -> bool:
    return char.isalnum() or char in "_$"


def _has_terminator(text: str) -> bool:
    return sum(1 for _ in split_statements(text)) > 1 or text.rstrip().endswith(";")


class QueryLogSource(Source):
    """Reads a query log: one record per SQL statement, `{query, user, start_time, ...}`.

    From a file: JSON Lines or CSV with a query column (other fields are kept), or plain SQL text
    (`.sql`, `.log`, ...) split on `;` (or one statement per line when it has no `;`). From a database:
    `url` with `table` (or `query`), streamed. A line without a statement, or a malformed JSON/CSV
    line, is rejected with its line number and reading goes on.
    """

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid", populate_by_name=True)

        path: str | None = Field(None, description="Log file to read, relative to the working directory.")
        format: Literal["auto", "jsonl", "csv", "sql"] = Field(
            "auto",
            description="File format: jsonl, csv, or sql (plain statements); auto picks by extension "
            "(.jsonl/.ndjson/.json, .csv, anything else is sql).",
        )
        split: Literal["auto", "semicolon", "line"] = Field(
            "auto",
            description="For sql files: split statements on ';', or one per line; auto uses ';' when "
            "the file has any.",
        )
        url: str | None = Field(None, description="Database URL holding the log, instead of `path`.")
        table: str | None = Field(None, description="Table of the log (with `url`).")
        schema_: str | None = Field(None, alias="schema", description="Schema of `table`.")
        sql: str | None = Field(
            None, description="Query returning the log rows (with `url`, instead of `table`)."
        )
        query_field: str = Field("query", description="Field (or column) holding the SQL statement.")
        user_field: str = Field("user", description="Field (or column) holding who ran it.")
        time_field: str = Field("start_time", description="Field (or column) holding when it started.")
        encoding: str = Field("utf-8", description="Text encoding of the file.")

        @model_validator(mode="after")
        def _one_origin(self) -> QueryLogSource.Config:
            if (self.path is None) == (self.url is None):
                raise ValueError("give either `path` (a log file) or `url` (a database with the log)")
            if self.url is not None and (self.table is None) == (self.sql is None):
                raise ValueError("with `url`, give exactly one of `table` or `sql`")
            if self.path is not None and (self.table is not None or self.sql is not None):
                raise ValueError("`table` and `sql` go with `url`, not `path`")
            return self

    config: Config

    def open(self) -> None:
        config = self.config
        if config.path is not None:
            self._format = config.format
            if self._format == "auto":
                lowered = config.path.lower().removesuffix(".gz")
                if lowered.endswith((".jsonl", ".ndjson", ".json")):
                    self._format = "jsonl"
                elif lowered.endswith(".csv"):
                    self._format = "csv"
                else:
                    self._format = "sql"
            newline = "" if self._format == "csv" else None
            self._file = open_for_reading(config.path, config.encoding, "query_log source", newline=newline)
        else:
            from pipec.connectors.sql import SqlSource

            database_config = SqlSource.Config.model_validate(
                {"url": config.url, "table": config.table, "schema": config.schema_, "query": config.sql}
            )
            self._database = SqlSource(database_config, self.context)
            self._database.open()

    def records(self) -> Iterator[dict[str, Any]]:
        if self._database is not None:
            yield from self._from_rows(self._database.records(), "table")
        elif self._format == "jsonl":
            yield from self._from_jsonl()
        elif self._format == "csv":
            yield from self._from_csv()
        else:
            yield from self._from_sql()

    def _normalized(self, row: dict[str, Any]) -> dict[str, Any]:
        config = self.config
        record = dict(row)
        record["query"] = record.pop(config.query_field)
        if config.user_field != "user":
            record["user"] = record.pop(config.user_field, None)
        if config.time_field != "start_time":
            record["start_time"] = record.pop(config.time_field, None)
        record.setdefault("user", None)
        record.setdefault("start_time", None)
        return record

    def _check(self, row: Any, where: str) -> str | None:
        """Why `row` is not a usable log entry, or None."""
        if not isinstance(row, dict):
            return f"{where}: expected an object, got {type(row).__name__}"
        query = row.get(self.config.query_field)
        if not isinstance(query, str) or not query.strip():
            return f"{where}: no SQL statement in field {self.config.query_field!r}"
        return None

    def _from_rows(self, rows: Iterator[dict[str, Any]], what: str) -> Iterator[dict[str, Any]]:
        for number, row in enumerate(rows, 1):
            problem = self._check(row, f"{what} row {number}")
            if problem:
                self.context.reject(row, ValueError(problem))
                continue
            yield self._normalized(row)

    def _from_jsonl(self) -> Iterator[dict[str, Any]]:
        assert self._file is not None
        path = self.config.path
        for number, line in enumerate(self._file, 1):
            if not line.strip():
                continue
            if undecodable(line):
                self.context.reject(line.rstrip("\r\n"), ValueError(f"{path}:{number}: not valid text"))
                continue
            try:
                row = json.loads(line)
            except RecursionError:
                self.context.reject(line.rstrip("\r\n"), ValueError(f"{path}:{number}: nested too deeply"))
                continue
            except ValueError as exc:
                self.context.reject(
                    line.rstrip("\r\n"), ValueError(f"{path}:{number}: malformed JSON: {exc}")
                )
                continue
            problem = self._check(row, f"{path}:{number}")
            if problem:
                self.context.reject(row, ValueError(problem))
                continue
            yield self._normalized(row)

    def _from_csv(self) -> Iterator[dict[str, Any]]:
        assert self._file is not None
        path = self.config.path
        reader = csv.reader(self._file)
        header = next(reader, None)
        if header is None:
            return
        if self.config.query_field not in header:
            raise ValueError(
                f"{path}: no {self.config.query_field!r} column (its columns: {', '.join(header)})"
            )
        previous_end = reader.line_num
        for row in reader:
            line = previous_end + 1
            previous_end = reader.line_num
            if not row:
                continue
            if len(row) != len(header):
                self.context.reject(
                    row, ValueError(f"{path}:{line}: expected {len(header)} fields, got {len(row)}")
                )
                continue
            record = dict(zip(header, row))
            problem = self._check(record, f"{path}:{line}")
            if problem:
                self.context.reject(record, ValueError(problem))
                continue
            yield self._normalized(record)

    def _from_sql(self) -> Iterator[dict[str, Any]]:
        assert self._file is not None
        text = self._file.read()
        split = self.config.split
        if split == "auto":
            split = "semicolon" if _has_terminator(text) else "line"
        if split == "line":
            statements: Iterator[tuple[int, str]] = (
                (number, line.strip())
                for number, line in enumerate(text.splitlines(), 1)
                if line.strip() and not line.lstrip().startswith("--")
            )
        else:
            statements = split_statements(text)
        for number, statement in statements:
            yield {"query": statement, "user": None, "start_time": None, "line": number}

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._database is not None:
            self._database.close()

    _file: IO[str] | None = None
    _database: Any = None


component = ComponentType(
    name="query_log",
    implementations={"source": QueryLogSource},
    summary="SQL statements with user and time from a log file (jsonl, csv, .sql) or a database table",
)
