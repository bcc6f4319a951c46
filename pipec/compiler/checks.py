"""The rule registry: every check of DESIGN §1, run in full so that every mistake is reported at once.

A rule is a small pure function of a context (checks_base.py) yielding diagnostics. Rules live by
topic: names and `use` (checks_names.py, P1xx), components, config and options (checks_config.py,
P2xx and P4xx), graph shape (checks_shape.py, P3xx). After a syntax error only the rules local to one
statement run, on what did parse (`run_local_checks`). To add one: write the function, give it a new
code, add it to its module's tuple, add a fixture in tests/fixtures/errors/ and a row in
docs/language.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipec.compiler import ast, checks_config, checks_names, checks_shape
from pipec.compiler.checks_base import FileContext, FileRule, PipelineContext, PipelineRule
from pipec.compiler.components import UNKNOWN_ALIAS
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


# The rules that look at one statement alone. They are the only ones run on the part of a file that
# parsed despite syntax errors: a rule about the whole graph (unused nodes, missing sinks, undeclared
# names) would blame the statements that syntax errors removed.
LOCAL_FILE_RULES: tuple[FileRule, ...] = (
    checks_names.duplicate_pipelines,
    checks_names.duplicate_aliases,
    checks_names.use_module_names,
    checks_names.unimportable_modules,
)
LOCAL_PIPELINE_RULES: tuple[PipelineRule, ...] = (
    checks_names.pipeline_module_name,
    checks_names.duplicate_nodes,
    checks_config.component_types,
    checks_config.configs,
    checks_config.options,
    checks_config.settings,
)


def run_checks(file: ast.PipeFile) -> FileChecks:
    """Run every rule over the file and each of its pipelines."""
    context = FileContext.build(file)
    file_diagnostics = [d for rule in FILE_RULES for d in rule(context)]
    pipelines = []
    for pipeline in file.pipelines:
        pctx = PipelineContext.build(context, pipeline)
        pipelines.append(PipelineChecks(pctx, [d for rule in PIPELINE_RULES for d in rule(pctx)]))
    return FileChecks(context, file_diagnostics, pipelines)


def run_local_checks(partial: ast.PipeFile) -> list[Diagnostic]:
    """The statement-local rules over what parsed of a file with syntax errors (see parse.ParseResult).

    An unknown `use` alias (P107) is left out too: its `use` line may be one that did not parse.
    """
    context = FileContext.build(partial)
    found = [d for rule in LOCAL_FILE_RULES for d in rule(context)]
    for pipeline in partial.pipelines:
        pctx = PipelineContext.build(context, pipeline)
        found.extend(d for rule in LOCAL_PIPELINE_RULES for d in rule(pctx) if d.code != UNKNOWN_ALIAS)
    return sorted(found, key=Diagnostic.sort_key)
