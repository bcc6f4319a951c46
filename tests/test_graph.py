"""graph.py: the DiGraph built from the AST, and `pipec graph` in dot, mermaid and json."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipec.cli import main
from pipec.compiler.graph import build_graph, distinct_arrows
from pipec.compiler.parse import parse

ROOT = Path(__file__).resolve().parent.parent
GRAPHS = ROOT / "tests" / "fixtures" / "graph"
UPDATE = os.environ.get("PIPEC_UPDATE_GOLDEN") == "1"
FORMATS = {"dot": ".dot", "mermaid": ".mmd", "json": ".json"}


def pipeline_of(text: str):  # type: ignore[no-untyped-def]
    parsed = parse(text, "g.pipe")
    assert parsed.file is not None, parsed.diagnostics
    return parsed.file.pipelines[0]


def test_nodes_and_edges_carry_roles_types_and_spans() -> None:
    pipeline = pipeline_of(
        'pipeline p {\n  source a : jsonl { path = "x" }\n  stage s : jsonl\n  bulksink b : sql\n'
        "  a -> s => b\n  a -> s\n}\n"
    )
    graph = build_graph(pipeline)
    assert list(graph.nodes) == ["a", "s", "b"]
    assert graph.nodes["a"]["role"] == "source"
    assert graph.nodes["b"]["type"] == "sql"
    assert graph.nodes["s"]["span"].line == 3
    assert graph.nodes["s"]["declared"] is True
    assert graph.edges["s", "b"]["kind"] == "=>"
    first = graph.edges["a", "s"]["span"]
    assert (first.line, first.col, first.end_col) == (5, 3, 9)  # the first of the two `a -> s`
    assert graph.edges["a", "s"]["arrow_span"].col == 5
    assert graph.number_of_edges() == 2


def test_undeclared_flow_names_stay_in_the_graph_unmarked() -> None:
    graph = build_graph(pipeline_of('pipeline p {\n  source a : jsonl { path = "x" }\n  a -> ghost\n}\n'))
    assert graph.nodes["ghost"]["declared"] is False
    assert graph.nodes["ghost"]["role"] is None


def test_distinct_arrows_keep_both_kinds_between_one_pair() -> None:
    pipeline = pipeline_of(
        "pipeline p {\n  stage s : jsonl\n  bulksink b : sql\n  s -> b\n  s => b\n  s -> b\n}\n"
    )
    assert [(a.source, a.target, a.kind) for a in distinct_arrows(pipeline)] == [
        ("s", "b", "->"),
        ("s", "b", "=>"),
    ]
    assert build_graph(pipeline).edges["s", "b"]["kind"] == "->"


@pytest.mark.parametrize("output_format", sorted(FORMATS))
def test_graph_snapshots(output_format: str, repo_root: Path) -> None:
    result = CliRunner().invoke(
        main, ["graph", "tests/fixtures/graph/orders.pipe", "--format", output_format]
    )
    assert result.exit_code == 0, result.output
    expected = GRAPHS / ("orders" + FORMATS[output_format])
    if UPDATE:
        expected.write_text(result.stdout, encoding="utf-8")
    assert result.stdout == expected.read_text(encoding="utf-8")


def _shuffled(text: str, seed: int) -> str:
    """The same file with the statements inside the pipeline body in another order."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("pipeline")) + 1
    end = max(i for i, line in enumerate(lines) if line.strip() == "}")
    body = lines[start:end]
    random.Random(seed).shuffle(body)
    return "\n".join(lines[:start] + body + lines[end:]) + "\n"


@pytest.mark.parametrize("seed", range(5))
def test_shuffling_declarations_does_not_change_the_output(seed: int, tmp_path: Path) -> None:
    original = (GRAPHS / "orders.pipe").read_text(encoding="utf-8")
    shuffled = tmp_path / "orders.pipe"
    shuffled.write_text(_shuffled(original, seed), encoding="utf-8")
    assert shuffled.read_text(encoding="utf-8") != original
    for output_format, suffix in FORMATS.items():
        result = CliRunner().invoke(main, ["graph", str(shuffled), "--format", output_format])
        assert result.exit_code == 0, result.output
        assert result.stdout == (GRAPHS / ("orders" + suffix)).read_text(encoding="utf-8")


def test_json_is_canonical() -> None:
    data = json.loads((GRAPHS / "orders.json").read_text(encoding="utf-8"))
    names = [n["name"] for n in data["nodes"]]
    assert names == sorted(names)
    edges = [(e["source"], e["target"], e["kind"]) for e in data["edges"]]
    assert edges == sorted(edges)
    assert '"line"' not in json.dumps(data)  # no positions: they change when lines move
