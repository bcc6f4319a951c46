"""Golden tests: `pipec check tests/fixtures/errors/X.pipe` prints exactly `X.expected`.

Each fixture is named after the code it demonstrates (`P204_unknown_type.pipe`); the parser's P0xx
fixtures run through the same command. Regenerate after an intended change with
`PIPEC_UPDATE_GOLDEN=1 pytest tests/test_error_fixtures.py`, then read the diff.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipec.cli import main

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = sorted((ROOT / "tests" / "fixtures" / "errors").glob("*.pipe"))
UPDATE = os.environ.get("PIPEC_UPDATE_GOLDEN") == "1"
# Codes that no .pipe file can trigger on every machine: P206 needs a broken plugin (tests/test_checks.py
# covers it); P013/P099 are the parser's (too many errors, internal error).
NO_FIXTURE = {"P206", "P013", "P099"}


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
def test_error_fixture(fixture: Path, repo_root: Path) -> None:
    relative = fixture.relative_to(repo_root).as_posix()
    result = CliRunner().invoke(main, ["check", relative])
    expected = fixture.with_suffix(".expected")
    if UPDATE:
        expected.write_text(result.stdout, encoding="utf-8")
    assert expected.exists(), f"no {expected.name}: run with PIPEC_UPDATE_GOLDEN=1 and review it"
    assert result.stdout == expected.read_text(encoding="utf-8")
    summary = re.search(r"(\d+) errors?, \d+ warnings?\n\Z", result.stdout)
    errors = int(summary[1]) if summary else 0
    assert result.exit_code == (1 if errors else 0), result.output
    code = fixture.name[:4]
    if re.fullmatch(r"P\d{3}", code) and code != "P999":
        assert f"[{code}]" in result.stdout, f"{fixture.name} does not produce {code}"


def test_three_mistakes_give_three_diagnostics(repo_root: Path) -> None:
    result = CliRunner().invoke(main, ["check", "tests/fixtures/errors/P999_three_mistakes.pipe"])
    assert result.stdout.count(": error[") == 3
    assert result.stdout.rstrip().endswith("3 errors, 0 warnings")


def emitted_codes() -> set[str]:
    """Every diagnostic code written as a literal anywhere in pipec/compiler."""
    codes: set[str] = set()
    for path in (ROOT / "pipec" / "compiler").rglob("*.py"):
        codes |= set(re.findall(r'"(P\d{3})"', path.read_text(encoding="utf-8")))
    return codes


def test_every_code_has_a_fixture() -> None:
    covered = {p.name[:4] for p in FIXTURES}
    missing = sorted(c for c in emitted_codes() - NO_FIXTURE if not c.startswith("P0") and c not in covered)
    assert not missing, f"codes without a fixture in tests/fixtures/errors: {missing}"


def test_every_code_is_documented() -> None:
    docs = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    missing = sorted(c for c in emitted_codes() if f"`{c}`" not in docs)
    assert not missing, f"codes missing from the table in docs/language.md: {missing}"
