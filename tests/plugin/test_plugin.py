"""A third-party plugin package, pip-installed into the running test environment, is a component type
like the built-ins: `pipec components` lists it with its origin, `pipec check` validates its config
with each error at its key, and `pipec compile` / `pipec run` use it.

The package's source tree is `pipec_plugin_demo/` next to this file (pyproject.toml with an entry point
in the `pipec.components` group, a processor `upper` with a pydantic Config). It is installed offline
(`--no-index --no-build-isolation`, from a copy, so the source tree stays clean) and uninstalled when
the module's tests are done, even when they fail.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import itertools
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipec.compiler.registry import load_registry

SOURCE = Path(__file__).resolve().parent / "pipec_plugin_demo"
DISTRIBUTION = "pipec-plugin-demo"

PIPE = """\
pipeline loud {
    source    people : csv   { path = "people.csv", columns = { id = "int" } }
    processor shout  : upper { fields = ["name", "city"] }
    sink      out    : jsonl { path = "out/loud.jsonl" }

    people -> shout -> out
}
"""

PEOPLE = "id,name,city\n1,ann,oslo\n2,bob,lima\n3,cy,\n"


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def pipec(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from pipec.cli import main; main()", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


def installed() -> bool:
    try:
        importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def forget_plugins() -> None:
    """Make this process see the environment as it is now (entry points are cached)."""
    importlib.invalidate_caches()
    load_registry.cache_clear()


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    if installed():  # left over by an interrupted run
        pip("uninstall", "-y", DISTRIBUTION)
    source = tmp_path_factory.mktemp("plugin") / "pipec_plugin_demo"
    shutil.copytree(SOURCE, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    try:
        result = pip("install", "--no-deps", "--no-build-isolation", "--no-index", str(source))
        assert result.returncode == 0, result.stdout + result.stderr
        forget_plugins()
        yield
    finally:
        removed = pip("uninstall", "-y", DISTRIBUTION)
        forget_plugins()
        assert removed.returncode == 0, removed.stdout + removed.stderr
        assert not installed(), f"{DISTRIBUTION} is still installed"
        assert load_registry().get("upper") is None


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "people.csv").write_text(PEOPLE, encoding="utf-8")
    (tmp_path / "loud.pipe").write_text(PIPE, encoding="utf-8")
    return tmp_path


def test_the_registry_and_pipec_components_list_the_plugin(plugin: None, work: Path) -> None:
    registered = load_registry().get("upper")
    assert registered is not None
    assert registered.origin == "plugin pipec-plugin-demo"
    assert registered.module == "pipec_plugin_demo"
    assert registered.component.roles == ("processor",)

    listing = pipec("components", cwd=work)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("upper "))
    assert lines[at].split()[:4] == ["upper", "processor", "plugin", "pipec-plugin-demo"]
    # The summary follows on the row, or on the lines under it when the columns are narrow.
    block = [lines[at], *itertools.takewhile(lambda line: line.startswith(" "), lines[at + 1 :])]
    assert "Upper-case some text fields" in " ".join(" ".join(block).split())

    shown = pipec("components", "upper", cwd=work)
    assert shown.returncode == 0, shown.stderr
    assert "origin: plugin pipec-plugin-demo (pipec_plugin_demo)" in shown.stdout
    assert "pipec_plugin_demo.Upper" in shown.stdout
    assert "Names of the text fields to upper-case." in shown.stdout  # field descriptions are shown

    as_json = json.loads(pipec("components", "--format", "json", cwd=work).stdout)
    (entry,) = [t for t in as_json["types"] if t["name"] == "upper"]
    assert entry["roles"] == ["processor"] and as_json["load_errors"] == {}


def diagnostics(work: Path, text: str) -> list[dict[str, Any]]:
    (work / "bad.pipe").write_text(text, encoding="utf-8")
    result = pipec("check", "bad.pipe", "--format", "json", cwd=work)
    assert result.returncode == 1, result.stdout + result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found


def test_check_validates_the_plugin_config_at_each_key(plugin: None, work: Path) -> None:
    checked = pipec("check", "loud.pipe", cwd=work)
    assert checked.returncode == 0 and checked.stdout == "loud.pipe: ok (1 pipeline, 3 nodes)\n", checked.stdout + checked.stderr

    wrong = PIPE.replace('upper { fields = ["name", "city"] }', 'upper { feilds = ["name"], missing = "ignore" }')
    found = diagnostics(work, wrong)
    by_code = {d["code"]: d for d in found}
    assert sorted(by_code) == ["P201", "P202"], found
    line = wrong.splitlines()[2]
    assert (by_code["P201"]["line"], by_code["P201"]["col"]) == (3, line.index("feilds") + 1)
    assert by_code["P201"]["end_col"] == line.index("feilds") + len("feilds") + 1
    assert by_code["P201"]["suggestion"] == "did you mean 'fields'?"
    assert (by_code["P202"]["line"], by_code["P202"]["col"]) == (3, line.index("missing") + 1)  # its key
    assert by_code["P202"]["message"] == "'missing' must be one of 'fail' or 'skip', got \"ignore\""

    empty = diagnostics(work, PIPE.replace('["name", "city"]', "[]"))
    assert [(d["code"], d["line"]) for d in empty] == [("P202", 3)]

    missing = diagnostics(work, PIPE.replace(' { fields = ["name", "city"] }', ""))
    assert [(d["code"], d["line"]) for d in missing] == [("P203", 3)]
    assert "fields" in missing[0]["message"]

    role = diagnostics(work, PIPE.replace("sink      out    : jsonl", "sink      out    : upper"))
    assert [d["code"] for d in role] == ["P205"]  # the plugin's type has only the processor role


def test_compile_and_run_use_the_plugin(plugin: None, work: Path) -> None:
    compiled = pipec("compile", "loud.pipe", "-o", "build", cwd=work)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    runner = work / "build" / "loud.py"
    assert "pipec_plugin_demo" in runner.read_text(encoding="utf-8")

    generated = subprocess.run(
        [sys.executable, str(runner), "--report", "out/report.json", "--no-progress"],
        cwd=work, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    rows = [json.loads(line) for line in (work / "out/loud.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows == [
        {"id": 1, "name": "ANN", "city": "OSLO"},
        {"id": 2, "name": "BOB", "city": "LIMA"},
        {"id": 3, "name": "CY", "city": ""},
    ]
    report = json.loads((work / "out/report.json").read_text(encoding="utf-8"))
    shout = next(node for node in report["nodes"] if node["name"] == "shout")
    assert (shout["type"], shout["in"], shout["out"], shout["failed"]) == ("upper", 3, 3, 0)

    # The plugin's own errors are per-record failures like any component's.
    (work / "people.csv").write_text("id,name\n1,ann\n", encoding="utf-8")
    ran = pipec("run", "loud.pipe", "--report", "out/again.json", "--no-progress", cwd=work)
    assert ran.returncode == 1, ran.stdout + ran.stderr  # the one record failed: below the threshold
    again = json.loads((work / "out/again.json").read_text(encoding="utf-8"))
    shout = next(node for node in again["nodes"] if node["name"] == "shout")
    assert (shout["in"], shout["failed"]) == (1, 1)
    assert "upper: the record has no field 'city'" in shout["errors"][0]["message"]
