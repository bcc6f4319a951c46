"""The worked examples in docs/ run as written: the component module and the `.pipe` file are taken
from the Markdown itself, checked, compiled and run (in full, and as a --limit trial)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def fenced_blocks(markdown: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced code block, in order."""
    return [(m[1], m[2]) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", markdown, re.M | re.S)]


def pipec(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from pipec.cli import main; main()", *args],
        cwd=folder, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_runtime_guide_example_runs(tmp_path: Path) -> None:
    blocks = fenced_blocks((ROOT / "docs" / "runtime.md").read_text(encoding="utf-8"))
    module = next(body for lang, body in blocks if lang == "python" and body.startswith("# my_steps.py"))
    pipe = next(body for lang, body in blocks if "use my_steps as steps" in body)
    (tmp_path / "my_steps.py").write_text(module, encoding="utf-8")
    (tmp_path / "demo.pipe").write_text(pipe, encoding="utf-8")

    checked = pipec(tmp_path, "check", "demo.pipe")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    ran = pipec(tmp_path, "run", "demo.pipe", "--report", "report.json", "--no-progress")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "'email': 'user0@example.com'" in ran.stdout  # the sink printed cleaned records
    assert "1000 records published" in ran.stdout
    trial = pipec(tmp_path, "run", "demo.pipe", "--limit", "3", "--no-progress")
    assert trial.returncode == 0 and "records published" not in trial.stdout  # a trial publishes nothing
    assert "SUCCESS" in ran.stderr + ran.stdout
