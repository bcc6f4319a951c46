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


@pytest.mark.parametrize(
    "shown",
    [
        lambda s: repr(s),
        lambda s: str(KeyError(s)),
        lambda s: repr(s.encode()),
        lambda s: __import__("json").dumps(s),
        lambda s: __import__("json").dumps({"token": s}, ensure_ascii=False),
        lambda s: ascii(s),
        lambda s: repr({"token": s}),
    ],
)
@pytest.mark.parametrize("secret", ['s3cr\\et"X', "it's-\u00e9\t\u2603-k3y", "plain-token-123"])
def test_escaped_forms_of_a_secret_are_redacted(shown: object, secret: str) -> None:
    redact = Redactor([secret])
    text = f"failed: {shown(secret)} (again)"  # type: ignore[operator]
    redacted = redact(text)
    assert "***" in redacted, redacted
    for form in (secret, repr(secret)[1:-1], repr(secret.encode())[2:-1]):
        assert form not in redacted, redacted
    assert redacted.startswith("failed: ") and redacted.endswith(" (again)")
