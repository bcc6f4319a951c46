"""`pipec compile`: check a .pipe file, then write one runner module per pipeline into an output folder.

Nothing is written unless the whole file checks clean, and nothing is written outside `out_dir`.
"""

from __future__ import annotations

import os
import re
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
    folder_problem = _folder_problem(root)
    if folder_problem is not None:
        results[0].problems.append(folder_problem)
        return results
    # Every runner in the folder has it first on sys.path, so a runner module named like a `use` module
    # of any file compiled into the same folder would be imported in that module's place.
    used: dict[str, str] = {}  # top-level `use` module -> the first file that uses it
    for result, path in zip(results, paths):
        for use in result.check.file.uses if result.check.file else ():
            used.setdefault(use.module.partition(".")[0], path)
    planned: dict[Path, str] = {}
    owners: dict[Path, str] = {}
    for result, path in zip(results, paths):
        for pipeline in result.check.pipelines:
            dest = root / module_filename(pipeline, target)
            problem = _destination_problem(dest, root)
            if problem is None and dest.stem in used:
                problem = (f"its runner {dest.name} would hide the module '{dest.stem}' that "
                           f"{used[dest.stem]} uses from the runners in {root}; rename the pipeline "
                           f"or compile the files into separate folders")
            if problem is not None:
                result.problems.append(f"{path}: pipeline '{pipeline.name}': {problem}")
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
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        results[0].problems.append(f"cannot create the output folder {root}: {_os_reason(exc)}")
        return results
    for dest, source in sorted(planned.items()):
        owner = next(r for r, p in zip(results, paths) if owners[dest] == p)
        try:
            _write_atomically(dest, source)
        except OSError as exc:  # checked above, so only e.g. a full disk or a race gets here
            owner.problems.append(f"cannot write {dest}: {_os_reason(exc)}")
            return results
        owner.written.append(dest)
    return results


# The first line of every runner pipec writes (templates/*.j2); only such a file may be replaced.
GENERATED_HEADER = re.compile(
    rb"# Generated by pipec \S+ from .* \(sha256 [0-9a-f]{64}\)\. Do not edit\.\r?\n?"
)


def _os_reason(exc: OSError) -> str:
    return exc.strerror or " ".join(str(exc).split())


def _folder_problem(root: Path) -> str | None:
    """Why the output folder cannot be used (or created), before anything is written."""
    existing = root
    while not os.path.lexists(existing) and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        if existing == root:
            return f"the output folder {root} is not a folder"
        return f"cannot create the output folder {root}: {existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot write into {existing}: permission denied"
    return None


def _destination_problem(dest: Path, root: Path) -> str | None:
    """Why `dest` cannot be written: only a missing file or a runner pipec wrote earlier is replaced."""
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.is_dir() and not tmp.is_symlink():
        return f"cannot write {dest}: a folder {tmp.name} is in the way of its temporary file"
    if dest.parent != root or dest.name in ("", ".", ".."):  # names are identifiers: cannot happen
        return f"refusing to write {dest} outside {root}"
    if dest.is_symlink():
        return f"refusing to replace {dest}: it is a symlink, not a runner written by pipec"
    if not os.path.lexists(dest):
        return None
    if dest.is_dir():
        return f"cannot write {dest}: a folder of that name is in the way"
    if not dest.is_file():
        return f"refusing to replace {dest}: it is not a regular file"
    try:
        with dest.open("rb") as handle:
            first = handle.readline(4096)
    except OSError as exc:
        return f"cannot read {dest} to check who wrote it: {_os_reason(exc)}"
    if not GENERATED_HEADER.fullmatch(first):
        return (f"refusing to replace {dest}: it was not generated by pipec (its first line is not "
                f"pipec's '# Generated by pipec ...' header); move it away or choose another folder")
    return None


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
