"""Per-node counts and the run's state.

The generated loop counts only what it must: records each source emits, records each processor
filtered (and, for flat-mapping processors, records emitted). Failures and retries are counted by the
node's `NodeRuntime` off the hot path. Everything else follows from the graph:

    in(source)    = emitted + failed (rejected input)         out(source) = emitted
    in(node)      = sum of out(p) over its `->` predecessors (+ dead-letter entries it received)
    out(processor)= in - filtered - failed                    (flat-mapping: out = records emitted)
    out(sink/stage) = in - failed
    in(bulksink)  = out(its stage); out = in when publish succeeded, else failed = in

so in = out + filtered + failed holds for every node except flat-mapping processors, where `in` counts
inputs and `out` counts outputs (see docs/runtime.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

State = Literal["success", "partial", "failed"]


@dataclass
class NodeCounts:
    name: str
    role: str
    type_name: str
    location: str
    emits_many: bool = False
    records_in: int = 0
    records_out: int = 0
    filtered: int = 0
    failed: int = 0
    retried: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    ran: bool = True  # False: the run stopped before this node could run (its success rate is unknown)

    @property
    def success_rate(self) -> float:
        if self.records_in == 0:
            return 1.0
        return (self.records_in - self.failed) / self.records_in

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "type": self.type_name,
            "location": self.location,
            "in": self.records_in,
            "out": self.records_out,
            "filtered": self.filtered,
            "failed": self.failed,
            "retried": self.retried,
            "seconds": round(self.seconds, 6),
            "success_rate": round(self.success_rate, 6) if self.ran else None,
            "flat_map": self.emits_many,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class NodeFacts:
    """What the counting needs to know about one node."""

    name: str
    role: str
    emits_many: bool
    inputs: tuple[str, ...]  # `->` predecessors
    stage: str | None = None  # for a bulksink: the stage that feeds it with `=>`


@dataclass(frozen=True)
class RuntimeCounts:
    """What a NodeRuntime counted off the hot path."""

    failed: int = 0
    retried: int = 0
    deadletters_received: int = 0


def derive_counts(
    facts: Sequence[NodeFacts],
    loop_counts: Mapping[str, tuple[int, int]],
    runtime_counts: Mapping[str, RuntimeCounts],
    published: Mapping[str, bool | None],
    base: Mapping[str, NodeCounts],
    not_published: Mapping[str, str] | None = None,
) -> list[NodeCounts]:
    """Fill in/out/filtered/failed for every node, in topological order (`facts` is in that order).

    `loop_counts[name]` is (emitted, filtered) from the generated loop; `published[bulksink]` is True,
    False (publish raised) or None (never attempted; `not_published[bulksink]` may say why).
    """
    result: dict[str, NodeCounts] = {}
    for fact in facts:
        node = base[fact.name]
        emitted, filtered = loop_counts.get(fact.name, (0, 0))
        rt = runtime_counts.get(fact.name, RuntimeCounts())
        node.failed, node.retried = rt.failed, rt.retried
        if fact.role == "source":
            node.records_in = emitted + rt.failed
            node.records_out = emitted
        elif fact.role == "bulksink":
            staged = result[fact.stage].records_out if fact.stage in result else 0
            outcome = published.get(fact.name)
            if outcome is None:
                node.records_in, node.records_out = 0, 0
                why = (not_published or {}).get(fact.name)
                if why:
                    node.notes.append(f"not published: {staged} staged records were not loaded because {why}")
                elif staged:
                    node.notes.append(f"publish not attempted: {staged} staged records were not loaded")
            else:
                node.records_in = staged
                node.failed = 0 if outcome else staged
                node.records_out = staged if outcome else 0
        else:
            received = sum(result[p].records_out for p in fact.inputs if p in result)
            node.records_in = received + rt.deadletters_received
            if fact.role == "processor":
                node.filtered = filtered
                if fact.emits_many:
                    node.records_out = emitted
                else:
                    node.records_out = node.records_in - filtered - rt.failed
            else:
                node.records_out = node.records_in - rt.failed
        result[fact.name] = node
    return [result[f.name] for f in facts]


def run_state(nodes: Sequence[NodeCounts], threshold: float, aborted: bool) -> State:
    """success: nothing failed. partial: failures, but every node's success rate >= threshold.
    failed: the run stopped, or any node fell below the threshold (the minimum, not the mean)."""
    if aborted:
        return "failed"
    if all(n.failed == 0 for n in nodes):
        return "success"
    lowest = min((n.success_rate for n in nodes), default=1.0)
    return "partial" if meets(lowest, threshold) else "failed"


def meets(rate: float, threshold: float) -> bool:
    """rate >= threshold, without float noise: 99.9% is written 0.9990000000000001, and a node that
    kept 999 of 1000 records (0.999) meets it."""
    return rate >= threshold - 1e-9


def threshold_shortfall(nodes: Sequence[NodeCounts], threshold: float) -> str | None:
    """Why the run is below its threshold (its lowest node, in words), or None when it is not."""
    lowest = min((n for n in nodes if n.ran), key=lambda n: n.success_rate, default=None)
    if lowest is None or meets(lowest.success_rate, threshold):
        return None
    return (
        f"node '{lowest.name}' kept {100 * lowest.success_rate:.1f}% of its records, below the threshold"
        f" {100 * threshold:g}%"
    )


EXIT_CODES: Mapping[State, int] = {"success": 0, "partial": 0, "failed": 1}
