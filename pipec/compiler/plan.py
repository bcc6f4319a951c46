"""Checked pipeline -> render model: every decision about the generated module is made here.

The templates only loop and print. The central decision is the shape of the record loop: the graph is
cut into *segments*, maximal straight chains of nodes. A source's segment is the body of its `for` loop;
every other segment (a node fed by several nodes, or one of several successors) becomes a small local
function `n_<name>_push(rec)`. Inside a segment, a dropped record leaves with `continue` (loop) or
`return` (function), so the common path is straight-line code with direct calls.

Safety: user values reach the generated source only through `repr` of plain Python values; names reach it
only after `str.isidentifier` (variables are derived from node names only when those are plain ASCII
identifiers, otherwise from the node's index).
"""

from __future__ import annotations

import keyword
import os
from dataclasses import dataclass, field

from pipec import __version__
from pipec.compiler import ast
from pipec.compiler.model import CheckedNode, CheckedPipeline

TICK_MASK = 16383  # must match pipec.runtime.progress.TICK_MASK
WORKER_CHUNK = 256  # records per chunk sent to a `workers = N` chain (see pipec.runtime.workers)
# Each flat-mapping processor nests the rest of its segment one `for` deeper, and Python allows only 20
# statically nested blocks per function (a source loop already uses 3; a step needs 2 more for its
# try/except). Below this indent (in spaces) a segment nests inline; past it, the rest of the chain
# continues in its own `n_<name>_push` function, which starts again at the top level of its body.
MAX_SEGMENT_INDENT = 48


class PlanError(Exception):
    """A name that cannot be placed safely in generated code (the checker should have caught it)."""


# ------------------------------------------------------------------------------------ render model
@dataclass(frozen=True)
class ImportLine:
    module: str
    attribute: str
    alias: str


@dataclass(frozen=True)
class NodeEntry:
    """One `NodeSpec(...)` in the generated module; every field is ready-to-print Python source."""

    name_code: str
    role_code: str
    type_code: str
    line: int
    factory: str
    config_code: str
    options_code: str  # ", on_error='deadletter', ..." (only non-defaults)
    comment: str


@dataclass(frozen=True)
class Binding:
    """`var = expr` at the top of the stream function."""

    var: str
    expr: str
    comment: str = ""


@dataclass(frozen=True)
class Step:
    """One printable unit of the loop body. `kind` picks the template branch; `indent` is spaces."""

    kind: str  # node_mark, process, flat_process, write, batch_write, stage, push
    indent: str
    node: str = ""  # the node's name (for markers), printed through `name_comment`
    var: str = ""  # the node's variable prefix
    drop: str = "continue"
    batch: int = 0
    target: str = ""  # push: the function to call
    comment: str = ""


@dataclass(frozen=True)
class Closure:
    name: str
    nonlocals: tuple[str, ...]
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class WorkerPool:
    """A chain of `workers = N` processors: bound after the closures, drained after the sources."""

    var: str  # the head node's variable prefix
    names_code: str  # the chain's node names, as a tuple literal
    emit: str  # the closure that takes each output record
    chunk: int
    comment: str


@dataclass(frozen=True)
class SourceLoop:
    name_code: str
    var: str
    comment: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class RenderModel:
    pipec_version: str
    pipe_file: str  # basename, printable
    pipe_file_code: str
    sha256: str
    pipeline_code: str
    threshold_code: str
    pipe_folder_code: str | None  # relative folder for `use` modules, as Python source
    imports: tuple[ImportLine, ...]
    user_imports: tuple[ImportLine, ...]
    nodes: tuple[NodeEntry, ...]
    edges_code: tuple[str, ...]
    bindings: tuple[Binding, ...]
    counters: tuple[str, ...]
    closures: tuple[Closure, ...]
    sources: tuple[SourceLoop, ...]
    counts_code: str  # the dict literal handed to run.tick / run.save_counts
    pools: tuple[WorkerPool, ...] = ()
    tick_mask: int = TICK_MASK
    module_name: str = ""


