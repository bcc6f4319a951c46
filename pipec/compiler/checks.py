"""The rule registry: every check of DESIGN §1, run in full so that every mistake is reported at once.

A rule is a small pure function of a context (checks_base.py) yielding diagnostics. Rules live by
topic: names and `use` (checks_names.py, P1xx), components, config and options (checks_config.py,
P2xx and P4xx), graph shape (checks_shape.py, P3xx). To add one: write the function, give it a new
code, add it to its module's tuple, add a fixture in tests/fixtures/errors/ and a row in
docs/language.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipec.compiler import ast, checks_config, checks_names, checks_shape
from pipec.compiler.checks_base import FileContext, FileRule, PipelineContext, PipelineRule
from pipec.compiler.diagnostics import Diagnostic

FILE_RULES: tuple[FileRule, ...] = checks_names.FILE_RULES
PIPELINE_RULES: tuple[PipelineRule, ...] = (
    *checks_names.PIPELINE_RULES,
    *checks_config.RULES,
    *checks_shape.RULES,
)


@dataclass
class PipelineChecks:
    context: PipelineContext
    diagnostics: list[Diagnostic]

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)


@dataclass
class FileChecks:
    context: FileContext
    diagnostics: list[Diagnostic]  # about the file as a whole (`use` lines, pipeline names)
    pipelines: list[PipelineChecks]

    def all_diagnostics(self) -> list[Diagnostic]:
        found = [*self.diagnostics, *(d for p in self.pipelines for d in p.diagnostics)]
        return sorted(found, key=Diagnostic.sort_key)


def run_checks(file: ast.PipeFile) -> FileChecks:
    """Run every rule over the file and each of its pipelines."""
    context = FileContext.build(file)
    file_diagnostics = [d for rule in FILE_RULES for d in rule(context)]
    pipelines = []
    for pipeline in file.pipelines:
        pctx = PipelineContext.build(context, pipeline)
        pipelines.append(PipelineChecks(pctx, [d for rule in PIPELINE_RULES for d in rule(pctx)]))
    return FileChecks(context, file_diagnostics, pipelines)
