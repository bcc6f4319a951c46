"""Helpers for the Beam tests: compile a .pipe for both targets, run each in its own copy of the input
folder, and compare what the two runs wrote and reported."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e.harness import build_ok, load_module

REPO = Path(__file__).parents[2]
CASES = Path(__file__).parent / "cases"
SCHEMA = json.loads((REPO / "pipec/runtime/report.schema.json").read_text(encoding="utf-8"))
COUNT_KEYS = ("in", "out", "filtered", "failed", "retried")
IGNORED = {"__pycache__"}


@dataclass
class Run:
    code: int
    report: dict[str, Any]
    folder: Path

    def node(self, name: str) -> dict[str, Any]:
        return next(n for n in self.report["nodes"] if n["name"] == name)

    def counts(self) -> dict[str, tuple[int, ...]]:
        return {n["name"]: tuple(n[k] for k in COUNT_KEYS) for n in self.report["nodes"]}


def copy_folder(source: Path, target: Path) -> Path:
    """A fresh copy of a case or example folder, without outputs of earlier runs."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("out", "__pycache__", "runners", "*.pyc"))
    maker = target / "make_users.py"
    if maker.exists():
        spec = importlib.util.spec_from_file_location(f"maker_{abs(hash(str(target)))}", maker)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.make(target)
    return target


def compile_pipe(pipe: Path, out_dir: Path, target: str) -> list[Path]:
    return build_ok(pipe, out_dir, target)


@contextmanager
def cwd(folder: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old)


def run_module(module: Any, folder: Path, *argv: str) -> Run:
    """Run a generated module (either target) with `folder` as the working directory."""
    import jsonschema

    report = folder / f"report.{module.PIPELINE.name}.json"
    if report.exists():
        report.unlink()
    with cwd(folder):
        code = module.run([*argv, "--quiet", "--no-progress", "--report", str(report)])
    data = json.loads(report.read_text(encoding="utf-8")) if report.exists() else {}
    if data:
        jsonschema.validate(data, SCHEMA)
        for node in data["nodes"]:
            if not node["flat_map"]:
                assert node["in"] == node["out"] + node["filtered"] + node["failed"], node
    return Run(code, data, folder)


Service = Callable[[Path], AbstractContextManager[dict[str, str]]]


@contextmanager
def no_service(folder: Path) -> Iterator[dict[str, str]]:
    yield {}


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    old = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_both(
    source: Path, pipe_name: str, tmp: Path, *argv: str, service: Service = no_service
) -> dict[str, tuple[Run, Run]]:
    """Copy `source` twice, run every pipeline of `pipe_name` locally in one copy and on Beam in the
    other (each with its own `service`, e.g. a server the example talks to, started in its folder);
    returns {pipeline: (local run, beam run)}."""
    local_dir = copy_folder(source, tmp / "local")
    beam_dir = copy_folder(source, tmp / "beam")
    local_modules = sorted(compile_pipe(local_dir / pipe_name, tmp / "runners-local", "local"))
    beam_modules = sorted(compile_pipe(beam_dir / pipe_name, tmp / "runners-beam", "beam"))
    runs: dict[str, list[Run]] = {}
    for folder, paths in ((local_dir, local_modules), (beam_dir, beam_modules)):
        with service(folder) as env, environment(env):
            for path in paths:
                module = load_module(path)
                runs.setdefault(module.PIPELINE.name, []).append(run_module(module, folder, *argv))
    return {name: (pair[0], pair[1]) for name, pair in runs.items()}


# ------------------------------------------------------------------------------------ comparing output
def _normal_line(line: str) -> str:
    """A line of output; a dead-letter entry without what differs from run to run (run id, traceback)."""
    try:
        value = json.loads(line)
    except ValueError:
        return line
    if isinstance(value, dict) and {"run_id", "error", "record", "node"} <= set(value):
        value = {**value, "run_id": "*", "error": {**value["error"], "traceback": "*"}}
        return json.dumps(value, sort_keys=True)
    return line


def _table_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    connection = sqlite3.connect(path)
    try:
        names = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            name: sorted(connection.execute(f'SELECT * FROM "{name}"').fetchall(), key=repr)
            for name in sorted(names)
        }
    finally:
        connection.close()


def written_files(folder: Path, source: Path) -> dict[str, Path]:
    """Files a run created or changed, relative to `folder` (the report files excluded)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or IGNORED & set(path.parts) or path.name.startswith("report."):
            continue
        relative = path.relative_to(folder)
        original = source / relative
        if original.is_file() and original.read_bytes() == path.read_bytes():
            continue
        found[str(relative)] = path
    return found


def compare_outputs(local_dir: Path, beam_dir: Path, source: Path, unordered: set[str]) -> list[str]:
    """Every output file must be byte-identical (same sha256), except: dead-letter entries differ in run
    id and traceback; SQLite files are compared by their tables' rows; files in `unordered` (sinks fed
    by several inputs, whose arrival order Beam does not keep) are compared as sorted lines."""
    local_files = written_files(local_dir, source)
    beam_files = written_files(beam_dir, source)
    problems = []
    if sorted(local_files) != sorted(beam_files):
        problems.append(f"different files written: local {sorted(local_files)} beam {sorted(beam_files)}")
    for name in sorted(set(local_files) & set(beam_files)):
        a, b = local_files[name], beam_files[name]
        if a.read_bytes() == b.read_bytes():
            continue
        if name.endswith((".sqlite", ".db")):
            if _table_rows(a) != _table_rows(b):
                problems.append(f"{name}: tables differ")
            continue
        a_lines = [_normal_line(x) for x in a.read_text(encoding="utf-8").splitlines()]
        b_lines = [_normal_line(x) for x in b.read_text(encoding="utf-8").splitlines()]
        if name in unordered:
            a_lines.sort()
            b_lines.sort()
        if a_lines != b_lines:
            problems.append(f"{name}: contents differ (sha256 {sha256(a)} vs {sha256(b)})")
    return problems


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fan_in_paths(beam_module: Any) -> set[str]:
    """Output paths of sinks with several inputs (flows and dead letters), from a generated module."""
    spec = beam_module.PIPELINE
    inputs: dict[str, int] = {}
    for _source, target, kind in spec.edges:
        if kind == "->":
            inputs[target] = inputs.get(target, 0) + 1
    for node in spec.nodes:
        if node.deadletter:
            inputs[node.deadletter] = inputs.get(node.deadletter, 0) + 1
    paths = set()
    for node in spec.nodes:
        path = dict(node.config).get("path")
        if inputs.get(node.name, 0) > 1 and isinstance(path, str):
            paths.add(os.path.normpath(path))
    return paths


def errors_by_node(run: Run) -> dict[str, list[tuple[str, str, str, str]]]:
    return {
        n["name"]: sorted((e["location"], e["type"], e["message"], e["phase"]) for e in n["errors"])
        for n in run.report["nodes"]
    }