# ------------------------------------------------------------------------------------------ helpers
def value_code(value: ast.Value) -> str:
    """Python source for one config value; literals only through repr."""
    if isinstance(value, (ast.StringValue, ast.IntValue, ast.FloatValue, ast.BoolValue)):
        return repr(value.value)
    if isinstance(value, ast.NullValue):
        return "None"
    if isinstance(value, ast.DurationValue):
        return repr(float(value.seconds))
    if isinstance(value, ast.PercentValue):
        return repr(float(value.fraction))
    if isinstance(value, ast.RefValue):
        return repr(value.name)
    if isinstance(value, ast.EnvValue):
        if value.default is None:
            return f"Env({value.var!r})"
        return f"Env({value.var!r}, default={value_code(value.default)})"
    if isinstance(value, ast.SecretValue):
        return f"Secret({value.var!r})"
    if isinstance(value, ast.ListValue):
        return "[" + ", ".join(value_code(v) for v in value.items) + "]"
    if isinstance(value, ast.MapValue):
        return pairs_code(value.entries)
    raise PlanError(f"unknown value {value!r}")


def pairs_code(pairs: tuple[ast.Pair, ...]) -> str:
    if not pairs:
        return "{}"
    return "{" + ", ".join(f"{p.key!r}: {value_code(p.value)}" for p in pairs) + "}"


def _is_plain_identifier(name: str) -> bool:
    return name.isascii() and name.isidentifier() and not keyword.iskeyword(name)


def _checked_dotted(path: str) -> str:
    parts = path.split(".")
    if not all(p.isidentifier() and not keyword.iskeyword(p) for p in parts):
        raise PlanError(f"not an importable name: {path!r}")
    return path


