"""The AST of a `.pipe` file: frozen dataclasses, each carrying the span it came from.

`parse.py` is the only producer; everything after it (graph, checks, plan) reads these types and never
sees a lark object. Lines and columns are 1-based; `end_col` is exclusive (one past the last character).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ROLES: tuple[str, ...] = ("source", "processor", "sink", "stage", "bulksink")
Role = Literal["source", "processor", "sink", "stage", "bulksink"]
ArrowKind = Literal["->", "=>"]


@dataclass(frozen=True)
class Span:
    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


# --------------------------------------------------------------------------------------------- values
@dataclass(frozen=True)
class StringValue:
    value: str
    span: Span


@dataclass(frozen=True)
class IntValue:
    value: int
    span: Span


@dataclass(frozen=True)
class FloatValue:
    value: float
    span: Span


@dataclass(frozen=True)
class BoolValue:
    value: bool
    span: Span


@dataclass(frozen=True)
class NullValue:
    span: Span


@dataclass(frozen=True)
class DurationValue:
    """`200ms`, `5s`, `2m`, `1h`; `text` is the literal as written."""

    seconds: float
    text: str
    span: Span


@dataclass(frozen=True)
class PercentValue:
    """`95%`: `fraction` is 0.95."""

    fraction: float
    text: str
    span: Span


@dataclass(frozen=True)
class RefValue:
    """A bare name: a reference to a node (only meaningful where an option expects one)."""

    name: str
    span: Span


@dataclass(frozen=True)
class EnvValue:
    """`env("VAR")` or `env("VAR", default = "...")`, resolved when the runner starts."""

    var: str
    default: Value | None
    span: Span


@dataclass(frozen=True)
class SecretValue:
    """`secret("VAR")`: resolved when the runner starts; its value is never printed anywhere."""

    var: str
    span: Span


@dataclass(frozen=True)
class ListValue:
    items: tuple[Value, ...]
    span: Span


@dataclass(frozen=True)
class MapValue:
    entries: tuple[Pair, ...]
    span: Span


Value = (
    StringValue
    | IntValue
    | FloatValue
    | BoolValue
    | NullValue
    | DurationValue
    | PercentValue
    | RefValue
    | EnvValue
    | SecretValue
    | ListValue
    | MapValue
)


@dataclass(frozen=True)
class Pair:
    """`key = value` inside a config block, an options block, a map or a pipeline setting."""

    key: str
    key_span: Span
    value: Value
    span: Span


# ------------------------------------------------------------------------------------- declarations
@dataclass(frozen=True)
class UseDecl:
    """`use module.path as alias`."""

    module: str
    module_span: Span
    alias: str
    alias_span: Span
    span: Span


@dataclass(frozen=True)
class NodeDecl:
    """`ROLE NAME : TYPE [{ config }] [with { options }]`.

    `type_name` is a built-in name (`csv`) or `alias.Name`. `config` / `options` are empty tuples when the
    block is absent; `config_span` / `options_span` are then None.
    """

    role: Role
    role_span: Span
    name: str
    name_span: Span
    type_name: str
    type_span: Span
    config: tuple[Pair, ...]
    config_span: Span | None
    options: tuple[Pair, ...]
    options_span: Span | None
    span: Span


@dataclass(frozen=True)
class FlowStep:
    """One node name in a flow line, with the arrow that leads *into* it (None for the first step)."""

    name: str
    span: Span
    arrow: ArrowKind | None
    arrow_span: Span | None


@dataclass(frozen=True)
class Flow:
    """`a -> b -> c` or `stage => bulk`; always at least two steps."""

    steps: tuple[FlowStep, ...]
    span: Span


@dataclass(frozen=True)
class Pipeline:
    name: str
    name_span: Span
    settings: tuple[Pair, ...]
    nodes: tuple[NodeDecl, ...]
    flows: tuple[Flow, ...]
    span: Span


@dataclass(frozen=True)
class PipeFile:
    path: str
    text: str
    uses: tuple[UseDecl, ...]
    pipelines: tuple[Pipeline, ...]
