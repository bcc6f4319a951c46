"""What every check rule reads: the file and pipeline contexts, computed once and shared.

Rules are pure functions `context -> Iterable[Diagnostic]`. The work several rules need (importing
`use` modules, resolving component types, reading options) happens here, once per file or pipeline,
so that a rule is a few lines of looking and no rule repeats another's work.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property

import networkx as nx

from pipec.compiler import ast
from pipec.compiler.checks_options import parse_options, parse_settings
from pipec.compiler.components import Implementation, UseModule, import_uses, resolve
from pipec.compiler.diagnostics import Diagnostic, closest
from pipec.compiler.graph import Arrow, build_graph, distinct_arrows
from pipec.compiler.model import NodeOptions
from pipec.compiler.registry import Registry, load_registry


@dataclass
class FileContext:
    file: ast.PipeFile
    registry: Registry
    uses: dict[str, UseModule]  # by alias; the first `use` of a repeated alias

    @classmethod
    def build(cls, file: ast.PipeFile) -> FileContext:
        folder = os.path.dirname(os.path.abspath(file.path))
        return cls(file, load_registry(), import_uses(file.uses, folder))


@dataclass
class PipelineContext:
    file: FileContext
    pipeline: ast.Pipeline
    graph: nx.DiGraph  # see graph.py for its attributes
    decls: dict[str, ast.NodeDecl]  # the first declaration of each name

    @classmethod
    def build(cls, file: FileContext, pipeline: ast.Pipeline) -> PipelineContext:
        decls: dict[str, ast.NodeDecl] = {}
        for decl in pipeline.nodes:
            decls.setdefault(decl.name, decl)
        return cls(file, pipeline, build_graph(pipeline), decls)

    def role(self, name: str) -> str | None:
        """The declared role of `name`, None when nothing declares it."""
        decl = self.decls.get(name)
        return decl.role if decl is not None else None

    @cached_property
    def arrows(self) -> list[Arrow]:
        return distinct_arrows(self.pipeline)

    @cached_property
    def resolutions(self) -> list[tuple[Implementation | None, list[Diagnostic]]]:
        """Each declaration's implementation (or why none), in declaration order."""
        return [resolve(decl, self.file.uses, self.file.registry) for decl in self.pipeline.nodes]

    @cached_property
    def options(self) -> list[tuple[NodeOptions, list[Diagnostic]]]:
        """Each declaration's options and their problems, in declaration order."""
        return [parse_options(decl) for decl in self.pipeline.nodes]

    @cached_property
    def settings(self) -> tuple[float, list[Diagnostic]]:
        return parse_settings(self.pipeline.settings)

    @cached_property
    def options_by_name(self) -> dict[str, NodeOptions]:
        """The options of each name's first declaration."""
        result: dict[str, NodeOptions] = {}
        for decl, (options, _) in zip(self.pipeline.nodes, self.options):
            result.setdefault(decl.name, options)
        return result

    @cached_property
    def deadletter_sinks(self) -> set[str]:
        """Declared sinks that some node's `deadletter` option names: consumed even with no flow."""
        targets = {options.deadletter for options, _ in self.options if options.deadletter}
        # A target written as a string ("rejects") has its own P210; it still means that sink.
        targets |= {
            pair.value.value
            for decl in self.pipeline.nodes
            for pair in decl.options
            if pair.key == "deadletter" and isinstance(pair.value, ast.StringValue)
        }
        return {t for t in targets if self.role(t) == "sink"}

    @cached_property
    def probably_meant(self) -> set[str]:
        """Declared names that a misspelt flow name or dead-letter target most likely means.

        Their "unused" warnings would only repeat the did-you-mean of the misspelling.
        """
        misspelt = {name for name in self.flow_names if name not in self.decls}
        misspelt |= {o.deadletter for o, _ in self.options if o.deadletter and o.deadletter not in self.decls}
        meant = (closest(name, self.decls) for name in misspelt)
        return {name for name in meant if name is not None}

    @cached_property
    def flow_names(self) -> set[str]:
        """Every name that appears in some flow line."""
        return {step.name for flow in self.pipeline.flows for step in flow.steps}


FileRule = Callable[[FileContext], Iterable[Diagnostic]]
PipelineRule = Callable[[PipelineContext], Iterable[Diagnostic]]
