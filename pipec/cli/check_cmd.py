"""`pipec check` and `pipec graph`.

Exit codes: 0 clean (warnings allowed unless `--strict`), 1 the input has errors, 2 usage. A file that
does not exist or cannot be read is an input error (exit 1, diagnostic P100), reported with the other
files' diagnostics, so one missing file does not hide the mistakes in the rest.
"""

from __future__ import annotations

import sys

import click

from pipec.compiler.check import CheckResult, check_file
from pipec.compiler.diagnostics import Diagnostic, closest, render_all_text, render_json
from pipec.compiler.graph import RENDERERS


def _print_diagnostics(
    paths: tuple[str, ...], results: list[CheckResult], strict: bool, output_format: str
) -> None:
    if output_format == "json":
        everything: list[Diagnostic] = [d for r in results for d in r.reported(strict)]
        click.echo(render_json(everything), nl=False)
        return
    for path, result in zip(paths, results):
        text = render_all_text(result.reported(strict), result.sources)
        if text:
            click.echo(text, nl=False)
        else:  # say so: silence is not an answer a new user can read
            nodes = sum(len(p.nodes) for p in result.pipelines)
            count = len(result.pipelines)
            click.echo(f"{path}: ok ({count} pipeline{'s' * (count != 1)}, {nodes} nodes)")


@click.command("check")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--strict", is_flag=True, help="treat warnings as errors")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: gcc-style with source excerpts; json: one array of every diagnostic",
)
def check_command(files: tuple[str, ...], strict: bool, output_format: str) -> None:
    """Check .pipe files and report every mistake in them.

    Exits 0 when clean (warnings allowed unless --strict), 1 when any file has errors (a missing
    file included), 2 on bad usage.
    """
    results = [check_file(path) for path in files]
    _print_diagnostics(files, results, strict, output_format)
    sys.exit(1 if any(r.has_errors(strict) for r in results) else 0)


@click.command("graph")
@click.argument("file", metavar="FILE")
@click.option(
    "--pipeline", "pipeline_name", metavar="NAME", help="the pipeline to draw (when the file has several)"
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(sorted(RENDERERS)),
    default="dot",
    show_default=True,
    help="dot (Graphviz), mermaid, or json (canonical: sorted, without positions)",
)
def graph_command(file: str, pipeline_name: str | None, output_format: str) -> None:
    """Print a pipeline's graph. Exits 1 with the diagnostics when the file has errors."""
    result = check_file(file)
    if result.has_errors():
        click.echo(render_all_text(result.diagnostics, result.sources), nl=False, err=True)
        sys.exit(1)
    pipelines = {p.name: p for p in result.pipelines}
    if not pipelines:
        click.echo(f"error: {file} defines no pipeline, so there is no graph to show", err=True)
        sys.exit(1)
    if pipeline_name is None:
        if len(pipelines) != 1:
            names = ", ".join(sorted(pipelines)) or "none"
            raise click.UsageError(
                f"{file} has {len(pipelines)} pipelines ({names}); choose one with --pipeline"
            )
        (chosen,) = pipelines.values()
    elif pipeline_name in pipelines:
        chosen = pipelines[pipeline_name]
    else:
        best = closest(pipeline_name, pipelines)
        hint = f"; did you mean '{best}'?" if best else f" (it has: {', '.join(sorted(pipelines))})"
        raise click.UsageError(f"{file} has no pipeline '{pipeline_name}'{hint}")
    click.echo(RENDERERS[output_format](chosen), nl=False)


COMMANDS: list[click.Command] = [check_command, graph_command]
