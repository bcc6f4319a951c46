"""Small helpers the file connectors share: opening text files with clear errors, and turning values
JSON cannot encode (datetimes, decimals, bytes from SQL sources) into JSON ones.

Kept dependency-free so that importing `pipec.connectors.jsonl` stays cheap.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import IO, Any, cast

# Large write buffers: the sinks are called once per record and the OS call is the expensive part.
WRITE_BUFFER = 1 << 20


# Bytes that are not valid in the file's encoding are read as lone surrogates (surrogateescape), so one
# bad byte fails its own line (a source rejects it with its line number) instead of the whole file.
_UNDECODABLE = re.compile("[\udc80-\udcff]")


def undecodable(text: str) -> bool:
    """True when `text` holds bytes its file's encoding could not decode (ASCII text: one fast check)."""
    return not text.isascii() and _UNDECODABLE.search(text) is not None


def open_for_reading(path: str, encoding: str, what: str, newline: str | None = None) -> IO[str]:
    """Open `path` (relative to the working directory; `.gz` is decompressed) or raise a clear error.

    Undecodable bytes do not raise: they come through as lone surrogates; see `undecodable`."""
    try:
        if path.endswith(".gz"):
            import gzip

            text = gzip.open(path, "rt", encoding=encoding, newline=newline, errors="surrogateescape")  # noqa: SIM115
            return cast(IO[str], _GzipLines(text, path))
        return open(path, encoding=encoding, newline=newline, errors="surrogateescape")  # noqa: SIM115
    except FileNotFoundError:
        raise FileNotFoundError(f"{what}: file not found: {path} (relative to {os.getcwd()})") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{what}: {path} is a directory, not a file") from None
    except OSError as exc:
        raise OSError(f"{what}: cannot open {path}: {exc.strerror or exc}") from None


class _GzipLines:
    """A decompressed text file whose read errors name the file and line, as other read errors do.

    gzip only finds out that a file is not gzip, or is cut short, while reading, and then says neither
    which file nor where (`EOFError: Compressed file ended before the end-of-stream marker ...`)."""

    def __init__(self, file: IO[str], path: str) -> None:
        self._file = file
        self._path = path
        self._lines = 0  # lines handed out so far: an error is in the next one

    def __iter__(self) -> _GzipLines:
        return self

    def __next__(self) -> str:
        try:
            line = next(self._file)
        except StopIteration:
            raise
        except Exception as exc:
            raise self._error(exc) from None
        self._lines += 1
        return line

    def readline(self, size: int = -1) -> str:
        try:
            line = self._file.readline(size)
        except Exception as exc:
            raise self._error(exc) from None
        self._lines += line.endswith("\n")
        return line

    def read(self, size: int = -1) -> str:
        if size is None or size < 0:
            return "".join(self)  # line by line, so that an error knows its line
        try:
            return self._file.read(size)
        except Exception as exc:
            raise self._error(exc) from None

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> _GzipLines:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def _error(self, exc: Exception) -> Exception:
        import gzip
        import zlib

        where = f"{self._path}:{self._lines + 1}"
        if isinstance(exc, EOFError):
            return EOFError(f"{where}: the gzip file is truncated ({exc})")
        if isinstance(exc, gzip.BadGzipFile):
            return gzip.BadGzipFile(f"{where}: not a gzip file, or a damaged one ({exc})")
        if isinstance(exc, (zlib.error, OSError)):
            return OSError(f"{where}: cannot decompress: {exc}")
        return exc  # anything else is not about the file's bytes: unchanged


def open_handoff(handoff: Any, what: str) -> tuple[str, IO[str]]:
    """The stage's hand-off (a JSON-lines file path) opened for a bulk sink to read, with its path."""
    path = os.fspath(handoff)
    try:
        return path, open(path, encoding="utf-8")  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise FileNotFoundError(f"{what}: cannot read the stage's hand-off {path}: {exc.strerror}") from None


