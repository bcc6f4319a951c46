"""`pipec compile` as a user meets it: what it writes, what it refuses, and how it says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import pipec.compiler.build as build_module
from pipec.cli import main
from pipec.compiler.build import build

FLAT_MAP = "from pipec.runtime import emits_many\n\n\n@emits_many\ndef dup(r):\n    return [r]\n"


def compile_cli(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["compile", *args])


def deep_pipe(folder: Path, depth: int, module: str = "deep_fm") -> Path:
    (folder / f"{module}.py").write_text(FLAT_MAP, encoding="utf-8")
    (folder / "in.jsonl").write_text('{"a": 1}\n{"a": 2}\n', encoding="utf-8")
    decls = "\n".join(f"    processor p{i} : f.dup" for i in range(depth))
    chain = " -> ".join(["s", *(f"p{i}" for i in range(depth)), "o"])
    path = folder / "deep.pipe"
    path.write_text(
        f"use {module} as f\n\npipeline mypipe {{\n"
        f'    source s : jsonl {{ path = "in.jsonl" }}\n{decls}\n'
        f'    sink o : jsonl {{ path = "out.jsonl" }}\n\n    {chain}\n}}\n',
        encoding="utf-8",
    )
    return path


# ------------------------------------------------------------------------- 1. nesting depth
@pytest.mark.parametrize("depth", [16, 60])
def test_a_long_chain_of_flat_maps_compiles_and_runs(tmp_path: Path, depth: int) -> None:
    pipe = deep_pipe(tmp_path, depth)
    results = build([str(pipe)], str(tmp_path / "out"))
    assert results[0].ok, results[0].problems
    [runner] = results[0].written
    proc = subprocess.run(
        [sys.executable, str(runner), "--report", "report.json", "--quiet"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.returncode == 0, proc.stderr
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 2
    report = json.loads((tmp_path / "report.json").read_text())
    counts = {n["name"]: (n["in"], n["out"]) for n in report["nodes"]}
    assert counts == {name: (2, 2) for name in ["s", *(f"p{i}" for i in range(depth)), "o"]}


def test_an_internal_codegen_failure_is_one_line_naming_the_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> str:
        raise SyntaxError("too many statically nested blocks")

    monkeypatch.setattr(build_module, "render_runner", broken)
    pipe = deep_pipe(tmp_path, 2)
    result = compile_cli(str(pipe), "-o", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert "pipeline 'mypipe'" in line and "too many statically nested blocks" in line
    assert not (tmp_path / "out").exists()
