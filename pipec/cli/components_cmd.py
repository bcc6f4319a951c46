"""`pipec components`: what can I connect to, and how do I configure it?

`pipec components` lists every registered component type (built-in or from a plugin) with its roles;
`pipec components TYPE` shows each role's class, what it does, and its config fields (type, default,
description) with an example declaration. `--format json` gives the same as data (with each config's
JSON schema).
"""

from __future__ import annotations

import difflib
import inspect
import json
import shutil
import textwrap
import types
import typing
from typing import Any

import click
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from pipec.compiler.registry import RegisteredType, Registry, load_registry

# ------------------------------------------------------------------------------------ describing


def type_name(annotation: Any) -> str:
    """A config field's type in the words of a .pipe file: str, int, bool, list[str], "a" | "b", ..."""
    if annotation is None or annotation is type(None):
        return "null"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(json.dumps(arg) if isinstance(arg, str) else pipe_value(arg) for arg in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(arg) for arg in args)
    if origin in (list, tuple, set, frozenset):
        return f"list[{type_name(args[0])}]" if args else "list"
    if origin is dict:
        return f"map[{type_name(args[0])}, {type_name(args[1])}]" if args else "map"
    if origin is typing.Annotated:
        return type_name(args[0])
    if annotation is typing.Any:
        return "any"
    names = {str: "str", int: "int", float: "float", bool: "bool", dict: "map", list: "list"}
    if annotation in names:
        return names[annotation]
    return getattr(annotation, "__name__", str(annotation))


def pipe_value(value: Any) -> str:
    """A Python value written the way a .pipe file writes it."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(pipe_value(item) for item in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{key} = {pipe_value(item)}" for key, item in value.items()) + " }"
    return repr(value)


def _default(field: FieldInfo) -> tuple[bool, Any]:
    """(required, default value)."""
    if field.is_required():
        return True, None
    if field.default_factory is not None:
        factory: Any = field.default_factory
        try:
            return False, factory()
        except TypeError:  # a factory taking the validated data
            return False, None
    return False, None if field.default is PydanticUndefined else field.default


def describe_fields(config: type[BaseModel]) -> list[dict[str, Any]]:
    fields = []
    for name, field in config.model_fields.items():
        required, default = _default(field)
        fields.append(
            {
                "name": field.alias or name,
                "type": type_name(field.annotation),
                "required": required,
                "default": default,
                "description": field.description or "",
            }
        )
    return fields


def _placeholder(field: dict[str, Any]) -> str:
    kind = field["type"]
    if kind.startswith("list"):
        return "[]"
    if kind.startswith("map"):
        return "{}"
    if kind in ("int", "float"):
        return "1"
    if kind == "bool":
        return "true"
    if kind.startswith('"'):
        return kind.split(" | ")[0]
    return '"..."'


def example(type_name_: str, role: str, fields: list[dict[str, Any]]) -> str:
    required = [f"{f['name']} = {_placeholder(f)}" for f in fields if f["required"]]
    config = " { " + ", ".join(required) + " }" if required else ""
    return f"{role} NAME : {type_name_}{config}"


def describe_type(registered: RegisteredType) -> dict[str, Any]:
    component = registered.component
    roles = {}
    for role in component.roles:
        cls = component.implementations[role]
        config: type[BaseModel] = cls.Config
        fields = describe_fields(config)
        roles[role] = {
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "doc": inspect.cleandoc(cls.__doc__ or ""),
            "fields": fields,
            "example": example(component.name, role, fields),
            "schema": config.model_json_schema(),
        }
    return {
        "name": component.name,
        "summary": component.summary,
        "origin": registered.origin,
        "module": registered.module,
        "roles": roles,
    }


# ------------------------------------------------------------------------------------ rendering


def _columns() -> int:
    """The terminal's width (100 when it is not a terminal), at most 120."""
    return min(shutil.get_terminal_size((100, 24)).columns, 120)


def _width() -> int:
    return max(60, _columns())


def _table(headers: list[str], rows: list[list[str]], indent: str = "", caps: list[int] | None = None) -> str:
    """Columns sized to their content (at most `caps[i]` wide), every cell wrapped to its column at word
    boundaries (a word longer than its column is kept whole); the last column takes the rest of the
    terminal's width."""
    count = len(headers)
    caps = caps or [40] * (count - 1)
    widths = [min(max(len(headers[i]), *(len(row[i]) for row in rows)), caps[i]) for i in range(count - 1)]
    # A word longer than its column (`"information_schema",`) widens the column instead of being cut.
    for i in range(count - 1):
        longest_word = max((len(word) for row in rows for word in row[i].split()), default=0)
        widths[i] = max(widths[i], longest_word)
    lead = len(indent) + sum(w + 2 for w in widths)
    widths.append(max(_width() - lead, 30))
    lines = []
    for row in [headers, *rows]:
        cells = [_wrap_words(row[i], widths[i]) for i in range(count)]
        for n in range(max(len(cell) for cell in cells)):
            parts = [(cell[n] if n < len(cell) else "").ljust(widths[i]) for i, cell in enumerate(cells)]
            lines.append((indent + "  ".join(parts)).rstrip())
    return "\n".join(lines)