def open_for_writing(path: str, encoding: str, append: bool, what: str, newline: str = "\n") -> IO[str]:
    """Create parent folders and open `path` for writing (or appending); `.gz` is compressed."""
    mode = "a" if append else "w"
    try:
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        if path.endswith(".gz"):
            import gzip

            return cast(IO[str], gzip.open(path, mode + "t", encoding=encoding, newline=newline))
        return open(path, mode, encoding=encoding, newline=newline, buffering=WRITE_BUFFER)  # noqa: SIM115
    except IsADirectoryError:
        raise IsADirectoryError(f"{what}: {path} is a directory, not a file") from None
    except OSError as exc:
        raise OSError(f"{what}: cannot open {path} for writing: {exc.strerror or exc}") from None


def json_default(value: Any) -> Any:
    """`json.dumps(default=...)`: encode the values SQL drivers and CSV parsing produce.

    Called only for values json cannot encode itself, so it costs nothing for plain records.
    datetime/date/time -> ISO 8601 text, Decimal -> see `_decimal`, bytes -> base64 text,
    set/frozenset -> sorted list, UUID and other objects with a meaningful str -> str.
    """
    import datetime
    import decimal
    import uuid

    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return _decimal(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        import base64

        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, (uuid.UUID, datetime.timedelta)):
        return str(value)
    raise TypeError(f"value of type {type(value).__name__} is not JSON serializable: {value!r:.80}")


# Integers longer than this are written as text: Python refuses to print ints of over 4300 digits.
_MAX_INT_DIGITS = 4000


def _decimal(value: Any) -> Any:
    """A Decimal as JSON without losing a digit (a PostgreSQL numeric can hold far more than a float).

    Integral -> int (JSON integer, any size); when a float's shortest text has exactly the same value
    (12.5, 19.99) -> float, written as that number; otherwise -> the exact digits as a string
    ("0.12345678901234567891"). NaN and Infinity raise: JSON has no such numbers.
    """
    import decimal

    if not value.is_finite():
        raise ValueError(f"{value} cannot be written as JSON (JSON has no NaN or Infinity)")
    if value == value.to_integral_value() and value.adjusted() < _MAX_INT_DIGITS:
        return int(value)
    as_float = float(value)
    if decimal.Decimal(repr(as_float)) == value:
        return as_float
    return format(value, "f")


def json_encoder(
    *, sort_keys: bool = False, ensure_ascii: bool = True, indent: int | None = None
) -> json.JSONEncoder:
    """The JSON encoder every writer uses: `json_default` for SQL values, and NaN/Infinity refused
    (Python would write a bare `NaN`, which is not JSON and breaks every other reader).

    Its `encode` raises ValueError for such a value; `json_error` turns that into a clear message."""
    return json.JSONEncoder(
        sort_keys=sort_keys, ensure_ascii=ensure_ascii, indent=indent, default=json_default, allow_nan=False
    )


def json_encode(
    *, sort_keys: bool = False, ensure_ascii: bool = True, indent: int | None = None
) -> Callable[[Any], str]:
    """`json_encoder(...).encode`, raising `json_error`'s clear message for NaN/Infinity."""
    encode = json_encoder(sort_keys=sort_keys, ensure_ascii=ensure_ascii, indent=indent).encode

    def checked(value: Any) -> str:
        try:
            return encode(value)
        except ValueError as exc:
            raise json_error(value, exc) from None

    return checked


def json_error(value: Any, error: ValueError) -> ValueError:
    """Why `value` could not be written as JSON, naming the field that holds a NaN or Infinity.

    Only called after encoding failed, so looking through the record costs nothing otherwise."""
    try:
        found = _non_finite(value, "")
    except RecursionError:
        found = None
    if found is None:
        return error
    where, bad = found
    return ValueError(
        f"{'field ' + repr(where) if where else 'the record'} is {bad}, which cannot be written as JSON "
        "(JSON has no NaN or Infinity)"
    )


def _non_finite(value: Any, path: str) -> tuple[str, Any] | None:
    """The path and value of the first NaN/Infinity (float or Decimal) inside `value`, or None."""
    import decimal
    import math

    if isinstance(value, float):
        return None if math.isfinite(value) else (path, value)
    if isinstance(value, decimal.Decimal):
        return None if value.is_finite() else (path, value)
    if isinstance(value, dict):
        for key, item in value.items():
            found = _non_finite(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _non_finite(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None
