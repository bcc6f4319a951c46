"""The command line every generated runner shares: `python RUNNER.py [--dry-run] [--limit N] ...`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from pipec.runtime.runner import PipelineSpec, RunOptions, run_pipeline


def parse_run_options(argv: Sequence[str] | None, prog: str | None = None) -> RunOptions:
    parser = argparse.ArgumentParser(prog=prog, description="Run this pipec pipeline.")
    parser.add_argument("--dry-run", action="store_true",
                        help="run sources and processors; replace sinks, stages and bulk sinks by "
                             "counting stand-ins (no side effects)")
    parser.add_argument("--limit", type=_non_negative, metavar="N",
                        help="stop each source once it has emitted N records (records it rejected are "
                             "not counted), then finish and close cleanly")
    parser.add_argument("--report", metavar="PATH", help="write the JSON run report to PATH")
    parser.add_argument("--quiet", action="store_true", help="print nothing unless the run failed")
    parser.add_argument("--progress", dest="progress", action="store_true", default=None,
                        help="show the live progress line even when stderr is not a terminal")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="never show the live progress line")
    args = parser.parse_args(list(argv) if argv is not None else None)
    return RunOptions(args.dry_run, args.limit, args.report, args.quiet, args.progress)


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def run_main(spec: PipelineSpec, argv: Sequence[str] | None = None) -> int:
    """Parse the runner flags and run; returns the exit code (argparse exits 2 on bad usage)."""
    options = parse_run_options(argv, prog=os.path.basename(spec.module_file) or None)
    code, _ = run_pipeline(spec, options)
    return code


def _pipe_folder(module_file: str, relative: str) -> str:
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(module_file)), relative))


def add_pipe_folder(module_file: str, relative: str) -> None:
    """Put the .pipe file's folder first on sys.path so `use` modules import as the checker saw them.

    First even when it is already on sys.path further back: a module of the same name in an earlier
    folder must not shadow the user's `use` module."""
    folder = _pipe_folder(module_file, relative)
    while folder in sys.path:
        sys.path.remove(folder)
    sys.path.insert(0, folder)


def use_module_not_found(
    exc: ModuleNotFoundError, module_name: str, module_file: str, relative: str
) -> NoReturn:
    """A `use` module (or one it imports) cannot be found, typically because the runner was moved away
    from its .pipe folder: say so in one line. Run as a script, exit 2; imported (e.g. by a scheduler),
    raise ModuleNotFoundError with that line."""
    folder = _pipe_folder(module_file, relative)
    exists = "" if os.path.isdir(folder) else ", which does not exist"
    message = (
        f"pipec: {os.path.basename(module_file)}: no module named '{exc.name}': `use` modules are found"
        f" relative to the runner's original location (the .pipe file's folder, {relative!r} from it: here"
        f" {folder}{exists}), or must be importable (installed, or on PYTHONPATH)"
    )
    if module_name == "__main__":
        print(message, file=sys.stderr)
        raise SystemExit(2)
    raise ModuleNotFoundError(message, name=exc.name) from exc
