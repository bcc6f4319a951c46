"""Errors as data: what a failed record carries, and the exceptions that stop a run."""

from __future__ import annotations

import traceback
from dataclasses import asdict, dataclass
from typing import Any

from pipec.runtime.values import Redactor


@dataclass(frozen=True)
class ErrorInfo:
    """One failure at one node: enough to find and fix it without re-running."""

    node: str
    location: str  # "file.pipe:LINE"
    type: str
    message: str
    traceback: str
    phase: str = "record"  # record | open | close | publish | source

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_exception(
        cls, exc: BaseException, node: str, location: str, redact: Redactor, phase: str = "record"
    ) -> ErrorInfo:
        header = f"pipec: node '{node}' ({location}) failed during {phase}\n"
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return cls(
            node=node,
            location=location,
            type=type(exc).__name__,
            message=_bounded(redact(_message(exc)), MAX_MESSAGE_CHARS),
            traceback=_bounded(redact(header + text), MAX_TRACEBACK_CHARS),
            phase=phase,
        )

    def one_line(self) -> str:
        return f"{self.location}: node '{self.node}': {self.type}: {self.message}"


# An exception may carry megabytes (a whole response body): 20 kept errors per node must not make a
# report of hundreds of MB. Redaction runs first, so a cut never leaves half a secret behind.
MAX_MESSAGE_CHARS = 4000
MAX_TRACEBACK_CHARS = 16000


def _bounded(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[: limit // 2]}\n... [{len(text) - limit} characters cut] ...\n{text[-limit // 2 :]}"


def _message(exc: BaseException) -> str:
    """str(exc), even for an exception whose __str__ itself raises (its record must still be isolated)."""
    try:
        return str(exc)
    except Exception:
        return f"<unprintable {type(exc).__name__}>"


class RunAborted(BaseException):
    """A node with `on_error = "fail"` failed (or a source broke): stop the run, close everything.

    A BaseException, like KeyboardInterrupt, so that no `except Exception` on the way (the generated
    loop's per-record handlers, a component's own error handling) can swallow the stop.
    """

    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.one_line())
        self.error = error


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: the run stops as cleanly as on Ctrl-C (everything closed, report written)."""


class ConfigurationError(Exception):
    """A missing variable or an invalid config found before any component opened (exit code 2)."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages
