"""A third-party plugin package, installed the way pip installs one (a package plus its `.dist-info` with
an `entry_points.txt`), registers a component type that `pipec components`, `check` and `run` use like a
built-in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

PLUGIN = '''
"""A pipec plugin: the `shout` processor."""
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pipec.runtime import ComponentType, Processor


class Shout(Processor):
    """Upper-cases one field of each record."""

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        field: str = Field(description="The field to upper-case.")

    def process(self, record: Any) -> Any:
        return {**record, self.config.field: str(record[self.config.field]).upper()}


component = ComponentType(name="shout", implementations={"processor": Shout}, summary="Upper-case a field")
'''


def install_plugin(site: Path) -> None:
    (site / "shout_plugin").mkdir(parents=True)
    (site / "shout_plugin" / "__init__.py").write_text(PLUGIN)
    info = site / "shout_plugin-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shout-plugin\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[pipec.components]\nshout = shout_plugin:component\n")
    (info / "top_level.txt").write_text("shout_plugin\n")


def pipec(*args: str, cwd: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-c", "from pipec.cli import main; main()", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_a_plugin_component_checks_compiles_and_runs(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_plugin(site)
    work = tmp_path / "work"
    work.mkdir()
    (work / "people.csv").write_text("id,name\n1,ann\n2,bob\n")
    (work / "loud.pipe").write_text(
        textwrap.dedent(
            """
            pipeline loud {
                source people : csv   { path = "people.csv", columns = { id = "int" } }
                processor up  : shout { field = "name" }
                sink out      : jsonl { path = "out/loud.jsonl" }
                people -> up -> out
            }
            """
        )
    )

    listing = pipec("components", cwd=work, site=site)
    assert listing.returncode == 0, listing.stderr
    assert any(
        line.split()[:4] == ["shout", "processor", "plugin", "shout-plugin"]
        for line in listing.stdout.splitlines()
    )
    shown = pipec("components", "shout", cwd=work, site=site)
    assert "Upper-cases one field of each record." in shown.stdout and "field" in shown.stdout

    checked = pipec("check", "loud.pipe", cwd=work, site=site)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    (work / "bad.pipe").write_text(
        'pipeline bad {\n    source p : csv { path = "people.csv" }\n    processor up : shout { feild = "name" }\n'
        "    sink out : stdout\n    p -> up -> out\n}\n"
    )
    bad = pipec("check", "bad.pipe", cwd=work, site=site)
    assert bad.returncode == 1 and "did you mean 'field'?" in bad.stdout

    ran = pipec("run", "loud.pipe", "--quiet", cwd=work, site=site)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = (work / "out" / "loud.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"id": 1, "name": "ANN"}, {"id": 2, "name": "BOB"}]
