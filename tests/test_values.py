"""Env/secret resolution and redaction: a secret value is replaced wherever it hides."""

from __future__ import annotations

import pytest

from pipec.runtime.values import Env, MissingVariable, Redactor, Secret, resolve


def test_secret_values_are_redacted_in_keys_values_and_tuples() -> None:
    redact = Redactor(["hunter2"])
    record = {"hunter2": ["x hunter2 y", ("hunter2", 3)], "plain": {"k": "hunter2"}}
    assert redact.deep(record) == {"***": ["x *** y", ("***", 3)], "plain": {"k": "***"}}


def test_resolution_collects_secrets_and_names_the_missing_variable() -> None:
    secrets: set[str] = set()
    config = {"url": Env("DB", default="sqlite://"), "token": Secret("TOKEN"), "n": [Env("N")]}
    resolved = resolve(config, {"TOKEN": "t0k", "N": "5"}, secrets)
    assert resolved == {"url": "sqlite://", "token": "t0k", "n": ["5"]}
    assert secrets == {"t0k"}
    with pytest.raises(MissingVariable, match="environment variable TOKEN is not set"):
        resolve({"token": Secret("TOKEN")}, {}, set())
