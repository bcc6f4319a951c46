"""`pipec run --target beam` where Apache Beam is not installed: one line saying what to install, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Runs the CLI with `import apache_beam` failing as it does when the package is not installed.
WITHOUT_BEAM = """
import sys

class NoBeam:
    def find_spec(self, name, path=None, target=None):
        if name == "apache_beam" or name.startswith("apache_beam."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoBeam())
from pipec.cli import main
sys.exit(main())
"""


def test_run_target_beam_without_beam_prints_the_install_command(tmp_path: Path) -> None:
    pipe = tmp_path / "x.pipe"
    pipe.write_text(
        'pipeline x {\n    source src : jsonl { path = "in.jsonl" }\n'
        '    sink out : jsonl { path = "out.jsonl" }\n    src -> out\n}\n',
        encoding="utf-8",
    )
    (tmp_path / "in.jsonl").write_text('{"a": 1}\n', encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_BEAM, "run", "--target", "beam", str(pipe)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and "needs Apache Beam" in lines[0]
    assert "pip install 'pipec[beam]'" in lines[0]
    assert done.stdout == ""
    assert not (tmp_path / "out.jsonl").exists()
