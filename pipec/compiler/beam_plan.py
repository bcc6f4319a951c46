"""Checked pipeline -> the render model of a Beam pipeline module (`pipec compile --target beam`).

Every decision is made here; `templates/beam_runner.py.j2` only prints. The module's `build(job)` has
one statement per node, each a transform labelled with the node's `.pipe` name:

    n_orders = job.pipeline | 'orders' >> ReadSource(job.node('orders'))
    n_big = n_clean | 'big' >> ProcessRecords(job.node('big'), deadletters=True)
    n_big['records'] | 'out' >> WriteRecords(job.node('out'))
    n_big['deadletters'] | 'rejected' >> WriteRecords(job.node('rejected'), dead_letter_input=True)

A node *forwards* dead letters (has a `deadletters` output) when its `on_error` is "deadletter" and it
can fail on records that came down a flow: sources, processors, stages, and sinks with `->` inputs (a
sink's failures on dead-letter entries are never forwarded, as in the local runner). The statements
follow a topological order of the flows plus those dead-letter edges; the checker does not forbid two
sinks that dead-letter into each other, which Beam cannot express, so that is a PlanError here.

Names and values reach the generated source as in plan.py: labels and node names through `repr`,
variables only after an identifier check, config values through `value_code`.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from pipec import __version__
from pipec.compiler.codegen import _environment
from pipec.compiler.model import CheckedNode, CheckedPipeline
from pipec.compiler.plan import ImportLine, NodeEntry, PlanError, _checked_dotted, _Planner, printable

TEMPLATE = "beam_runner.py.j2"

TRANSFORMS = {
    "source": "ReadSource",
    "processor": "ProcessRecords",
    "sink": "WriteRecords",
    "stage": "StageRecords",
    "bulksink": "PublishHandoff",
}


@dataclass(frozen=True)
class Statement:
    """One node's line in `build(job)`: `var = code`, or just `code` when nothing refers to the result."""

    comment: str
    var: str
    code: str


@dataclass(frozen=True)
class BeamRenderModel:
    pipec_version: str
    pipe_file: str  # basename, printable
    pipe_file_code: str
    sha256: str
    pipeline_code: str
    threshold_code: str
    module_file: str  # the generated file's name, printable
    pipe_folder_code: str | None
    runtime_import: str  # `from pipec.runtime import ...`, wrapped when long
    beam_import: str  # `from pipec.runtime.beam import ...`, wrapped when long
    imports: tuple[ImportLine, ...]
    user_imports: tuple[ImportLine, ...]
    nodes: tuple[NodeEntry, ...]
    edges_code: tuple[str, ...]
    statements: tuple[Statement, ...]
    module_name: str


