"""`pipec compile` and `pipec run`."""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import click

from pipec.compiler.build import TARGETS, BuildResult, build, module_filename
from pipec.compiler.diagnostics import render_all_text


def _report_problems(results: list[BuildResult]) -> bool:
    """Print every diagnostic and problem; True when the build may go on."""
    ok = True
    for result in results:
        check = result.check
        if check.diagnostics:
            click.echo(render_all_text(check.diagnostics, check.sources), err=True, nl=False)
        for problem in result.problems:
            click.echo(f"error: {problem}", err=True)
        ok = ok and result.ok
    return ok


@click.command("compile")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="folder for the runner modules (one per pipeline); nothing is written elsewhere")
@click.option("--strict", is_flag=True, help="treat warnings as errors")
@click.option("--target", type=click.Choice(TARGETS), default="local", show_default=True,
              help="what to generate: an in-process runner (local) or an Apache Beam pipeline (beam, "
                   "written as PIPELINE_beam.py)")
def compile_command(files: tuple[str, ...], out_dir: str, strict: bool, target: str) -> None:
    """Check FILES and write a runner module per pipeline into OUT."""
    results = build(list(files), out_dir, strict=strict, target=target)
    if not _report_problems(results):
        sys.exit(1)
    for file, result in zip(files, results):
        for path in result.written:
            click.echo(f"wrote {path}")
        if not result.written:
            click.echo(f"warning: {file} defines no pipeline: nothing written", err=True)


def _load_runner(path: Path) -> ModuleType:
    name = f"pipec_runner_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise click.ClickException(f"cannot load generated runner {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@click.command("run", context_settings={"ignore_unknown_options": False})
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--pipeline", "only", help="run only this pipeline of FILE (default: all, in order)")
@click.option("--dry-run", is_flag=True, help="sources and processors run; sinks are counting stand-ins")
@click.option("--limit", type=click.IntRange(min=0), metavar="N",
              help="stop each source once it has emitted N records (records it rejected are not counted)")
@click.option("--report", type=click.Path(dir_okay=False),
              help="write the JSON run report here; when FILE has several pipelines (and no --pipeline),"
                   " one report each, named after the pipeline: out/x.json gives out/x.a.json, out/x.b.json")
@click.option("--quiet", is_flag=True, help="print nothing unless the run failed")
@click.option("--progress/--no-progress", default=None, help="force the progress line on or off")
@click.option("--keep", type=click.Path(file_okay=False), help="keep the generated runners in this folder")
@click.option("--strict", is_flag=True, help="treat warnings as errors")
@click.option("--target", type=click.Choice(TARGETS), default="local", show_default=True,
              help="run in this process (local) or as an Apache Beam pipeline (beam; FnApiRunner unless "
                   "Beam options after `--` name another runner)")
@click.argument("beam_args", nargs=-1, type=click.UNPROCESSED)
def run_command(file: str, only: str | None, dry_run: bool, limit: int | None, report: str | None,
                quiet: bool, progress: bool | None, keep: str | None, strict: bool, target: str,
                beam_args: tuple[str, ...]) -> None:
    """Check and compile FILE, then run its pipelines. Exit 0 success/partial, 1 failed, 2 config.

    With --target beam, Beam pipeline options go after `--` and pass through unchanged:
    `pipec run --target beam f.pipe -- --runner=FlinkRunner --flink_master=host:8081`.
    """
    if beam_args and target != "beam":
        raise click.UsageError(
            f"unexpected extra arguments {' '.join(beam_args)} (Beam options need --target beam)"
        )
    if target == "beam":
        _require_beam()
    with tempfile.TemporaryDirectory(prefix="pipec-run-") as tmp:
        out_dir = keep or tmp
        results = build([file], out_dir, strict=strict, target=target)
        if not _report_problems(results):
            sys.exit(1)
        runners = results[0].written
        if not runners:
            click.echo(f"error: {file} defines no pipeline: nothing to run", err=True)
            sys.exit(2)
        pipeline_of = {module_filename(p, target): p.name for p in results[0].check.pipelines}
        names = [pipeline_of.get(p.name, p.stem) for p in runners]
        if only is not None:
            if only not in names:
                raise click.UsageError(f"no pipeline '{only}' in {file}; it has: {', '.join(names)}")
            runners = [p for p in runners if pipeline_of.get(p.name, p.stem) == only]
        order = {p.name: i for i, p in enumerate(results[0].check.pipelines)}
        runners.sort(key=lambda p: order.get(pipeline_of.get(p.name, p.stem), 0))
        worst = 0
        for path in runners:
            argv: list[str] = []
            if dry_run:
                argv.append("--dry-run")
            if limit is not None:
                argv += ["--limit", str(limit)]
            if report:
                name = pipeline_of.get(path.name, path.stem)
                where = report if len(runners) == 1 else _per_pipeline(report, name)
                argv += ["--report", where]
            if quiet:
                argv.append("--quiet")
            if progress is not None and target == "local":
                argv.append("--progress" if progress else "--no-progress")
            argv += beam_args
            code = _load_runner(path).run(argv)
            worst = max(worst, code)
        sys.exit(worst)


def _require_beam() -> None:
    """Without Apache Beam, say what to install (exit 2, a configuration problem), not a traceback."""
    try:
        import pipec.runtime.beam  # noqa: F401  (raises ImportError with the install command)
    except ImportError as exc:
        cause = exc.__cause__
        missing = cause is None or (getattr(cause, "name", None) or "").split(".")[0] == "apache_beam"
        click.echo(f"error: {exc}" + ("" if missing else f" ({type(cause).__name__}: {cause})"), err=True)
        sys.exit(2)


def _per_pipeline(report: str, pipeline: str) -> str:
    path = Path(report)
    return str(path.with_name(f"{path.stem}.{pipeline}{path.suffix}"))


COMMANDS: list[click.Command] = [compile_command, run_command]
