"""A pipeline as a `networkx.DiGraph`, and its renderings for `pipec graph` (dot, mermaid, json).

Node ids are the node names. Node attributes: `role`, `type`, `span` (the declaration), `decl`,
`order` (declaration index) and `declared` (False for a name a flow uses but nothing declares: it stays
in the graph so that one typo does not make every node around it look disconnected). Edge attributes:
`kind` (`->` or `=>`), `span` (from the first name to the second), `arrow_span`, `source_span`,
`target_span`. An edge written on several flow lines is one edge; the first occurrence's spans are kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import networkx as nx

from pipec.compiler import ast
from pipec.compiler.model import CheckedPipeline, EdgeKind


@dataclass(frozen=True)
class Arrow:
    """One `a -> b` (or `a => b`) as written in a flow line."""

    source: str
    target: str
    kind: EdgeKind
    span: ast.Span  # from the start of `a` to the end of `b`
    arrow_span: ast.Span
    source_span: ast.Span
    target_span: ast.Span


def _joined(start: ast.Span, end: ast.Span) -> ast.Span:
    return ast.Span(start.file, start.line, start.col, end.end_line, end.end_col)


def arrows(pipeline: ast.Pipeline) -> Iterator[Arrow]:
    """Every arrow of every flow line, in source order (repeats included)."""
    for flow in pipeline.flows:
        for prev, step in zip(flow.steps, flow.steps[1:]):
            kind: EdgeKind = step.arrow or "->"
            arrow_span = step.arrow_span or step.span
            yield Arrow(
                prev.name, step.name, kind, _joined(prev.span, step.span), arrow_span, prev.span, step.span
            )


def build_graph(pipeline: ast.Pipeline) -> nx.DiGraph:
    """The pipeline's flow graph (see the module docstring for the attributes)."""
    graph = nx.DiGraph(name=pipeline.name)
    for index, decl in enumerate(pipeline.nodes):
        if decl.name in graph:
            continue  # a duplicate declaration (reported as P101): the first one is the node
        graph.add_node(
            decl.name,
            role=decl.role,
            type=decl.type_name,
            span=decl.span,
            decl=decl,
            order=index,
            declared=True,
        )
    order = len(pipeline.nodes)
    for arrow in arrows(pipeline):
        for name, span in ((arrow.source, arrow.source_span), (arrow.target, arrow.target_span)):
            if name not in graph:
                graph.add_node(name, role=None, type=None, span=span, decl=None, order=order, declared=False)
                order += 1
        if graph.has_edge(arrow.source, arrow.target):
            continue
        graph.add_edge(
            arrow.source,
            arrow.target,
            kind=arrow.kind,
            span=arrow.span,
            arrow=arrow,
            arrow_span=arrow.arrow_span,
            source_span=arrow.source_span,
            target_span=arrow.target_span,
        )
    return graph


def distinct_arrows(pipeline: ast.Pipeline) -> list[Arrow]:
    """Each (source, target, kind) once, at its first occurrence: what per-arrow rules look at.

    Unlike the graph's edges this keeps `a -> b` and `a => b` apart, so neither hides the other.
    """
    seen: dict[tuple[str, str, str], Arrow] = {}
    for arrow in arrows(pipeline):
        seen.setdefault((arrow.source, arrow.target, arrow.kind), arrow)
    return list(seen.values())


# -------------------------------------------------------------------------------------- renderings
def _display_order(checked: CheckedPipeline) -> list[str]:
    """Topological, ties by name: independent of the order of declarations in the file."""
    graph = nx.DiGraph()
    graph.add_nodes_from(n.name for n in checked.nodes)
    graph.add_edges_from((e.source, e.target) for e in checked.edges)
    return list(nx.lexicographical_topological_sort(graph, key=str))


def _sorted_edges(checked: CheckedPipeline) -> list[tuple[str, str, str]]:
    return sorted((e.source, e.target, e.kind) for e in checked.edges)


def graph_json(checked: CheckedPipeline) -> dict[str, Any]:
    """The canonical description: nodes sorted by name, edges sorted, no positions."""
    nodes = []
    for node in sorted(checked.nodes, key=lambda n: n.name):
        entry: dict[str, Any] = {
            "name": node.name,
            "role": node.role,
            "type": node.resolved.type_name,
            "implementation": f"{node.resolved.module}:{node.resolved.attribute}",
        }
        if node.options.deadletter is not None:
            entry["deadletter"] = node.options.deadletter
        nodes.append(entry)
    edges = [{"source": s, "target": t, "kind": k} for s, t, k in _sorted_edges(checked)]
    return {"pipeline": checked.name, "threshold": checked.threshold, "nodes": nodes, "edges": edges}


def render_json(checked: CheckedPipeline) -> str:
    return json.dumps(graph_json(checked), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


_DOT_SHAPES = {
    "source": "invhouse",
    "processor": "box",
    "sink": "house",
    "stage": "folder",
    "bulksink": "cylinder",
}


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_dot(checked: CheckedPipeline) -> str:
    """Graphviz: `dot -Tsvg`. `=>` edges are bold; dead-letter routes are dashed."""
    lines = [f"digraph {_dot_quote(checked.name)} {{", "    rankdir=LR;", '    node [fontname="Helvetica"];']
    by_name = {n.name: n for n in checked.nodes}
    for name in _display_order(checked):
        node = by_name[name]
        label = f"{name}\\n{node.role}: {node.resolved.type_name}"
        lines.append(f'    {_dot_quote(name)} [label="{label}", shape={_DOT_SHAPES[node.role]}];')
    for source, target, kind in _sorted_edges(checked):
        style = ' [style=bold, label="=>"]' if kind == "=>" else ""
        lines.append(f"    {_dot_quote(source)} -> {_dot_quote(target)}{style};")
    for node in sorted(checked.nodes, key=lambda n: n.name):
        if node.options.deadletter is not None:
            lines.append(
                f"    {_dot_quote(node.name)} -> {_dot_quote(node.options.deadletter)}"
                ' [style=dashed, label="deadletter"];'
            )
    lines.append("}")
    return "\n".join(lines) + "\n"


_MERMAID_SHAPES = {
    "source": ("([", "])"),
    "processor": ("[", "]"),
    "sink": ("[/", "/]"),
    "stage": ("[(", ")]"),
    "bulksink": ("[(", ")]"),
}


def render_mermaid(checked: CheckedPipeline) -> str:
    """A Mermaid flowchart. Ids are prefixed (`n_`) because names like `end` are Mermaid keywords."""
    lines = ["flowchart LR"]
    by_name = {n.name: n for n in checked.nodes}
    for name in _display_order(checked):
        node = by_name[name]
        open_, close = _MERMAID_SHAPES[node.role]
        label = f"{name}<br/>{node.role}: {node.resolved.type_name}".replace('"', "#quot;")
        lines.append(f'    n_{name}{open_}"{label}"{close}')
    for source, target, kind in _sorted_edges(checked):
        arrow = "==>" if kind == "=>" else "-->"
        lines.append(f"    n_{source} {arrow} n_{target}")
    for node in sorted(checked.nodes, key=lambda n: n.name):
        if node.options.deadletter is not None:
            lines.append(f"    n_{node.name} -. deadletter .-> n_{node.options.deadletter}")
    return "\n".join(lines) + "\n"


RENDERERS = {"dot": render_dot, "mermaid": render_mermaid, "json": render_json}
