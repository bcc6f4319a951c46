"""Rules about the graph's shape (P3xx): who may feed whom, stage => bulksink pairing, cycles,
reachability, and dead-letter routes (DESIGN §1, graph rules 2 to 6)."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

import networkx as nx

from pipec.compiler import ast
from pipec.compiler.checks_base import PipelineContext, PipelineRule
from pipec.compiler.diagnostics import Diagnostic, Note, did_you_mean

SOURCE_WITH_INPUT = "P301"
EMITS_DOWNSTREAM = "P302"
PROCESSOR_FED_BY_OUTPUT = "P303"
BAD_HANDOFF = "P304"
BULKSINK_FED_BY_FLOW = "P305"
BULKSINK_STAGES = "P306"
STAGE_BULKSINKS = "P307"
CYCLE = "P308"
NO_SOURCE = "P309"
NOT_ON_PATH = "P310"
UNUSED_NODE = "P311"
NO_SINK = "P312"
BAD_DEADLETTER = "P313"
DEADLETTER_MISSING = "P314"
DEADLETTER_UNUSED = "P315"
DEADLETTER_LOOP = "P316"

OUTPUT_ROLES = ("sink", "stage", "bulksink")  # roles that emit nothing downstream with `->`
TERMINAL_ROLES = ("sink", "bulksink")
MAX_CYCLES = 20  # a dense graph can hold exponentially many cycles; the first ones make the point


def _declared_here(ctx: PipelineContext, name: str) -> Note:
    decl = ctx.decls[name]
    return Note(f"'{name}' is declared as a {decl.role} here", decl.name_span)


def source_inputs(ctx: PipelineContext) -> Iterator[Diagnostic]:
    for arrow in ctx.arrows:
        if ctx.role(arrow.target) == "source":
            yield Diagnostic(
                SOURCE_WITH_INPUT,
                "error",
                f"source '{arrow.target}' cannot take inputs, but '{arrow.source}' feeds it",
                arrow.span,
                (_declared_here(ctx, arrow.target),),
                f"remove the arrow into '{arrow.target}', or declare it as a processor",
            )


def flow_out_of_outputs(ctx: PipelineContext) -> Iterator[Diagnostic]:
    """`->` out of a sink, stage or bulksink (into a bulksink or source, other rules speak)."""
    for arrow in ctx.arrows:
        role, target_role = ctx.role(arrow.source), ctx.role(arrow.target)
        if arrow.kind != "->" or role not in OUTPUT_ROLES or target_role in ("bulksink", "source"):
            continue
        hint = (
            f"a stage hands off only to its bulksink, with `{arrow.source} => BULKSINK`"
            if role == "stage"
            else f"feed '{arrow.target}' from a source or processor instead"
        )
        if target_role == "processor":
            yield Diagnostic(
                PROCESSOR_FED_BY_OUTPUT,
                "error",
                f"processor '{arrow.target}' is fed by {role} '{arrow.source}', which emits no records",
                arrow.span,
                (_declared_here(ctx, arrow.source),),
                hint,
            )
        else:
            yield Diagnostic(
                EMITS_DOWNSTREAM,
                "error",
                f"{role} '{arrow.source}' emits no records, so it cannot feed '{arrow.target}' with '->'",
                arrow.span,
                (_declared_here(ctx, arrow.source),),
                hint,
            )


def bad_handoffs(ctx: PipelineContext) -> Iterator[Diagnostic]:
    for arrow in ctx.arrows:
        role, target_role = ctx.role(arrow.source), ctx.role(arrow.target)
        if arrow.kind != "=>" or role is None or target_role is None:
            continue
        if role == "stage" and target_role == "bulksink":
            continue
        hint = (
            f"use '->': `{arrow.source} -> {arrow.target}`"
            if target_role != "bulksink" and role != "stage"
            else "`=>` hands a stage's output to a bulksink: `STAGE => BULKSINK`"
        )
        yield Diagnostic(
            BAD_HANDOFF,
            "error",
            f"'=>' goes only from a stage to a bulksink, not from {role} '{arrow.source}' "
            f"to {target_role} '{arrow.target}'",
            arrow.arrow_span,
            suggestion=hint,
        )


def bulksink_flows(ctx: PipelineContext) -> Iterator[Diagnostic]:
    """`->` into a bulksink that has a stage, or from a stage (a bulksink with no stage at all: P306)."""
    has_stage = {t for _, t, _ in _handoffs(ctx)}
    for arrow in ctx.arrows:
        if arrow.kind != "->" or ctx.role(arrow.target) != "bulksink":
            continue
        if ctx.role(arrow.source) == "stage":
            hint = f"hand off with '=>': `{arrow.source} => {arrow.target}`"
        elif arrow.target in has_stage:
            hint = f"feed its stage instead of '{arrow.target}' itself"
        else:
            continue
        yield Diagnostic(
            BULKSINK_FED_BY_FLOW,
            "error",
            f"bulksink '{arrow.target}' takes no records with '->'; it publishes what a stage hands it",
            arrow.span,
            suggestion=hint,
        )


def _handoffs(ctx: PipelineContext) -> list[tuple[str, str, ast.Span]]:
    return [
        (a.source, a.target, a.span)
        for a in ctx.arrows
        if a.kind == "=>" and ctx.role(a.source) == "stage" and ctx.role(a.target) == "bulksink"
    ]


def _stage_flows_into_bulksink(ctx: PipelineContext, stage: str | None, bulksink: str | None) -> bool:
    """A `stage -> bulksink` arrow (P305 already says to write `=>`), matching the names given."""
    return any(
        a.kind == "->"
        and ctx.role(a.source) == "stage"
        and ctx.role(a.target) == "bulksink"
        and stage in (None, a.source)
        and bulksink in (None, a.target)
        for a in ctx.arrows
    )


def bulksink_stages(ctx: PipelineContext) -> Iterator[Diagnostic]:
    handoffs = _handoffs(ctx)
    for name, decl in ctx.decls.items():
        if decl.role != "bulksink" or name not in ctx.flow_names:
            continue  # an unused node gets P311 instead
        feeding = [(s, span) for s, t, span in handoffs if t == name]
        if not feeding and not _stage_flows_into_bulksink(ctx, None, name):
            fed_by = [a for a in ctx.arrows if a.kind == "->" and a.target == name]
            upstream = fed_by[0].source if fed_by else "..."
            yield Diagnostic(
                BULKSINK_STAGES,
                "error",
                f"bulksink '{name}' has no stage feeding it",
                decl.name_span,
                tuple(Note(f"'{a.source}' feeds it with '->' here", a.span) for a in fed_by),
                f"add a stage and hand it off: `stage NAME : TYPE {{ ... }}` and "
                f"`{upstream} -> NAME => {name}`",
            )
        elif len(feeding) > 1:
            yield Diagnostic(
                BULKSINK_STAGES,
                "error",
                f"bulksink '{name}' is fed by {len(feeding)} stages; it takes exactly one",
                decl.name_span,
                tuple(Note(f"'{s}' hands off to it here", span) for s, span in feeding),
                "feed one stage from every flow that should reach it, and hand off only that stage",
            )


def stage_bulksinks(ctx: PipelineContext) -> Iterator[Diagnostic]:
    handoffs = _handoffs(ctx)
    for name, decl in ctx.decls.items():
        if decl.role != "stage" or name not in ctx.flow_names:
            continue
        fed = [(t, span) for s, t, span in handoffs if s == name]
        if not fed and not _stage_flows_into_bulksink(ctx, name, None):
            yield Diagnostic(
                STAGE_BULKSINKS,
                "error",
                f"stage '{name}' hands off to no bulksink",
                decl.name_span,
                suggestion=f"hand it off to the bulksink that publishes it: `{name} => BULKSINK`",
            )
        elif len(fed) > 1:
            yield Diagnostic(
                STAGE_BULKSINKS,
                "error",
                f"stage '{name}' hands off to {len(fed)} bulksinks; it feeds exactly one",
                decl.name_span,
                tuple(Note(f"hands off to '{t}' here", span) for t, span in fed),
                "give each bulksink its own stage",
            )


def cycles(ctx: PipelineContext) -> Iterator[Diagnostic]:
    graph = ctx.graph
    order = nx.get_node_attributes(graph, "order")
    found: set[tuple[str, ...]] = set()
    # Only processors can form a cycle that no other rule reports: any other node on it has an arrow
    # in (a source, P301) or out (a sink, stage or bulksink, P302/P303/P305) already reported, or is
    # undeclared (P102); a second error for the same arrow would only repeat it.
    processors = [n for n in graph if ctx.role(n) == "processor"]
    for cycle in islice(nx.simple_cycles(graph.subgraph(processors)), MAX_CYCLES):
        start = min(range(len(cycle)), key=lambda i: order[cycle[i]])
        found.add(tuple(cycle[start:] + cycle[:start]))
    for cycle in sorted(found, key=lambda c: [order[n] for n in c]):
        steps = [*cycle, cycle[0]]
        edges = [graph.edges[u, v] for u, v in zip(steps, steps[1:])]
        path = steps[0] + "".join(f" {e['kind']} {v}" for e, v in zip(edges, steps[1:]))
        last = f"{steps[-2]} {edges[-1]['kind']} {steps[-1]}"
        yield Diagnostic(
            CYCLE,
            "error",
            f"cycle: {path}",
            edges[0]["span"],
            tuple(Note(f"{u} {e['kind']} {v}", e["span"]) for u, v, e in zip(steps, steps[1:], edges)),
            f"records cannot flow in a circle; remove one of these arrows (for instance `{last}`)",
        )


def _has_role(ctx: PipelineContext, roles: tuple[str, ...]) -> bool:
    return any(decl.role in roles for decl in ctx.pipeline.nodes)


def no_source(ctx: PipelineContext) -> Iterator[Diagnostic]:
    if not _has_role(ctx, ("source",)):
        yield Diagnostic(
            NO_SOURCE,
            "error",
            f"pipeline '{ctx.pipeline.name}' has no source",
            ctx.pipeline.name_span,
            suggestion="declare where records come from: `source NAME : TYPE { ... }`",
        )


def no_sink(ctx: PipelineContext) -> Iterator[Diagnostic]:
    if not _has_role(ctx, TERMINAL_ROLES):
        yield Diagnostic(
            NO_SINK,
            "error",
            f"pipeline '{ctx.pipeline.name}' has no sink or bulksink",
            ctx.pipeline.name_span,
            suggestion="declare where records go: `sink NAME : TYPE { ... }`",
        )


def _reach(graph: nx.DiGraph, starts: list[str], reverse: bool) -> set[str]:
    """Every node reachable from `starts` (following edges backwards when `reverse`)."""
    seen = set(starts)
    todo = list(starts)
    step = graph.predecessors if reverse else graph.successors
    while todo:
        for nxt in step(todo.pop()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def off_path(ctx: PipelineContext) -> Iterator[Diagnostic]:
    """Every node must lie on a path from a source to a sink or bulksink (else its work is lost).

    A stage counts as an end (P307 speaks when it hands off to nothing) and a bulksink as a start
    (P306 speaks when no stage feeds it); an undeclared name counts as both (P102 speaks), so that
    one mistake is reported once.
    """
    if not (_has_role(ctx, ("source",)) and _has_role(ctx, TERMINAL_ROLES)):
        return  # P309 / P312 say it once for the whole pipeline
    graph = ctx.graph
    roles = {name: ctx.role(name) for name in graph}
    fed = _reach(graph, [n for n, r in roles.items() if r in ("source", "bulksink", None)], reverse=False)
    drained = _reach(
        graph, [n for n, r in roles.items() if r in ("sink", "stage", "bulksink", None)], reverse=True
    )
    for name, decl in ctx.decls.items():
        if name not in ctx.flow_names or name in ctx.deadletter_sinks:
            continue  # unused nodes get P311; dead-letter sinks are fed by their nodes' failures
        problems = []
        if name not in fed:
            problems.append("no source feeds it")
        if name not in drained:
            problems.append("its records reach no sink or bulksink")
        if not problems:
            continue
        if len(problems) == 2:
            hint = "connect it, or remove it"
        elif name not in fed:
            hint = f"feed it: `SOURCE -> {name}`"
        else:
            hint = f"connect it: `{name} -> SINK`"
        yield Diagnostic(
            NOT_ON_PATH,
            "error",
            f"{decl.role} '{name}' is not on any path from a source to a sink or bulksink: "
            + " and ".join(problems),
            decl.name_span,
            suggestion=hint,
        )


def unused_nodes(ctx: PipelineContext) -> Iterator[Diagnostic]:
    for name, decl in ctx.decls.items():
        if name in ctx.flow_names or name in ctx.deadletter_sinks or name in ctx.probably_meant:
            continue
        yield Diagnostic(
            UNUSED_NODE,
            "warning",
            f"{decl.role} '{name}' is declared but no flow uses it",
            decl.name_span,
            suggestion=f"connect it in a flow ({_connection(decl.role, name)}), or remove it",
        )


def _connection(role: str, name: str) -> str:
    """A flow that would use a node of `role`, as an example for the fix."""
    return {
        "source": f"`{name} -> ...`",
        "stage": f"`... -> {name} => BULKSINK`",
        "bulksink": f"`... -> STAGE => {name}`",
    }.get(role, f"`... -> {name}`")


def _option_pair(decl: ast.NodeDecl, key: str) -> ast.Pair | None:
    return next((p for p in decl.options if p.key == key), None)


def deadletter_targets(ctx: PipelineContext) -> Iterator[Diagnostic]:
    sinks = [n for n, d in ctx.decls.items() if d.role == "sink"]
    for decl, (options, _) in zip(ctx.pipeline.nodes, ctx.options):
        pair = _option_pair(decl, "deadletter")
        target = options.deadletter
        if target is None or pair is None:
            # A `deadletter` written wrongly (a string, a number) already has its P210 at the value.
            if options.on_error == "deadletter" and pair is None:
                on_error = _option_pair(decl, "on_error")
                yield Diagnostic(
                    DEADLETTER_MISSING,
                    "error",
                    f"{decl.role} '{decl.name}' sends failed records to a dead-letter sink but names none",
                    on_error.span if on_error else decl.name_span,
                    suggestion="add `deadletter = SINK` to its options",
                )
            continue
        on_error = _option_pair(decl, "on_error")
        misspelt = on_error is not None and not (  # then P210 speaks; which policy was meant is unknown
            isinstance(on_error.value, ast.StringValue) and on_error.value.value == options.on_error
        )
        if options.on_error != "deadletter" and not misspelt:
            yield Diagnostic(
                DEADLETTER_UNUSED,
                "warning",
                f"'deadletter' has no effect: on_error is \"{options.on_error}\"",
                pair.key_span,
                suggestion='add `on_error = "deadletter"`, or remove `deadletter`',
            )
        role = ctx.role(target)
        if role is None:
            message = f"dead-letter sink '{target}' is not declared"
            hint = did_you_mean(target, sinks) or f"declare it: `sink {target} : TYPE {{ ... }}`"
        elif role != "sink":
            message = f"dead-letter target '{target}' is a {role}; failed records go to a sink"
            hint = did_you_mean(target, sinks) or "name a sink"
        elif target == decl.name:
            message = f"sink '{target}' cannot be its own dead-letter sink"
            hint = "name another sink"
        else:
            continue
        yield Diagnostic(BAD_DEADLETTER, "error", message, pair.value.span, suggestion=hint)


def deadletter_loops(ctx: PipelineContext) -> Iterator[Diagnostic]:
    """Sinks that dead-letter into each other would pass a failing record around forever."""
    routes = nx.DiGraph()
    spans: dict[str, ast.Span] = {}
    for decl in ctx.pipeline.nodes:
        target = ctx.options_by_name[decl.name].deadletter
        if decl.role == "sink" and target and target != decl.name and ctx.role(target) == "sink":
            routes.add_edge(decl.name, target)
            pair = _option_pair(decl, "deadletter")
            spans[decl.name] = pair.value.span if pair else decl.name_span
    loops = []
    for cycle in islice(nx.simple_cycles(routes), MAX_CYCLES):
        start = cycle.index(min(cycle))
        loops.append(cycle[start:] + cycle[:start])
    for cycle in sorted(loops):
        path = " -> ".join([*cycle, cycle[0]])
        yield Diagnostic(
            DEADLETTER_LOOP,
            "error",
            f"dead-letter sinks form a loop: {path}",
            spans[cycle[0]],
            tuple(Note(f"'{n}' dead-letters here", spans[n]) for n in cycle[1:]),
            "let one of them fail or skip instead of dead-lettering",
        )


RULES: tuple[PipelineRule, ...] = (
    source_inputs,
    flow_out_of_outputs,
    bad_handoffs,
    bulksink_flows,
    bulksink_stages,
    stage_bulksinks,
    cycles,
    no_source,
    no_sink,
    off_path,
    unused_nodes,
    deadletter_targets,
    deadletter_loops,
)
