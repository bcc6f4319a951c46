"""AST values as plain Python, how diagnostics describe them, and where a nested value sits.

The checker validates a component's config by handing plain Python to its pydantic `Config`. Durations
become seconds (float) and percentages a fraction (float), the same values the runner passes. `env(...)`
and `secret(...)` are never resolved at compile time: an `env` with a default stands for its default,
anything else is recorded as *unresolved* so that errors located there are not reported.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipec.compiler import ast
from pipec.compiler.diagnostics import Diagnostic, Note

# Diagnostic codes raised while reading values (documented in docs/language.md).
DUPLICATE_KEY = "P403"
REF_NOT_ALLOWED = "P404"
TEXT_FROM_ENV = "P406"

Path = tuple[str | int, ...]

# Stands in for env()/secret() values that have no compile-time value.
UNRESOLVED_PLACEHOLDER = ""


@dataclass
class Converted:
    """The Python form of a block of pairs, plus what could not be known at compile time."""

    value: dict[str, Any]
    unresolved: list[Path] = field(default_factory=list)  # paths holding env()/secret() values
    problems: list[Diagnostic] = field(default_factory=list)  # refs where a value is expected, ...
    invalid: list[Path] = field(default_factory=list)  # paths already reported in `problems`


def pairs_to_python(pairs: Sequence[ast.Pair]) -> Converted:
    """`{ k = v, ... }` as a dict (the first of repeated keys counts)."""
    out = Converted({})
    out.value = _pairs(pairs, (), out)
    return out


def _pairs(pairs: Sequence[ast.Pair], path: Path, out: Converted) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for pair in pairs:
        if pair.key in result:
            continue  # duplicates are reported by `duplicate_keys`; the first one counts
        result[pair.key] = _value(pair.value, (*path, pair.key), out)
    return result


def _value(value: ast.Value, path: Path, out: Converted) -> Any:
    if isinstance(value, (ast.StringValue, ast.IntValue, ast.FloatValue, ast.BoolValue)):
        return value.value
    if isinstance(value, ast.NullValue):
        return None
    if isinstance(value, ast.DurationValue):
        return value.seconds
    if isinstance(value, ast.PercentValue):
        return value.fraction
    if isinstance(value, ast.ListValue):
        return [_value(item, (*path, i), out) for i, item in enumerate(value.items)]
    if isinstance(value, ast.MapValue):
        return _pairs(value.entries, path, out)
    if isinstance(value, ast.EnvValue) and value.default is not None:
        default = value.default
        while isinstance(default, ast.EnvValue) and default.default is not None:
            default = default.default  # env("A", default = env("B", default = v)) is checked with v
        if isinstance(default, (ast.EnvValue, ast.SecretValue, ast.RefValue)):
            out.unresolved.append(path)
            return UNRESOLVED_PLACEHOLDER
        if isinstance(default, (ast.ListValue, ast.MapValue)):
            out.problems.append(
                Diagnostic(
                    TEXT_FROM_ENV,
                    "error",
                    f"'{path_text(path)}': env(\"{value.var}\") gives text when the variable is set, "
                    f"but its default is a {'list' if isinstance(default, ast.ListValue) else 'map'}",
                    value.span,
                    suggestion="write the list or map itself, or use env() for each of its scalar items",
                )
            )
        return _value(default, path, out)
    if isinstance(value, (ast.EnvValue, ast.SecretValue)):
        out.unresolved.append(path)
        return UNRESOLVED_PLACEHOLDER
    # A bare name: a node reference, which no config value can be.
    out.invalid.append(path)
    out.problems.append(
        Diagnostic(
            REF_NOT_ALLOWED,
            "error",
            f"'{path_text(path)}': a bare name ('{value.name}') refers to a node and is only allowed "
            "for the 'deadletter' option",
            value.span,
            suggestion=f'write a string: "{value.name}"',
        )
    )
    return UNRESOLVED_PLACEHOLDER


def duplicate_keys(pairs: Sequence[ast.Pair], where: str) -> Iterator[Diagnostic]:
    """Every repeated key in a block of pairs, and in the maps nested in it (the first one counts)."""
    seen: dict[str, ast.Pair] = {}
    for pair in pairs:
        first = seen.get(pair.key)
        if first is None:
            seen[pair.key] = pair
        else:
            yield Diagnostic(
                DUPLICATE_KEY,
                "error",
                f"'{pair.key}' is set twice in {where}",
                pair.key_span,
                (Note("first set here", first.key_span),),
                "remove one of the two",
            )
        yield from _nested_duplicates(pair.value, f"'{pair.key}'")


def _nested_duplicates(value: ast.Value, where: str) -> Iterator[Diagnostic]:
    if isinstance(value, ast.MapValue):
        yield from duplicate_keys(value.entries, f"map {where}")
    elif isinstance(value, ast.ListValue):
        for item in value.items:
            yield from _nested_duplicates(item, where)


def path_text(path: Iterable[str | int]) -> str:
    """`('db', 'hosts', 1)` -> `db.hosts[1]`: how a nested key is named in messages."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def locate(pairs: Sequence[ast.Pair], path: Sequence[str | int]) -> tuple[ast.Pair | ast.Value | None, int]:
    """The deepest AST element along `path` and how many steps of the path it consumed.

    A top-level key gives its `Pair` (so a caret covers `key = value`), a list index the item, a map
    key the nested `Pair`. Steps that lead nowhere (pydantic's union tags, say) stop the walk.
    """
    found: ast.Pair | ast.Value | None = None
    current: Sequence[ast.Pair] | ast.Value | None = pairs
    depth = 0
    for part in path:
        while isinstance(current, ast.EnvValue) and current.default is not None:
            current = current.default
        if isinstance(current, ast.MapValue):
            current = current.entries
        if isinstance(part, str) and isinstance(current, Sequence) and not isinstance(current, str):
            pair = next((p for p in current if isinstance(p, ast.Pair) and p.key == part), None)
            if pair is None:
                break
            found, current = pair, pair.value
        elif isinstance(part, int) and isinstance(current, ast.ListValue):
            if not 0 <= part < len(current.items):
                break
            found = current = current.items[part]
        else:
            break
        depth += 1
    return found, depth


