"""The `pipec` command line. Each group of subcommands lives in its own module and is added here."""

from __future__ import annotations

import click

from pipec import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pipec")
def main() -> None:
    """pipec: check, compile and run .pipe ingestion pipelines."""


def _register() -> None:
    from pipec.cli import build_cmd, check_cmd, components_cmd

    for module in (check_cmd, build_cmd, components_cmd):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