def printable(text: str) -> str:
    """Text safe inside a `#` comment: one line, no control characters."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


# ------------------------------------------------------------------------------------------ planner
@dataclass
class _Planner:
    pipeline: CheckedPipeline
    out_dir: str
    pipe_path: str
    vars: dict[str, str] = field(default_factory=dict)
    counters: list[str] = field(default_factory=list)
    counted: dict[str, tuple[str, str]] = field(default_factory=dict)  # node -> (emitted, filtered)
    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)  # worker chain head -> its nodes
    split_heads: list[str] = field(default_factory=list)  # segments cut off to bound the nesting depth

    def var(self, node: str) -> str:
        return self.vars[node]

    # The graph, indexed once: CheckedPipeline's lookups scan every node and edge, and the planner asks
    # them for every node (a 300-node pipeline would spend most of its planning time there).
    def index(self) -> None:
        self._nodes = {node.name: node for node in self.pipeline.nodes}
        self._successors: dict[str, list[str]] = {node.name: [] for node in self.pipeline.nodes}
        self._predecessors: dict[str, list[str]] = {node.name: [] for node in self.pipeline.nodes}
        for edge in self.pipeline.edges:
            if edge.kind == "->":
                self._successors[edge.source].append(edge.target)
                self._predecessors[edge.target].append(edge.source)

    def node(self, name: str) -> CheckedNode:
        return self._nodes[name]

    def successors(self, name: str) -> tuple[str, ...]:
        return tuple(self._successors[name])

    def predecessors(self, name: str) -> tuple[str, ...]:
        return tuple(self._predecessors[name])

    def assign_vars(self) -> None:
        for index, node in enumerate(self.pipeline.nodes):
            self.vars[node.name] = f"n_{node.name}" if _is_plain_identifier(node.name) else f"n{index}"

    def comment(self, node: CheckedNode) -> str:
        return printable(f"{node.name}: {node.role} {node.decl.type_name} ({self.pipe_name}:{node.line})")

    @property
    def pipe_name(self) -> str:
        return os.path.basename(self.pipe_path)

    # ------------------------------------------------------------------------------- loop segments
    def chain_steps(self, start: str, indent: str, drop: str) -> list[Step]:
        steps: list[Step] = []
        name: str | None = start
        while name is not None:
            node = self.node(name)
            var = self.var(name)
            steps.append(Step("node_mark", indent, node=name, comment=self.comment(node)))
            successors = self.successors(name)
            if name in self.chains:  # runs in worker processes; its outputs come back through `emit`
                steps.append(Step("worker_put", indent, node=name, var=var, batch=WORKER_CHUNK))
                return steps
            if node.role == "processor":
                if node.resolved.emits_many:
                    steps.append(Step("flat_process", indent, node=name, var=var, drop=drop))
                    self.counted[name] = (f"{var}_emitted", f"{var}_filtered")
                    inner = indent + "    "
                    if len(inner) > MAX_SEGMENT_INDENT and len(successors) == 1 and len(
                        self.predecessors(successors[0])
                    ) == 1:
                        following = successors[0]
                        self.split_heads.append(following)
                        target = f"{self.var(following)}_push"
                        steps.append(Step("push", inner, target=target, node=following))
                        return steps
                    steps.extend(self.after(successors, inner, "continue"))
                    return steps
                steps.append(Step("process", indent, node=name, var=var, drop=drop))
                self.counted[name] = ("0", f"{var}_filtered")
                if len(successors) == 1 and len(self.predecessors(successors[0])) == 1:
                    name = successors[0]
                    continue
                steps.extend(self.after(successors, indent, drop))
                return steps
            if node.role == "sink":
                kind = "batch_write" if node.options.batch else "write"
                steps.append(Step(kind, indent, node=name, var=var, batch=node.options.batch or 0))
            elif node.role == "stage":
                steps.append(Step("stage", indent, node=name, var=var))
            return steps
        return steps

    def after(self, successors: tuple[str, ...], indent: str, drop: str) -> list[Step]:
        """Hand a record on: inline when there is exactly one successor fed only by this node."""
        if len(successors) == 1 and len(self.predecessors(successors[0])) == 1:
            return self.chain_steps(successors[0], indent, drop)
        return [Step("push", indent, target=f"{self.var(s)}_push", node=s) for s in successors]

    def closure_heads(self) -> list[str]:
        heads = []
        for node in self.pipeline.nodes:
            if node.role in ("source", "bulksink"):
                continue
            preds = self.predecessors(node.name)
            if not preds:
                continue  # only fed as a dead-letter sink: no stream code
            if len(preds) > 1 or len(self.successors(preds[0])) > 1:
                heads.append(node.name)
        return heads

    def worker_chains(self) -> dict[str, tuple[str, ...]]:
        """Processors with `workers = N`, grouped into maximal straight chains with the same N: each chain
        runs in one set of worker processes, so its records cross a process boundary only twice."""
        chains: dict[str, tuple[str, ...]] = {}
        taken: set[str] = set()
        for node in self.pipeline.nodes:  # topological order: a chain's head comes first
            workers = node.options.workers
            if node.role != "processor" or not workers or node.name in taken:
                continue
            names = [node.name]
            while True:
                successors = self.successors(names[-1])
                if len(successors) != 1 or len(self.predecessors(successors[0])) != 1:
                    break
                following = self.node(successors[0])
                if following.role != "processor" or following.options.workers != workers:
                    break
                names.append(following.name)
            taken.update(names)
            chains[node.name] = tuple(names)
        return chains

    def closure(self, name: str, steps: tuple[Step, ...]) -> Closure:
        assigned = sorted(
            {f"{s.var}_filtered" for s in steps if s.kind in ("process", "flat_process")}
            | {f"{s.var}_emitted" for s in steps if s.kind == "flat_process"}
        )
        return Closure(name, tuple(assigned), steps)

    def build(self) -> RenderModel:
        self.index()
        self.assign_vars()
        checked = self.pipeline
        self.chains = self.worker_chains()
        closures = []
        for head in self.closure_heads():
            steps = tuple(self.chain_steps(head, " " * 8, "return"))
            closures.append(self.closure(f"{self.var(head)}_push", steps))
        pools = []
        for head, names in self.chains.items():
            last = names[-1]
            steps = tuple(self.after(self.successors(last), " " * 8, "return"))
            closures.append(self.closure(f"{self.var(last)}_emit", steps))
            workers = self.node(head).options.workers
            # Starts with the head's name, like every `# node:` mark: the sampler charges the wait to it.
            plural = "es" if workers != 1 else ""
            comment = printable(f"{head}: {workers} worker process{plural} for {', '.join(names)}")
            emit = f"{self.var(last)}_emit"
            pools.append(WorkerPool(self.var(head), repr(names), emit, WORKER_CHUNK, comment))
        sources = []
        for node in checked.nodes:
            if node.role != "source":
                continue
            var = self.var(node.name)
            self.counted[node.name] = (f"{var}_emitted", "0")
            steps = tuple(self.after(self.successors(node.name), " " * 16, "continue"))
            sources.append(SourceLoop(repr(node.name), var, self.comment(node), steps))
        while self.split_heads:  # each may cut off a further segment: a worklist, not recursion
            head = self.split_heads.pop(0)
            steps = tuple(self.chain_steps(head, " " * 8, "return"))
            closures.append(self.closure(f"{self.var(head)}_push", steps))
        counters = sorted(
            {c for pair in self.counted.values() for c in pair if c != "0"},
        )
        counts_code = "{" + ", ".join(
            f"{name!r}: ({emitted}, {filtered})" for name, (emitted, filtered) in sorted(self.counted.items())
        ) + "}"
        imports, user_imports = self.imports()
        return RenderModel(
            pipec_version=__version__,
            pipe_file=printable(self.pipe_name),
            pipe_file_code=repr(self.pipe_name),
            sha256=checked.sha256,
            pipeline_code=repr(checked.name),
            threshold_code=repr(float(checked.threshold)),
            pipe_folder_code=self.pipe_folder_code() if user_imports else None,
            imports=imports,
            user_imports=user_imports,
            nodes=tuple(self.node_entry(n) for n in checked.nodes),
            edges_code=tuple(f"({e.source!r}, {e.target!r}, {e.kind!r})" for e in checked.edges),
            bindings=tuple(self.bindings()),
            counters=tuple(counters),
            closures=tuple(closures),
            sources=tuple(sources),
            counts_code=counts_code,
            pools=tuple(pools),
            module_name=_checked_dotted(checked.name),
        )

    def pipe_folder_code(self) -> str:
        folder = os.path.dirname(os.path.abspath(self.pipe_path))
        relative = os.path.relpath(folder, os.path.abspath(self.out_dir))
        return repr(relative.replace(os.sep, "/"))

    def factory_alias(self, node: CheckedNode) -> str:
        return self._aliases[(node.resolved.module, node.resolved.attribute)]

    def imports(self) -> tuple[tuple[ImportLine, ...], tuple[ImportLine, ...]]:
        wanted = sorted({(n.resolved.module, n.resolved.attribute, n.resolved.user_module)
                         for n in self.pipeline.nodes})
        self._aliases: dict[tuple[str, str], str] = {}
        taken: set[str] = set()
        builtin: list[ImportLine] = []
        user: list[ImportLine] = []
        for module, attribute, is_user in wanted:
            _checked_dotted(module)
            _checked_dotted(attribute)
            base = "T_" + attribute if attribute.isascii() else "T_" + str(len(taken))
            alias = base
            counter = 2
            while alias in taken:
                alias = f"{base}_{counter}"
                counter += 1
            taken.add(alias)
            self._aliases[(module, attribute)] = alias
            (user if is_user else builtin).append(ImportLine(module, attribute, alias))
        return tuple(builtin), tuple(user)

    def node_entry(self, node: CheckedNode) -> NodeEntry:
        opts = node.options
        parts = []
        if node.resolved.is_function:
            parts.append("is_function=True")
        if node.resolved.emits_many:
            parts.append("emits_many=True")
        if opts.on_error != "skip":
            parts.append(f"on_error={opts.on_error!r}")
        if opts.deadletter:
            parts.append(f"deadletter={opts.deadletter!r}")
        if opts.retries:
            parts.append(f"retries={opts.retries!r}")
            parts.append(f"backoff={float(opts.backoff_seconds)!r}")
        if opts.timeout_seconds is not None:
            parts.append(f"timeout={float(opts.timeout_seconds)!r}")
        if opts.batch:
            parts.append(f"batch={opts.batch!r}")
        if opts.workers:
            parts.append(f"workers={opts.workers!r}")
        return NodeEntry(
            name_code=repr(node.name),
            role_code=repr(node.role),
            type_code=repr(node.decl.type_name),
            line=node.line,
            factory=self.factory_alias(node),
            config_code=pairs_code(node.config),
            options_code="".join(", " + p for p in parts),
            comment=self.comment(node),
        )

    def bindings(self) -> list[Binding]:
        out: list[Binding] = []
        for node in self.pipeline.nodes:
            var, name = self.var(node.name), repr(node.name)
            if node.role == "source":
                out.append(Binding(f"{var}_records", f"run.records({name})", self.comment(node)))
            elif any(node.name in names for names in self.chains.values()):
                continue  # called in the worker processes only
            elif node.role in ("processor", "sink", "stage") and self.predecessors(node.name):
                out.append(Binding(f"{var}_call", f"run.call({name})", self.comment(node)))
                out.append(Binding(f"{var}_recover", f"run.node({name}).recover"))
                if node.options.batch and node.role == "sink":
                    out.append(Binding(f"{var}_buf", f"run.buffer({name})"))
                    out.append(Binding(f"{var}_flush", f"run.node({name}).flush"))
        return out


def plan(pipeline: CheckedPipeline, pipe_path: str, out_dir: str) -> RenderModel:
    """The render model of one checked pipeline, to be written into `out_dir`."""
    return _Planner(pipeline, out_dir, pipe_path).build()