def _wrap_words(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width`, broken only between words: never mid-word, never cut short."""
    return textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False) or [""]


# The summary column is wrapped when it can be at least this wide; in a narrower terminal each summary
# goes on its own lines under its type, so that no line is wider than the terminal (which would break
# it mid-word).
_MIN_SUMMARY = 30


def render_list(registry: Registry) -> str:
    rows = []
    for name in registry.names():
        registered = registry.types[name]
        rows.append(
            [name, ", ".join(registered.component.roles), registered.origin, registered.component.summary]
        )
    headers = ["TYPE", "ROLES", "ORIGIN", "SUMMARY"]
    caps = [24, 24, 28]
    widths = [  # as `_table` sizes them
        max(len(headers[i]), *(max([min(len(row[i]), caps[i]), *map(len, row[i].split())]) for row in rows))
        for i in range(3)
    ]
    if not rows or _columns() - sum(w + 2 for w in widths) >= _MIN_SUMMARY:
        out = [_table(headers, rows, caps=caps)]
    else:
        out = ["  ".join(headers[i].ljust(widths[i]) for i in range(2)) + "  " + headers[2]]
        for row in rows:
            out.append("  ".join(row[i].ljust(widths[i]) for i in range(2)) + "  " + row[2])
            out.extend("    " + line for line in _wrap_words(row[3], max(_columns() - 4, 20)))
    if registry.load_errors:
        out.append("")
        out.append("Could not load:")
        out.extend(f"  {name}: {error}" for name, error in sorted(registry.load_errors.items()))
    out.append("")
    out.append("Run 'pipec components TYPE' to see a type's config fields.")
    return "\n".join(out) + "\n"


def render_type(description: dict[str, Any]) -> str:
    out = [f"{description['name']}: {description['summary']}"]
    out.append(f"origin: {description['origin']} ({description['module']})")
    out.append(f"roles:  {', '.join(description['roles'])}")
    for role, info in description["roles"].items():
        out.append("")
        out.append(f"{role}: {info['class']}")
        if info["doc"]:
            out.extend(textwrap.indent(paragraph, "  ") for paragraph in _wrap_doc(info["doc"]))
        out.append("")
        if info["fields"]:
            rows = [
                [
                    field["name"],
                    field["type"],
                    "required" if field["required"] else pipe_value(field["default"]),
                    field["description"],
                ]
                for field in info["fields"]
            ]
            table = _table(["FIELD", "TYPE", "DEFAULT", "DESCRIPTION"], rows, indent="  ", caps=[24, 22, 18])
            out.append(table)
        else:
            out.append("  (no config)")
        out.append("")
        out.append(f"  example: {info['example']}")
    return "\n".join(out) + "\n"


def _wrap_doc(doc: str) -> list[str]:
    width = _width() - 2
    paragraphs = [" ".join(p.split()) for p in doc.split("\n\n") if p.strip()]
    return ["\n".join(textwrap.wrap(p, width)) for p in paragraphs]


def _json_ready(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


@click.command("components")
@click.argument("type_name_arg", metavar="[TYPE]", required=False)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: tables for people; json: the same as data (with each config's JSON schema)",
)
def components_command(type_name_arg: str | None, output_format: str) -> None:
    """List the component types you can use (built-in and plugins), or show one TYPE's config fields."""
    registry = load_registry()
    if type_name_arg is None:
        if output_format == "json":
            listing = [
                {
                    "name": name,
                    "roles": list(registry.types[name].component.roles),
                    "summary": registry.types[name].component.summary,
                    "origin": registry.types[name].origin,
                    "module": registry.types[name].module,
                }
                for name in registry.names()
            ]
            data = {"types": listing, "load_errors": dict(sorted(registry.load_errors.items()))}
            click.echo(json.dumps(data, indent=2))
        else:
            click.echo(render_list(registry), nl=False)
        return
    registered = registry.get(type_name_arg)
    if registered is None:
        message = f"unknown component type {type_name_arg!r}"
        if type_name_arg in registry.load_errors:
            message += f" (its plugin failed to load: {registry.load_errors[type_name_arg]})"
        else:
            close = difflib.get_close_matches(type_name_arg, registry.names(), n=1)
            if close:
                message += f"; did you mean {close[0]!r}?"
            else:
                message += f"; known types: {', '.join(registry.names())}"
        raise click.BadParameter(message, param_hint="TYPE")
    description = describe_type(registered)
    if output_format == "json":
        click.echo(json.dumps(_json_ready(description), indent=2))
    else:
        click.echo(render_type(description), nl=False)


COMMANDS: list[click.Command] = [components_command]
