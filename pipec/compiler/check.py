"""`check_file` / `check_text`: a `.pipe` file in, every diagnostic and the checked pipelines out.

The phases: read, parse (parse.py), run every rule (checks.py; only the statement-local ones after a
syntax error), then build a `CheckedPipeline` for each
pipeline with no errors. Nothing here raises for a mistake in the input: an unreadable file is a
diagnostic too.
"""

from __future__ import annotations

import hashlib
import sys
from contextlib import redirect_stdout
from dataclasses import dataclass, field

import networkx as nx

from pipec.compiler import ast
from pipec.compiler.checks import FileChecks, PipelineChecks, run_checks, run_local_checks
from pipec.compiler.diagnostics import Diagnostic
from pipec.compiler.model import CheckedNode, CheckedPipeline, Edge

CANNOT_READ = "P100"


@dataclass
class CheckResult:
    diagnostics: list[Diagnostic]  # every one, sorted by position
    pipelines: list[CheckedPipeline]  # the pipelines with no errors (warnings allowed)
    sources: dict[str, str]  # path -> text, for rendering excerpts
    file: ast.PipeFile | None = None  # None when the file could not be read or parsed
    checks: FileChecks | None = field(default=None, repr=False)  # the rule contexts, for tools

    def has_errors(self, strict: bool = False) -> bool:
        """Whether anything is an error (with `strict`, warnings count as errors)."""
        return any(d.is_error or strict for d in self.diagnostics)

    def reported(self, strict: bool = False) -> list[Diagnostic]:
        """The diagnostics as `pipec check` shows them: with `strict`, warnings promoted to errors."""
        return [d.as_error() for d in self.diagnostics] if strict else list(self.diagnostics)


def check_file(path: str) -> CheckResult:
    """Read and check the file at `path`; spans name the file as `path` is written."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            text = handle.read()
    except UnicodeDecodeError as exc:
        return _unreadable(path, f"cannot read '{path}': not UTF-8 text ({exc.reason} at byte {exc.start})")
    except OSError as exc:
        return _unreadable(path, f"cannot read '{path}': {exc.strerror or exc}")
    return check_text(text, path)


def _unreadable(path: str, message: str) -> CheckResult:
    span = ast.Span(path, 1, 1, 1, 1)
    return CheckResult([Diagnostic(CANNOT_READ, "error", message, span)], [], {})


def check_text(text: str, path: str) -> CheckResult:
    """Check `.pipe` source `text` as if read from `path` (`use` modules resolve next to `path`)."""
    # Checking runs the user's code (imports, validators, module __getattr__): whatever it prints goes to
    # stderr, so that stdout stays the command's own output (`--format json` must stay JSON).
    with redirect_stdout(sys.stderr):
        return _check_text(text, path)


def _check_text(text: str, path: str) -> CheckResult:
    from pipec.compiler.parse import parse  # the parse modules are the only ones that know lark

    parsed = parse(text, path)
    sources = {path: text}
    if parsed.file is None:
        # Syntax errors first; then whatever the statements that did parse get wrong on their own.
        found = [*parsed.diagnostics, *(run_local_checks(parsed.partial) if parsed.partial else [])]
        return CheckResult(sorted(found, key=Diagnostic.sort_key), [], sources)
    result = check_ast(parsed.file)
    result.diagnostics = sorted([*parsed.diagnostics, *result.diagnostics], key=Diagnostic.sort_key)
    return result


def check_ast(file: ast.PipeFile) -> CheckResult:
    """Check an already parsed file."""
    checks = run_checks(file)
    diagnostics = checks.all_diagnostics()
    pipelines: list[CheckedPipeline] = []
    if not any(d.is_error for d in checks.diagnostics):
        sha256 = hashlib.sha256(file.text.encode("utf-8")).hexdigest()
        pipelines = [_checked(file, p, sha256) for p in checks.pipelines if not p.has_errors]
    return CheckResult(diagnostics, pipelines, {file.path: file.text}, file, checks)


def _checked(file: ast.PipeFile, checks: PipelineChecks, sha256: str) -> CheckedPipeline:
    """The planner's view of an error-free pipeline: nodes in a stable topological order."""
    ctx = checks.context
    order = {decl.name: index for index, decl in enumerate(ctx.pipeline.nodes)}
    graph = nx.DiGraph()
    graph.add_nodes_from(order)
    graph.add_edges_from(ctx.graph.edges)
    # A dead-letter sink comes after the nodes that send to it, so generated code can wire their
    # dead-letter outputs into it (Beam). Opening and closing is the other way round: the runner opens
    # a dead-letter sink before, and closes it after, every node that sends to it (`lifecycle_order`).
    graph.add_edges_from(
        (name, options.deadletter) for name, options in ctx.options_by_name.items() if options.deadletter
    )
    names = list(nx.lexicographical_topological_sort(graph, key=order.__getitem__))
    resolved = {decl.name: impl for decl, (impl, _) in zip(ctx.pipeline.nodes, ctx.resolutions)}
    nodes = []
    for name in names:
        decl, impl = ctx.decls[name], resolved[name]
        assert impl is not None  # a node without an implementation is an error
        nodes.append(
            CheckedNode(name, decl.role, decl, impl.resolved, decl.config, ctx.options_by_name[name])
        )
    position = {name: index for index, name in enumerate(names)}
    edges = sorted(
        (Edge(u, v, data["kind"], data["span"]) for u, v, data in ctx.graph.edges(data=True)),
        key=lambda e: (position[e.source], position[e.target]),
    )
    return CheckedPipeline(file, ctx.pipeline, tuple(nodes), tuple(edges), ctx.settings[0], sha256)
