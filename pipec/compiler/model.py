"""What the checker hands to the planner: a pipeline whose every rule passed.

`check.py` builds a `CheckedPipeline` only when a pipeline has no errors; `plan.py` turns it into the
render model. Config values stay AST values here so that the planner decides how each one (a literal,
`env(...)`, `secret(...)`) reaches the generated module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipec.compiler.ast import NodeDecl, Pair, PipeFile, Pipeline, Span

OnError = Literal["skip", "fail", "deadletter"]
EdgeKind = Literal["->", "=>"]


@dataclass(frozen=True)
class ResolvedType:
    """Where a node's implementation lives, as the generated module will import it."""

    type_name: str  # as written in the .pipe file: "jsonl" or "steps.KeepLarge"
    module: str  # importable module path: "pipec.connectors.jsonl" or the user's "shop_steps"
    attribute: str  # class or function name inside `module`
    is_function: bool  # a plain-function processor
    emits_many: bool  # processor returns an iterable of records per input
    origin: str  # "builtin", "plugin <distribution>", or "use <alias>"
    user_module: bool  # True for `use` modules: imported from the .pipe file's folder


@dataclass(frozen=True)
class NodeOptions:
    """pipec's own per-node options (`with { ... }`), validated and defaulted."""

    on_error: OnError = "skip"
    deadletter: str | None = None
    retries: int = 0
    backoff_seconds: float = 0.1
    timeout_seconds: float | None = None
    batch: int | None = None
    workers: int | None = None


@dataclass(frozen=True)
class CheckedNode:
    name: str
    role: str
    decl: NodeDecl
    resolved: ResolvedType
    config: tuple[Pair, ...]
    options: NodeOptions

    @property
    def line(self) -> int:
        return self.decl.span.line


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: EdgeKind
    span: Span


@dataclass(frozen=True)
class CheckedPipeline:
    file: PipeFile
    pipeline: Pipeline
    nodes: tuple[CheckedNode, ...]  # in a stable topological order (ties broken by declaration order)
    edges: tuple[Edge, ...]  # sorted by (source position in `nodes`, target position)
    threshold: float  # minimum per-node success rate for `partial`, 0..1 (default 0.9)
    sha256: str  # of the .pipe file's text

    @property
    def name(self) -> str:
        return self.pipeline.name

    def node(self, name: str) -> CheckedNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def successors(self, name: str, kind: EdgeKind = "->") -> tuple[str, ...]:
        return tuple(e.target for e in self.edges if e.source == name and e.kind == kind)

    def predecessors(self, name: str, kind: EdgeKind = "->") -> tuple[str, ...]:
        return tuple(e.source for e in self.edges if e.target == name and e.kind == kind)
