"""Rules about names (P1xx): declared once, flows name declared nodes, `use` aliases used and importable."""

from __future__ import annotations

import importlib.util
import keyword
import sys
import unicodedata
from collections.abc import Iterator

from pipec.compiler import ast
from pipec.compiler.checks_base import FileContext, FileRule, PipelineContext, PipelineRule
from pipec.compiler.diagnostics import Diagnostic, Note, did_you_mean

DUPLICATE_NODE = "P101"
UNDECLARED_NODE = "P102"
DUPLICATE_ALIAS = "P103"
UNUSED_ALIAS = "P104"
IMPORT_FAILED = "P105"
DUPLICATE_PIPELINE = "P108"
PIPELINE_NOT_A_MODULE = "P109"


def _as_python_reads(name: str) -> str:
    """Python normalises identifiers (NFKC): `ﬁle` and `file` name the same module."""
    return unicodedata.normalize("NFKC", name)


def duplicate_pipelines(ctx: FileContext) -> Iterator[Diagnostic]:
    """Each pipeline compiles to a runner module named after it, so two of one name would collide."""
    first: dict[str, ast.Pipeline] = {}
    for pipeline in ctx.file.pipelines:
        earlier = first.setdefault(_as_python_reads(pipeline.name), pipeline)
        if earlier is not pipeline:
            yield Diagnostic(
                DUPLICATE_PIPELINE,
                "error",
                f"pipeline '{pipeline.name}' is defined twice",
                pipeline.name_span,
                (Note("first defined here", earlier.name_span),),
                "rename one of them: each pipeline compiles to its own runner module",
            )


def duplicate_aliases(ctx: FileContext) -> Iterator[Diagnostic]:
    for use in ctx.file.uses:
        first = ctx.uses[use.alias].decl
        if first is not use:
            yield Diagnostic(
                DUPLICATE_ALIAS,
                "error",
                f"alias '{use.alias}' is already used for module '{first.module}'",
                use.alias_span,
                (Note("first used here", first.alias_span),),
                "choose another alias",
            )


def use_module_names(ctx: FileContext) -> Iterator[Diagnostic]:
    """A module path the generated `import` statement could not spell, or would read as another name."""
    for use in ctx.file.uses:
        why = _unspellable(use.module)
        if why is None:
            continue
        yield Diagnostic(
            IMPORT_FAILED,
            "error",
            f"module '{use.module}' cannot be imported by the runner: {why}",
            use.module_span,
            suggestion="rename the module file (and the `use` line) with plain letters, digits and '_'",
        )


def _unspellable(module: str) -> str | None:
    if any(keyword.iskeyword(part) for part in module.split(".")):
        return "a Python keyword cannot be part of a module path"
    if _as_python_reads(module) != module:
        return f"Python reads it as '{_as_python_reads(module)}', a different file"
    return None


def unimportable_modules(ctx: FileContext) -> Iterator[Diagnostic]:
    for alias, use in ctx.uses.items():
        if use.error is not None and _unspellable(use.decl.module) is None:  # else use_module_names
            yield Diagnostic(
                IMPORT_FAILED,
                "error",
                f"cannot import module '{use.decl.module}' (alias '{alias}'): {use.error}",
                use.decl.module_span,
                suggestion="the module is looked up next to the .pipe file first, then on the Python path",
            )


def unused_aliases(ctx: FileContext) -> Iterator[Diagnostic]:
    used = {
        decl.type_name.partition(".")[0]
        for pipeline in ctx.file.pipelines
        for decl in pipeline.nodes
        if "." in decl.type_name
    }
    for alias, use in ctx.uses.items():
        if alias not in used and use.error is None:  # a failed import has its own P105
            yield Diagnostic(
                UNUSED_ALIAS,
                "warning",
                f"alias '{alias}' (module '{use.decl.module}') is never used",
                use.decl.alias_span,
                suggestion=f"remove the `use` line, or use a type from it as `{alias}.Name`",
            )


def pipeline_module_name(ctx: PipelineContext) -> Iterator[Diagnostic]:
    """The runner is written as NAME.py and imported by that name, so NAME must be a Python module name
    that shadows nothing the runner imports: pipec itself, the standard library, a `use` module, or any
    installed package (a runner called json.py or pipec.py could not even start)."""
    name = ctx.pipeline.name
    if keyword.iskeyword(name):
        why, hint = "it is a Python keyword", f"rename the pipeline, e.g. '{name}_pipeline'"
    elif not name.isidentifier():
        why, hint = "it is not a Python identifier", "rename the pipeline with letters, digits and '_'"
    elif _as_python_reads(name) != name:
        why = f"Python reads the name as '{_as_python_reads(name)}'"
        hint = "rename the pipeline with plain letters, digits and '_'"
    elif _shadowed(name, ctx):
        why = f"it would hide the Python module '{name}' from the runner"
        hint = f"rename the pipeline, e.g. '{name}_pipeline'"
    else:
        return
    yield Diagnostic(
        PIPELINE_NOT_A_MODULE,
        "error",
        f"pipeline '{name}' cannot name its runner module ({name}.py): {why}",
        ctx.pipeline.name_span,
        suggestion=hint,
    )


def _shadowed(name: str, ctx: PipelineContext) -> bool:
    if name == "pipec" or name in sys.stdlib_module_names:
        return True
    if any(use.module.partition(".")[0] == name for use in ctx.file.file.uses):
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def duplicate_nodes(ctx: PipelineContext) -> Iterator[Diagnostic]:
    for decl in ctx.pipeline.nodes:
        first = ctx.decls[decl.name]
        if first is not decl:
            yield Diagnostic(
                DUPLICATE_NODE,
                "error",
                f"node '{decl.name}' is declared twice in pipeline '{ctx.pipeline.name}'",
                decl.name_span,
                (Note(f"first declared here as a {first.role}", first.name_span),),
                "rename one of them",
            )


def undeclared_nodes(ctx: PipelineContext) -> Iterator[Diagnostic]:
    reported: set[str] = set()
    for flow in ctx.pipeline.flows:
        for step in flow.steps:
            if step.name in ctx.decls or step.name in reported:
                continue
            reported.add(step.name)
            yield Diagnostic(
                UNDECLARED_NODE,
                "error",
                f"flow names '{step.name}', which pipeline '{ctx.pipeline.name}' does not declare",
                step.span,
                suggestion=did_you_mean(step.name, ctx.decls)
                or f"declare it: `processor {step.name} : TYPE` (or source, sink, stage, bulksink)",
            )


FILE_RULES: tuple[FileRule, ...] = (
    duplicate_pipelines,
    duplicate_aliases,
    use_module_names,
    unimportable_modules,
    unused_aliases,
)
PIPELINE_RULES: tuple[PipelineRule, ...] = (pipeline_module_name, duplicate_nodes, undeclared_nodes)