class _BeamPlanner(_Planner):
    """The local planner's naming, imports and NodeSpec entries, plus the Beam graph statements."""

    def forwards(self, node: CheckedNode) -> bool:
        if node.options.on_error != "deadletter" or not node.options.deadletter:
            return False
        if node.role == "sink":
            return bool(self.pipeline.predecessors(node.name))
        return node.role in ("source", "processor", "stage")

    def dead_letter_sources(self, name: str) -> list[str]:
        return [n.name for n in self.pipeline.nodes if self.forwards(n) and n.options.deadletter == name]

    def order(self) -> list[CheckedNode]:
        """Topological over `->`, `=>` and forwarded dead letters; ties in the checker's node order."""
        nodes = self.pipeline.nodes
        index = {n.name: i for i, n in enumerate(nodes)}
        after: dict[str, set[str]] = {n.name: set() for n in nodes}
        for edge in self.pipeline.edges:
            after[edge.source].add(edge.target)
        for node in nodes:
            if self.forwards(node) and node.options.deadletter in after:
                after[node.name].add(node.options.deadletter)
        waiting = {n.name: 0 for n in nodes}
        for targets in after.values():
            for target in targets:
                waiting[target] += 1
        ready = [index[name] for name, count in waiting.items() if count == 0]
        heapq.heapify(ready)
        ordered: list[CheckedNode] = []
        while ready:
            node = nodes[heapq.heappop(ready)]
            ordered.append(node)
            for target in after[node.name]:
                waiting[target] -= 1
                if waiting[target] == 0:
                    heapq.heappush(ready, index[target])
        if len(ordered) != len(nodes):
            stuck = sorted((n for n in waiting if waiting[n]), key=index.__getitem__)
            raise PlanError(
                "the Beam target cannot run dead letters in a circle (nodes "
                + ", ".join(repr(n) for n in stuck)
                + " dead-letter into each other); point one of them at another sink"
            )
        return ordered

    def main_ref(self, name: str) -> str:
        node = self.pipeline.node(name)
        if self.forwards(node):
            return f"{self.var(name)}[{'handoff' if node.role == 'stage' else 'records'!r}]"
        return self.var(name)

    def statement(self, node: CheckedNode, referenced: set[str]) -> Statement:
        name = node.name
        label = repr(name)
        args = [f"job.node({label})"]
        if self.forwards(node):
            args.append("deadletters=True")
        if node.role == "bulksink":
            stage = self.pipeline.predecessors(name, "=>")[0]
            inputs = [self.main_ref(stage)]
        else:
            inputs = [self.main_ref(p) for p in self.pipeline.predecessors(name)]
            dead_letters = [f"{self.var(s)}['deadletters']" for s in self.dead_letter_sources(name)]
            inputs += dead_letters
            if dead_letters:
                args.append("dead_letter_input=True")
        if node.role == "source" or not inputs:
            source = "job.pipeline"
        elif len(inputs) == 1:
            source = inputs[0]
        else:
            source = "(" + ", ".join(inputs) + ")"
        code = f"{source} | {label} >> {TRANSFORMS[node.role]}({', '.join(args)})"
        return Statement(self.comment(node), self.var(name) if name in referenced else "", code)

    def build_beam(self) -> BeamRenderModel:
        self.assign_vars()
        checked = self.pipeline
        ordered = self.order()
        referenced = {e.source for e in checked.edges}
        referenced |= {n.name for n in checked.nodes if self.forwards(n)}
        statements = tuple(self.statement(n, referenced) for n in ordered)
        imports, user_imports = self.imports()
        beam_names = {"BeamJob", "BeamSpec", "beam_main"} | {TRANSFORMS[n.role] for n in checked.nodes}
        runtime_names = {"Env", "NodeSpec", "Secret"} | ({"add_pipe_folder"} if user_imports else set())
        return BeamRenderModel(
            pipec_version=__version__,
            pipe_file=printable(self.pipe_name),
            pipe_file_code=repr(self.pipe_name),
            sha256=checked.sha256,
            pipeline_code=repr(checked.name),
            threshold_code=repr(float(checked.threshold)),
            module_file=printable(f"{checked.name}_beam.py"),
            pipe_folder_code=self.pipe_folder_code() if user_imports else None,
            runtime_import=_from_import("pipec.runtime", runtime_names),
            beam_import=_from_import("pipec.runtime.beam", beam_names),
            imports=imports,
            user_imports=user_imports,
            nodes=tuple(self.node_entry(n) for n in checked.nodes),
            edges_code=tuple(f"({e.source!r}, {e.target!r}, {e.kind!r})" for e in checked.edges),
            statements=statements,
            module_name=_checked_dotted(checked.name),
        )


def _import_order(name: str) -> tuple[bool, str]:
    """isort's order inside one `from` import: CONSTANTS and Classes (case-sensitively), then functions."""
    return (name[:1].islower(), name)


def _from_import(module: str, names: set[str]) -> str:
    ordered = sorted(names, key=_import_order)
    line = f"from {module} import {', '.join(ordered)}"
    if len(line) <= 110:
        return line
    return f"from {module} import (\n" + "".join(f"    {name},\n" for name in ordered) + ")"


def plan_beam(pipeline: CheckedPipeline, pipe_path: str, out_dir: str) -> BeamRenderModel:
    """The render model of one checked pipeline's Beam module, to be written into `out_dir`."""
    return _BeamPlanner(pipeline, out_dir, pipe_path).build_beam()


def beam_runner_source(pipeline: CheckedPipeline, pipe_path: str, out_dir: str) -> str:
    """The generated Beam module's source text (deterministic: no timestamps, no absolute paths)."""
    model = plan_beam(pipeline, pipe_path, out_dir)
    source = _environment().get_template(TEMPLATE).render(m=model)
    compile(source, f"<pipec beam module {model.module_name}>", "exec")  # must at least be valid Python
    return source


__all__ = ["BeamRenderModel", "Statement", "beam_runner_source", "plan_beam"]
