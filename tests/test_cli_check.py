"""`pipec check` and `pipec graph` as a user runs them: output, formats, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from pipec.cli import main

ERRORS = "tests/fixtures/errors"
VALID = "tests/fixtures/valid/shop.pipe"
WARNING_ONLY = f"{ERRORS}/P311_unused_node.pipe"


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args))


def test_clean_file_exits_0_and_says_ok(repo_root: Path) -> None:
    result = run("check", VALID)
    assert result.exit_code == 0
    assert result.stdout.startswith(f"{VALID}: ok (1 pipeline, ")
    assert "error" not in result.stdout


def test_errors_exit_1_and_every_file_is_reported(repo_root: Path) -> None:
    result = run("check", f"{ERRORS}/P204_unknown_type.pipe", VALID, f"{ERRORS}/P101_duplicate_node.pipe")
    assert result.exit_code == 1
    assert "P204_unknown_type.pipe:3:21: error[P204]: unknown component type 'jsnol'" in result.stdout
    assert "P101_duplicate_node.pipe:4:12: error[P101]" in result.stdout
    assert result.stdout.count("1 error, 0 warnings") == 2


def test_warnings_pass_unless_strict(repo_root: Path) -> None:
    relaxed = run("check", WARNING_ONLY)
    assert relaxed.exit_code == 0
    assert "warning[P311]" in relaxed.stdout
    strict = run("check", "--strict", WARNING_ONLY)
    assert strict.exit_code == 1
    assert "error[P311]" in strict.stdout
    assert strict.stdout.rstrip().endswith("1 error, 0 warnings")


def test_json_format_is_one_array_of_every_diagnostic(repo_root: Path) -> None:
    result = run("check", "--format", "json", f"{ERRORS}/P999_three_mistakes.pipe", WARNING_ONLY, VALID)
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert [d["code"] for d in data] == ["P204", "P209", "P102", "P311"]
    first = data[0]
    assert first["file"] == f"{ERRORS}/P999_three_mistakes.pipe"
    assert (first["line"], first["col"], first["severity"]) == (4, 21, "error")
    assert first["suggestion"] == "did you mean 'jsonl'?"


def test_json_format_of_a_clean_file_is_an_empty_array(repo_root: Path) -> None:
    result = run("check", "--format", "json", VALID)
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


def test_missing_file_is_a_diagnostic_and_exit_1(repo_root: Path) -> None:
    result = run("check", "no/such/file.pipe", VALID)
    assert result.exit_code == 1
    assert result.stdout.startswith("no/such/file.pipe:1:1: error[P100]: cannot read 'no/such/file.pipe'")


def test_usage_errors_exit_2(repo_root: Path) -> None:
    assert run("check").exit_code == 2
    assert run("check", "--format", "xml", VALID).exit_code == 2
    assert run("check", "--nope", VALID).exit_code == 2


def test_graph_refuses_a_file_with_errors(repo_root: Path) -> None:
    result = run("graph", f"{ERRORS}/P308_cycle.pipe", "--format", "json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "error[P308]: cycle: a -> b -> c -> a" in result.stderr


def test_graph_chooses_a_pipeline(repo_root: Path, tmp_path: Path) -> None:
    two = tmp_path / "two.pipe"
    body = '{\n source a : jsonl { path = "a" }\n sink b : jsonl { path = "b" }\n a -> b\n}\n'
    two.write_text(f"pipeline first {body}pipeline second {body}", encoding="utf-8")
    several = run("graph", str(two))
    assert several.exit_code == 2
    assert "has 2 pipelines (first, second); choose one with --pipeline" in several.stderr
    chosen = run("graph", str(two), "--pipeline", "second", "--format", "json")
    assert chosen.exit_code == 0
    assert json.loads(chosen.stdout)["pipeline"] == "second"
    typo = run("graph", str(two), "--pipeline", "secnod")
    assert typo.exit_code == 2
    assert "did you mean 'second'?" in typo.stderr


def test_the_installed_command(repo_root: Path) -> None:
    """The real entry point, in a fresh interpreter: exit codes survive the console script."""
    pipec = Path(sys.executable).with_name("pipec")
    done = subprocess.run(
        [str(pipec), "check", f"{ERRORS}/P204_unknown_type.pipe"], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "help: did you mean 'jsonl'?" in done.stdout
    done = subprocess.run([str(pipec), "graph", VALID, "--format", "mermaid"], capture_output=True, text=True)
    assert done.returncode == 0
    assert done.stdout.startswith("flowchart LR\n")


def test_option_help_texts_share_one_style() -> None:
    # Every option's help starts lowercase and has no trailing period, as in `pipec run --help`.
    import click

    seen = 0
    for command in main.commands.values():
        for param in command.params:
            if isinstance(param, click.Option) and param.help and not param.hidden:
                seen += 1
                where = f"pipec {command.name} {param.opts[0]}: {param.help!r}"
                assert not param.help[0].isupper(), where
                assert not param.help.rstrip().endswith("."), where
    assert seen > 10
