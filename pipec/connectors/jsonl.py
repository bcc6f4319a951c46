"""`jsonl`: JSON Lines files, one JSON object per line. A source, a sink and a stage.

The sink is on the hot path of most pipelines, so `write` does exactly what a hand-written loop would
(`f.write(json.dumps(record, sort_keys=True) + "\\n")`), with the encoder and the file's `write` bound
once in `open()`. Its default output is byte-identical to that line.
"""

from __future__ import annotations

import json
import os
import weakref
from collections.abc import Iterator
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field

from pipec.connectors._files import json_encoder, json_error, open_for_reading, open_for_writing, undecodable
from pipec.runtime import ComponentType, Sink, Source, Stage


def _error_without_newline(line: str, error: ValueError) -> ValueError:
    """The parse error of the line without its line ending, which is what its author wrote."""
    try:
        json.loads(line.rstrip("\r\n"))
    except ValueError as exc:
        return exc
    return error


class JsonlSource(Source):
    """Reads a JSON Lines file: each non-blank line is one JSON object, yielded as a dict.

    A line that is not valid JSON, or not an object, is rejected with its line number
    (`path:LINE: ...`) and reading goes on. A `.gz` path is decompressed on the fly.
    """

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        path: str = Field(
            description="File to read, relative to the working directory ('.gz' is decompressed)."
        )
        encoding: str = Field("utf-8", description="Text encoding of the file.")

    config: Config

    def open(self) -> None:
        self._file: IO[str] = open_for_reading(self.config.path, self.config.encoding, "jsonl source")

    def records(self) -> Iterator[dict[str, Any]]:
        loads = json.loads
        reject = self.context.reject
        path = self.config.path
        encoding = self.config.encoding
        for number, line in enumerate(self._file, 1):
            if undecodable(line):
                reject(line.rstrip("\r\n"), ValueError(f"{path}:{number}: not valid {encoding} text"))
                continue
            try:
                record = loads(line)
            except ValueError as exc:
                if not line.strip():
                    continue  # blank lines separate nothing; skip them
                exc = _error_without_newline(line, exc)  # a cut-off line: say so, not "control character"
                message = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                column = f" (column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
                reject(line.rstrip("\r\n"), ValueError(f"{path}:{number}: malformed JSON: {message}{column}"))
                continue
            except RecursionError:  # json's decoder recurses once per nesting level
                reject(line.rstrip("\r\n"), ValueError(f"{path}:{number}: malformed JSON: nested too deeply"))
                continue
            if type(record) is not dict:
                reject(
                    line.rstrip("\r\n"),
                    ValueError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}"),
                )
                continue
            yield record

    def close(self) -> None:
        file = getattr(self, "_file", None)
        if file is not None:
            file.close()


class _JsonlWriterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sort_keys: bool = Field(True, description="Write each object's keys in sorted order.")
    ensure_ascii: bool = Field(
        True, description="Escape non-ASCII characters as \\uXXXX (false writes them as UTF-8)."
    )
    encoding: str = Field("utf-8", description="Text encoding of the file.")


class _JsonlWriter:
    """The writing half shared by the sink and the stage."""

    config: Any

    def _open_writer(self, path: str, append: bool, what: str) -> None:
        encoder = json_encoder(sort_keys=self.config.sort_keys, ensure_ascii=self.config.ensure_ascii)
        self._file: IO[str] = open_for_writing(path, self.config.encoding, append, what)
        self._encode = encoder.encode
        self._write = self._file.write
        self._writelines = self._file.writelines

    def _close_writer(self) -> None:
        file = getattr(self, "_file", None)
        if file is not None:
            file.close()


class JsonlSink(_JsonlWriter, Sink):
    """Writes each record as one JSON object per line (UTF-8, `\\n` line endings).

    Parent folders are created. With the defaults the output equals
    `json.dumps(record, sort_keys=True) + "\\n"` per record. Datetimes and bytes (from SQL sources) are
    written as ISO text and base64 text, decimals without losing a digit (see `_files.json_default`);
    a record holding NaN or Infinity fails, as JSON has no such numbers. A `.gz` path is compressed.
    """

    class Config(_JsonlWriterConfig):
        path: str = Field(
            description="File to write, relative to the working directory; parents are created."
        )
        append: bool = Field(False, description="Append to the file instead of replacing it.")

    config: Config

    def open(self) -> None:
        self._open_writer(self.config.path, self.config.append, "jsonl sink")

    def write(self, record: Any) -> None:
        try:
            line = self._encode(record)
        except ValueError as exc:  # NaN/Infinity: say which field (only on this rare path)
            raise json_error(record, exc) from None
        self._write(line + "\n")

    def write_batch(self, records: list[Any]) -> None:
        encode = self._encode
        # All encoded before anything is written, so a batch with a bad record writes nothing (the
        # runner then writes its records one by one, and only the bad one fails, via `write`).
        self._write("".join([encode(record) + "\n" for record in records]))

    def close(self) -> None:
        self._close_writer()


class JsonlStage(_JsonlWriter, Stage):
    """Stages records in a JSON Lines file; its hand-off to the bulk sink is the file's path (a str).

    Without `path`, a fresh file in the system's temporary folder is used; the stage removes that file
    (and only a file it created) once the run is over: when the run lets go of the stage, at the latest
    when the process exits. A file named by `path` is never removed.
    """

    class Config(_JsonlWriterConfig):
        path: str | None = Field(
            None,
            description="Staging file, relative to the working directory; default: a new temporary file.",
        )

    config: Config

    def open(self) -> None:
        path = self.config.path
        if path is None:
            import tempfile

            node = "".join(c if c.isalnum() else "_" for c in self.context.node)
            handle, path = tempfile.mkstemp(prefix=f"pipec-{node}-", suffix=".jsonl")
            os.close(handle)
            # The runtime calls nothing of a stage after its bulk sink has published the file, so the
            # removal is tied to the stage's own end: collected with the finished run, or at exit.
            weakref.finalize(self, _remove_quietly, path)
        self._path = path
        self._open_writer(path, False, "jsonl stage")

    def stage(self, record: Any) -> None:
        try:
            line = self._encode(record)
        except ValueError as exc:
            raise json_error(record, exc) from None
        self._write(line + "\n")

    def close(self) -> None:
        self._close_writer()

    def handoff(self) -> str:
        return self._path


def _remove_quietly(path: str) -> None:
    import contextlib

    with contextlib.suppress(OSError):  # already gone: nothing to clean up
        os.unlink(path)


component = ComponentType(
    name="jsonl",
    implementations={"source": JsonlSource, "sink": JsonlSink, "stage": JsonlStage},
    summary="JSON Lines files: read, write, or stage records one JSON object per line",
)
