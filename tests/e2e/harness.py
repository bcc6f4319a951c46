"""Compile a .pipe text with pipec, import the generated runner and run it in-process."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipec.compiler.build import build
from pipec.compiler.diagnostics import render_all_text

TESTKIT = Path(__file__).with_name("pipec_testkit.py")
SCHEMA = json.loads((Path(__file__).parents[2] / "pipec/runtime/report.schema.json").read_text())


@dataclass
class RunResult:
    code: int
    report: dict[str, Any]
    folder: Path
    runner: Path
    stderr: str

    def node(self, name: str) -> dict[str, Any]:
        return next(n for n in self.report["nodes"] if n["name"] == name)

    def lines(self, name: str) -> list[str]:
        path = self.folder / name
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else []

    def events(self) -> list[str]:
        return self.lines("events.txt")


def compile_pipe(folder: Path, text: str, name: str = "test.pipe") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(TESTKIT, folder / TESTKIT.name)
    pipe = folder / name
    pipe.write_text(text, encoding="utf-8")
    return build_ok(pipe, folder / "out")


def build_ok(pipe: Path, out_dir: Path, target: str = "local") -> list[Path]:
    """Compile `pipe` into `out_dir`; fail the test with the diagnostics if it does not compile."""
    results = build([str(pipe)], str(out_dir), target=target)
    check = results[0].check
    assert results[0].ok, render_all_text(check.diagnostics, check.sources) + "\n".join(results[0].problems)
    return results[0].written


def load_module(path: Path) -> Any:
    name = f"runner_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def run_pipe(folder: Path, text: str, *argv: str, capsys: Any = None) -> RunResult:
    import jsonschema

    runner = compile_pipe(folder, text)[0]
    module = load_module(runner)
    report = folder / "report.json"
    old = os.getcwd()
    os.chdir(folder)
    try:
        code = module.run([*argv, "--report", str(report), "--no-progress"])
    finally:
        os.chdir(old)
    stderr = capsys.readouterr().err if capsys is not None else ""
    data = json.loads(report.read_text()) if report.exists() else {}
    if data:
        jsonschema.validate(data, SCHEMA)
        for node in data["nodes"]:
            if not node["flat_map"]:
                assert node["in"] == node["out"] + node["filtered"] + node["failed"], node
    return RunResult(code, data, folder, runner, stderr)
