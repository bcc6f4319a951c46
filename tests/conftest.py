"""Shared test helpers: the repository root, and running the CLI from it."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo_root(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test from the repository root, so fixture paths are short and relative."""
    monkeypatch.chdir(REPO_ROOT)
    return REPO_ROOT
