"""`pipec compile`: check a .pipe file, then write one runner module per pipeline into an output folder.

Nothing is written unless the whole file checks clean, and nothing is written outside `out_dir`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pipec.compiler.check import CheckResult, check_file
from pipec.compiler.codegen import render_runner
from pipec.compiler.model import CheckedPipeline
from pipec.compiler.plan import PlanError, plan

TARGETS = ("local", "beam")  # local: the in-process runner; beam: an Apache Beam pipeline (issue 6)


@dataclass
class BuildResult:
    check: CheckResult
    written: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # not .pipe mistakes: e.g. two runners, one name
    strict: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems and not self.check.has_errors(self.strict)


def runner_source(pipeline: CheckedPipeline, pipe_path: str, out_dir: str, target: str = "local") -> str:
    if target == "beam":
        from pipec.compiler.beam_plan import beam_runner_source  # never imports apache_beam

        return beam_runner_source(pipeline, pipe_path, out_dir)
    return render_runner(plan(pipeline, pipe_path, out_dir))


def module_filename(pipeline: CheckedPipeline, target: str = "local") -> str:
    # A Beam module gets its own name so that both targets can share one output folder.
    return f"{pipeline.name}_beam.py" if target == "beam" else f"{pipeline.name}.py"


def build(paths: list[str], out_dir: str, strict: bool = False, target: str = "local") -> list[BuildResult]:
    """Check every file; when all are clean, render and write every pipeline's runner for `target`."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    results = []
    for path in paths:
        result = BuildResult(check_file(path), strict=strict)
        results.append(result)
    if not all(r.ok for r in results):
        return results
    root = Path(out_dir).resolve()
    planned: dict[Path, str] = {}
    owners: dict[Path, str] = {}
    for result, path in zip(results, paths):
        for pipeline in result.check.pipelines:
            dest = (root / module_filename(pipeline, target)).resolve()
            if dest.parent != root:  # names are identifiers, so this cannot happen; refuse anyway
                result.problems.append(f"{path}: refusing to write {dest} outside {root}")
                continue
            if dest in planned:
                result.problems.append(
                    f"{path}: pipeline '{pipeline.name}' would overwrite the runner of the same name "
                    f"from {owners[dest]}; rename one of the pipelines"
                )
                continue
            try:
                planned[dest] = runner_source(pipeline, path, out_dir, target)
            except PlanError as exc:  # e.g. a graph the Beam target cannot express
                result.problems.append(f"{path}: pipeline '{pipeline.name}': {exc}")
                continue
            except Exception as exc:  # a pipec bug (e.g. generated code Python rejects): no traceback
                detail = " ".join(f"{type(exc).__name__}: {exc}".split())
                result.problems.append(
                    f"{path}: pipeline '{pipeline.name}': internal error while generating its runner "
                    f"({detail}); please report this as a pipec bug"
                )
                continue
            owners[dest] = path
    if not all(r.ok for r in results):
        return results
    root.mkdir(parents=True, exist_ok=True)
    for dest, source in sorted(planned.items()):
        _write_atomically(dest, source)
        next(r for r, p in zip(results, paths) if owners[dest] == p).written.append(dest)
    return results


def _write_atomically(dest: Path, text: str) -> None:
    """Write via a fresh temporary file beside `dest`: never through a symlink someone left there."""
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.unlink(missing_ok=True)  # a leftover (or planted symlink) goes; the link's target is untouched
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
