"""Small helpers the file connectors share: opening text files with clear errors, and turning values
JSON cannot encode (datetimes, decimals, bytes from SQL sources) into JSON ones.

Kept dependency-free so that importing `pipec.connectors.jsonl` stays cheap.
"""

from __future__ import annotations

import os
import re
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

            return gzip.open(path, "rt", encoding=encoding, newline=newline, errors="surrogateescape")
        return open(path, encoding=encoding, newline=newline, errors="surrogateescape")  # noqa: SIM115
    except FileNotFoundError:
        raise FileNotFoundError(f"{what}: file not found: {path} (relative to {os.getcwd()})") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{what}: {path} is a directory, not a file") from None
    except OSError as exc:
        raise OSError(f"{what}: cannot open {path}: {exc.strerror or exc}") from None


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
    datetime/date/time -> ISO 8601 text, Decimal -> float (int when integral), bytes -> base64 text,
    set/frozenset -> sorted list, UUID and other objects with a meaningful str -> str.
    """
    import datetime
    import decimal
    import uuid

    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        if value == value.to_integral_value() and abs(value) < 10**18:
            return int(value)
        return float(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        import base64

        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, (uuid.UUID, datetime.timedelta)):
        return str(value)
    raise TypeError(f"value of type {type(value).__name__} is not JSON serializable: {value!r:.80}")
