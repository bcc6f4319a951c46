from __future__ import annotations

import json
from typing import Any, Literal

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, ConfigDict, Field

from pipec.cli import components_cmd
from pipec.compiler.registry import RegisteredType, Registry, load_registry
from pipec.runtime import ComponentType, Processor

BUILTINS = {
    "csv": ["source", "sink"],
    "http": ["sink", "bulksink"],
    "jsonl": ["source", "sink", "stage"],
    "pii": ["processor"],
    "query_log": ["source"],
    "sql": ["source", "sink", "bulksink"],
    "sql_metadata": ["source"],
    "sql_usage": ["processor"],
    "stdout": ["sink"],
}


def invoke(*args: str) -> Any:
    return CliRunner().invoke(components_cmd.components_command, list(args), terminal_width=100)


def test_every_builtin_loads_with_documented_configs() -> None:
    registry = load_registry()
    assert registry.load_errors == {}
    for name, roles in BUILTINS.items():
        registered = registry.get(name)
        assert registered is not None and registered.origin == "builtin"
        assert list(registered.component.roles) == roles
        assert registered.component.summary
        for cls in registered.component.implementations.values():
            assert cls.__doc__, cls
            assert cls.Config.model_config.get("extra") == "forbid", cls
            for field_name, field in cls.Config.model_fields.items():
                assert field.description, f"{cls.__name__}.{field_name} has no description"


def test_list() -> None:
    result = invoke()
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["TYPE", "ROLES", "ORIGIN", "SUMMARY"]
    for name, roles in BUILTINS.items():
        assert any(line.startswith(f"{name} ") and ", ".join(roles) in line for line in lines), name
    assert "pipec components TYPE" in result.output


def test_list_json() -> None:
    result = invoke("--format", "json")
    data = json.loads(result.output)
    assert {t["name"]: t["roles"] for t in data["types"]} == BUILTINS
    assert data["load_errors"] == {}


def test_show_one_type() -> None:
    result = invoke("sql")
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("sql: SQL databases")
    assert "source: pipec.connectors.sql.SqlSource" in out
    assert "bulksink: pipec.connectors.sql.SqlBulkSink" in out
    assert "FIELD" in out and "DESCRIPTION" in out
    url_line = next(line for line in out.splitlines() if line.strip().startswith("url "))
    assert "required" in url_line
    assert any(line.split()[:2] == ["schema", "str"] for line in out.splitlines() if line.strip())
    assert '"insert" | "upsert"' in out
    assert 'example: sink NAME : sql { url = "...", table = "..." }' in out


def test_show_one_type_json() -> None:
    data = json.loads(invoke("jsonl", "--format", "json").output)
    assert list(data["roles"]) == ["source", "sink", "stage"]
    sink = data["roles"]["sink"]
    fields = {f["name"]: f for f in sink["fields"]}
    assert fields["path"]["required"] is True
    assert fields["sort_keys"] == {
        "name": "sort_keys",
        "type": "bool",
        "required": False,
        "default": True,
        "description": "Write each object's keys in sorted order.",
    }
    assert sink["schema"]["additionalProperties"] is False


def test_unknown_type_suggests() -> None:
    result = invoke("jsnol")
    assert result.exit_code == 2
    assert "unknown component type 'jsnol'; did you mean 'jsonl'?" in result.output


class _Plugin(Processor):
    """Upper-cases a field."""

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        field: str = Field(description="Field to upper-case.")
        how: Literal["upper", "lower"] = Field("upper", description="Which case.")

    def process(self, record: Any) -> Any:
        return record


def test_plugins_and_broken_plugins_are_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = RegisteredType(
        ComponentType("shout", {"processor": _Plugin}, "Shout a field"), "shout_pkg", "shout-dist"
    )
    registry = Registry({"shout": plugin}, {"broken": "ImportError: no module named nope"})
    monkeypatch.setattr(components_cmd, "load_registry", lambda: registry)
    listing = invoke().output
    assert "shout  processor  plugin shout-dist  Shout a field" in listing
    assert "broken: ImportError: no module named nope" in listing
    shown = invoke("shout").output
    assert "origin: plugin shout-dist (shout_pkg)" in shown
    assert "Upper-cases a field." in shown
    assert 'how    "upper" | "lower"  "upper"   Which case.' in shown
    assert 'example: processor NAME : shout { field = "..." }' in shown
    assert "its plugin failed to load" in invoke("broken").output


def test_type_names() -> None:
    assert components_cmd.type_name(dict[str, Literal["int", "str"]]) == 'map[str, "int" | "str"]'
    assert components_cmd.type_name(list[str] | None) == "list[str] | null"
    assert components_cmd.pipe_value({"a": [1, None, True]}) == "{ a = [1, null, true] }"


def test_docs_cover_every_builtin_and_field() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "connectors.md").read_text(encoding="utf-8")
    registry = load_registry()
    for name in BUILTINS:
        assert f"\n## {name}\n" in doc, name
        for cls in registry.types[name].component.implementations.values():
            for field_name, field in cls.Config.model_fields.items():
                assert f"| `{field.alias or field_name}` |" in doc, f"{name}: {field_name}"



@pytest.mark.parametrize("columns", [60, 76, 77, 100, 200])
def test_listing_fits_the_terminal_and_keeps_summaries_whole(
    monkeypatch: pytest.MonkeyPatch, columns: int
) -> None:
    import os

    long_word = "https://example.org/docs/connectors/shout-a-field-please"  # longer than its column
    plugin = RegisteredType(
        ComponentType("shout", {"processor": _Plugin}, f"Shout a field, see {long_word} for more"),
        "shout_pkg",
        "shout-dist",
    )
    registry = Registry({**load_registry().types, "shout": plugin}, {})
    monkeypatch.setattr(components_cmd, "load_registry", lambda: registry)
    size = os.terminal_size((columns, 24))
    monkeypatch.setattr(components_cmd.shutil, "get_terminal_size", lambda fallback=None: size)
    listing = invoke().output
    for line in listing.splitlines():  # a line wider than the terminal would be broken mid-word by it
        assert len(line) <= min(columns, 120) or long_word in line, line
    words = listing.split()
    for name in registry.names():
        summary = registry.types[name].component.summary
        assert all(word in words for word in summary.split()), (name, summary)  # whole words, all of them
