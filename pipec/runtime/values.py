"""`env(...)` and `secret(...)` as they appear in a generated module, and their resolution at start-up.

Generated code holds only the variable's *name* (`Env("ORDERS_DB")`, `Secret("API_TOKEN")`); the value is
looked up when the runner starts, never at compile time. Secret values are collected so that the
`Redactor` can scrub them from every message, traceback and report.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

_NO_DEFAULT: Any = object()


@dataclass(frozen=True)
class Env:
    var: str
    default: Any = _NO_DEFAULT

    def __repr__(self) -> str:
        if self.default is _NO_DEFAULT:
            return f"Env({self.var!r})"
        return f"Env({self.var!r}, default={self.default!r})"


@dataclass(frozen=True)
class Secret:
    var: str

    def __repr__(self) -> str:
        return f"Secret({self.var!r})"


class MissingVariable(Exception):
    def __init__(self, var: str, kind: str) -> None:
        super().__init__(f"{kind}({var!r}): environment variable {var} is not set")
        self.var = var


def resolve(value: Any, environ: Mapping[str, str], secrets: set[str]) -> Any:
    """A config value with every Env/Secret replaced by its value; secret values are added to `secrets`."""
    if isinstance(value, Env):
        if value.var in environ:
            return environ[value.var]
        if value.default is _NO_DEFAULT:
            raise MissingVariable(value.var, "env")
        return resolve(value.default, environ, secrets)
    if isinstance(value, Secret):
        if value.var not in environ:
            raise MissingVariable(value.var, "secret")
        secret = environ[value.var]
        if secret:
            secrets.add(secret)
        return secret
    if isinstance(value, dict):
        return {k: resolve(v, environ, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, environ, secrets) for v in value]
    return value


def current_environ() -> Mapping[str, str]:
    return os.environ


def _shown_forms(secret: str) -> set[str]:
    """The ways a secret's text shows up in output: as is, and escaped by repr() (`KeyError(secret)`
    prints the repr), ascii(), a bytes repr, or JSON; and each of those escaped once more (a repr
    inside a JSON document, a repr of a repr)."""
    once = {
        secret,
        repr(secret)[1:-1],
        ascii(secret)[1:-1],
        repr(secret.encode("utf-8", "surrogateescape"))[2:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }
    once |= {quote(secret, safe=""), quote_plus(secret), quote(secret)}  # in URLs and form bodies
    twice = {escaped for form in once for escaped in (repr(form)[1:-1], json.dumps(form)[1:-1])}
    return {form for form in once | twice if form}


class Redactor:
    """Replaces every known secret value with `***` in text bound for output."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._pattern: re.Pattern[str] | None = None
        self.update(secrets)

    def update(self, secrets: Iterable[str]) -> None:
        values = sorted({form for s in secrets if s for form in _shown_forms(s)}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in values)) if values else None

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub("***", text)

    def deep(self, value: Any) -> Any:
        """Redact strings inside dicts and lists (for dead-letter entries and reports)."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self.deep(k): self.deep(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.deep(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.deep(v) for v in value)
        if isinstance(value, (set, frozenset)):
            return [self.deep(v) for v in value]  # as JSON will show it
        return value