def describe(value: ast.Value) -> str:
    """A value as a message shows it: literals as written, containers by kind."""
    if isinstance(value, ast.StringValue):
        return _quoted(value.value)
    if isinstance(value, ast.BoolValue):
        return "true" if value.value else "false"
    if isinstance(value, (ast.IntValue, ast.FloatValue)):
        return repr(value.value)
    if isinstance(value, ast.NullValue):
        return "null"
    if isinstance(value, (ast.DurationValue, ast.PercentValue)):
        return value.text
    if isinstance(value, ast.RefValue):
        return value.name
    if isinstance(value, ast.EnvValue):
        return f'env("{value.var}")'
    if isinstance(value, ast.SecretValue):
        return f'secret("{value.var}")'
    if isinstance(value, ast.ListValue):
        return "a list"
    return "a map"


def describe_python(value: Any) -> str:
    """A Python value in the language's words (for pydantic inputs with no AST element)."""
    if isinstance(value, str):
        return _quoted(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a map"
    return type(value).__name__


def _quoted(text: str) -> str:
    if len(text) > 40:
        text = text[:37] + "..."
    return json.dumps(text, ensure_ascii=False)


def kind_name(value: ast.Value) -> str:
    """What kind of value this is, in the language's words ("a string", "a duration")."""
    names: dict[type, str] = {
        ast.StringValue: "a string",
        ast.IntValue: "an integer",
        ast.FloatValue: "a number",
        ast.BoolValue: "a boolean",
        ast.NullValue: "null",
        ast.DurationValue: "a duration",
        ast.PercentValue: "a percentage",
        ast.RefValue: "a node name",
        ast.EnvValue: "env(...)",
        ast.SecretValue: "secret(...)",
        ast.ListValue: "a list",
        ast.MapValue: "a map",
    }
    return names[type(value)]
