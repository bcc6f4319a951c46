"""Property tests for pipec.compiler.parse: random and mutated text never makes it raise and always
yields well-formed diagnostics; generated valid programs parse cleanly, back to the values written."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipec.compiler import ast
from pipec.compiler.check import check_text
from pipec.compiler.diagnostics import render_all_text
from pipec.compiler.parse import MAX_ERRORS, SYNTAX_CODES, ParseResult, parse

PATH = "fuzz.pipe"
FAST = settings(deadline=2000, max_examples=250, suppress_health_check=[HealthCheck.too_slow])
TERMINALS = "NAME|STRING|NUMBER|[LR](BRACE|SQB|PAR)|COLON|COMMA|DOT|EQUAL|(FAT_)?ARROW|_NL|WITH|SOURCE"
LARK_WORDS = re.compile(rf"__ANON|\$END|\b({TERMINALS})\b|Token|Tree\(|lark|Unexpected")
KEYWORDS = {"use", "as", "pipeline", "with", "true", "false", "null"} | set(ast.ROLES)

SEEDS = [
    """\
# shop.pipe
use shop_steps as steps

pipeline orders {
    threshold = 95%
    source    orders  : csv           { path = "data/orders.csv" }
    processor clean   : steps.clean   # a plain function
    processor pii     : pii           { fields = ["email", "phone"] }
    processor big     : steps.KeepLarge { min_amount = 500 } with { on_error = "deadletter", backoff = 200ms }
    sink      rejected: jsonl         { path = "out/rejected.jsonl" }
    stage     daily   : jsonl         { path = "staging/daily.jsonl" }
    bulksink  load    : sql           { url = env("ORDERS_DB", default = "sqlite:///orders.db") }
    orders -> clean -> pii -> big -> rejected
    big -> daily => load
}
""",
    """\
pipeline a {
  source s : http {
    url = secret("URL")
    headers = { "X-Key" = "a\\"b\\\\c", retries = 3, }
    pages = [1, 2,
             3]
  }
  sink t : stdout
  s ->
    t
}
pipeline b { }
""",
]


def check(text: str, result: ParseResult) -> None:
    """The invariants every parse result keeps, whatever the input."""
    assert isinstance(result, ParseResult)
    assert (result.file is None) == any(d.is_error for d in result.diagnostics)
    assert len(result.diagnostics) <= MAX_ERRORS + 1
    last_line = max(1, len(text.splitlines()))
    for d in result.diagnostics:
        assert d.code in SYNTAX_CODES and d.code != "P099", d
        assert d.span.file == PATH
        assert 1 <= d.span.line <= d.span.end_line <= last_line, (d, last_line)
        assert d.span.col >= 1 and (d.span.end_line, d.span.end_col) >= (d.span.line, d.span.col)
        words = " ".join([d.message, d.suggestion or "", *(n.message for n in d.notes)])
        assert not LARK_WORDS.search(re.sub(r"'[^']*'", "", words)), words
    render_all_text(result.diagnostics, {PATH: text})
    if result.file is not None:
        assert result.file.text == text and result.file.path == PATH
        assert result.partial is None
    elif result.partial is not None:  # what parsed: nothing on a line with a syntax error
        bad = {line for d in result.diagnostics for line in range(d.span.line, d.span.end_line + 1)}
        kept = [*result.partial.uses, *(n for p in result.partial.pipelines for n in (*p.nodes, *p.settings))]
        assert not any(k.span.line <= line <= k.span.end_line for k in kept for line in bad)


# ------------------------------------------------------------------------------------ random text
@FAST
@given(st.text(max_size=300))
def test_random_text_never_raises(text: str) -> None:
    check(text, parse(text, PATH))


PIPE_ALPHABET = st.sampled_from(
    list("{}[]()\"'\\#=:,.%-> \n\t\r_ae1") + ["source ", "pipeline ", "with ", "\u2028"]
)


@FAST
@given(st.lists(PIPE_ALPHABET, max_size=120).map("".join))
def test_pipe_like_text_never_raises(text: str) -> None:
    check(text, parse(text, PATH))


# -------------------------------------------------------------------------------------- mutations
PIECES = [
    "{", "}", "[", "]", "(", ")", "->", "=>", "=", ":", ",", ".", '"', "'", "\\", "#", "\n", " ", "\t",
    "\r", "source", "pipeline", "with", "use", "env(", "x", "1", "5ms", "%", "$", ";", "é", "\x00",
]  # fmt: skip

mutation = st.tuples(
    st.sampled_from(["insert", "delete", "replace"]),
    st.floats(min_value=0, max_value=1),
    st.sampled_from(PIECES),
    st.integers(min_value=1, max_value=12),
)


def mutate(text: str, ops: list[tuple[str, float, str, int]]) -> str:
    for op, where, piece, length in ops:
        pos = int(where * len(text))
        if op == "insert":
            text = text[:pos] + piece + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + length :]
        else:
            text = text[:pos] + piece + text[pos + len(piece) :]
    return text


@FAST
@given(st.sampled_from(SEEDS), st.lists(mutation, min_size=1, max_size=6))
def test_mutated_programs_never_raise(seed: str, ops: list[tuple[str, float, str, int]]) -> None:
    text = mutate(seed, ops)
    check(text, parse(text, PATH))


# Whole-graph codes: after a syntax error they would blame the statements it removed.
GRAPH_CODES = re.compile(r"P102|P104|P107|P3\d\d")


@FAST
@given(st.sampled_from(SEEDS), st.lists(mutation, min_size=1, max_size=4))
def test_a_file_with_syntax_errors_gets_only_statement_local_checks(
    seed: str, ops: list[tuple[str, float, str, int]]
) -> None:
    text = mutate(seed, ops)
    result = check_text(text, PATH)
    if any(d.code in SYNTAX_CODES for d in result.diagnostics):
        assert result.pipelines == []
        assert not [d for d in result.diagnostics if GRAPH_CODES.fullmatch(d.code)]
    render_all_text(result.diagnostics, {PATH: text})


@settings(deadline=2000, max_examples=150)
@given(st.sampled_from(SEEDS), mutation)
def test_one_mutation_gives_few_errors(seed: str, op: tuple[str, float, str, int]) -> None:
    """One edit to a valid program is one mistake: it may not flood the user with follow-on errors."""
    text = mutate(seed, [op])
    result = parse(text, PATH)
    check(text, result)
    assert len(result.diagnostics) <= 4, render_all_text(result.diagnostics, {PATH: text})


def test_seeds_are_valid() -> None:
    for seed in SEEDS:
        result = parse(seed, PATH)
        assert result.diagnostics == () and result.file is not None


# ------------------------------------------------------------------------------ valid programs
names = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True),
    st.sampled_from(["café", "数据", "naïve_1", "Ωmega"]),
).filter(lambda n: n not in KEYWORDS)

Gen = tuple[str, Any]  # (source text, the plain value it must parse to)


def quote(s: str) -> str:
    escaped = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return '"' + escaped + '"'


strings = st.text(st.characters(exclude_categories=["Cs"]), max_size=15).map(lambda s: (quote(s), ("str", s)))
# An environment variable's name: any text an environment can hold (not empty, no '=' or NUL).
var_names = strings.filter(lambda s: bool(s[1][1]) and not {"=", "\0"} & set(s[1][1]))
scalars: st.SearchStrategy[Gen] = st.one_of(
    strings,
    st.integers(-(10**12), 10**12).map(lambda n: (str(n), n)),
    st.integers(0, 10**6).map(lambda n: (f"{n:_}", n)),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: (repr(f), f)),
    st.tuples(st.integers(0, 10**5), st.sampled_from(["ms", "s", "m", "h"])).map(
        lambda t: (f"{t[0]}{t[1]}", ("dur", t[0] * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[t[1]]))
    ),
    st.integers(0, 1000).map(lambda n: (f"{n}%", ("pct", n / 100))),
    st.sampled_from([("true", True), ("false", False), ("null", None)]),
    names.map(lambda n: (n, ("ref", n))),
    var_names.map(lambda s: (f"secret({s[0]})", ("secret", s[1][1]))),
    var_names.map(lambda s: (f"env({s[0]})", ("env", s[1][1], None))),
)


def lists_of(items: st.SearchStrategy[Gen]) -> st.SearchStrategy[Gen]:
    return st.tuples(st.lists(items, max_size=4), st.sampled_from([", ", ",\n  ", "\n"]), st.booleans()).map(
        lambda t: (
            "[" + t[1].join(i[0] for i in t[0]) + ("," if t[2] and t[0] else "") + "]",
            [i[1] for i in t[0]],
        )
    )


def maps_of(items: st.SearchStrategy[Gen]) -> st.SearchStrategy[Gen]:
    keys = st.one_of(names.map(lambda n: (n, n)), strings.map(lambda s: (s[0], s[1][1])))
    pairs = st.lists(st.tuples(keys, items), max_size=4)
    return st.tuples(pairs, st.sampled_from([", ", "\n  ", ",\n"])).map(
        lambda t: (
            "{ " + t[1].join(f"{k[0]} = {v[0]}" for k, v in t[0]) + " }",
            [(k[1], v[1]) for k, v in t[0]],
        )
    )


values: st.SearchStrategy[Gen] = st.recursive(
    scalars,
    lambda inner: st.one_of(
        lists_of(inner),
        maps_of(inner),
        st.tuples(var_names, inner).map(
            lambda t: (f"env({t[0][0]}, default = {t[1][0]})", ("env", t[0][1][1], t[1][1]))
        ),
    ),
    max_leaves=8,
)


def plain(value: ast.Value) -> Any:
    if isinstance(value, ast.StringValue):
        return ("str", value.value)
    if isinstance(value, (ast.IntValue, ast.FloatValue, ast.BoolValue)):
        return value.value
    if isinstance(value, ast.NullValue):
        return None
    if isinstance(value, ast.DurationValue):
        return ("dur", value.seconds)
    if isinstance(value, ast.PercentValue):
        return ("pct", value.fraction)
    if isinstance(value, ast.RefValue):
        return ("ref", value.name)
    if isinstance(value, ast.SecretValue):
        return ("secret", value.var)
    if isinstance(value, ast.EnvValue):
        return ("env", value.var, None if value.default is None else plain(value.default))
    if isinstance(value, ast.ListValue):
        return [plain(i) for i in value.items]
    return [(e.key, plain(e.value)) for e in value.entries]


def same(got: Any, want: Any) -> bool:
    if isinstance(want, float) and isinstance(got, float):
        return got == want or abs(got - want) <= 1e-9 * max(1.0, abs(want))
    if isinstance(want, (list, tuple)) and isinstance(got, (list, tuple)):
        return type(got) is type(want) and len(got) == len(want) and all(map(same, got, want))
    return bool(got == want) and type(got) is type(want)


@st.composite
def programs(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]]]:
    """A valid program, and what each of its pipelines must parse to."""
    lines: list[str] = []
    for _ in range(draw(st.integers(0, 2))):
        module = ".".join(draw(st.lists(names, min_size=1, max_size=3)))
        lines.append(f"use {module}" + (f" as {draw(names)}" if draw(st.booleans()) else ""))
    expected: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 3))):
        want: dict[str, Any] = {"settings": [], "nodes": [], "flows": []}
        lines.append(f"pipeline {draw(names)} {{")
        for _ in range(draw(st.integers(0, 2))):
            key, (text, value) = draw(names), draw(values)
            lines.append(f"  {key} = {text}" + draw(st.sampled_from(["", "  # note"])))
            want["settings"].append((key, value))
        node_names = draw(st.lists(names, min_size=1, max_size=5, unique=True))
        for name in node_names:
            role = draw(st.sampled_from(ast.ROLES))
            type_name = draw(st.one_of(names, st.tuples(names, names).map(".".join)))
            line = f"  {role} {name} : {type_name}"
            config = draw(st.one_of(st.none(), maps_of(values)))
            options = draw(st.one_of(st.none(), maps_of(scalars)))
            line += f" {config[0]}" if config else ""
            line += f" with {options[0]}" if options else ""
            lines.append(line)
            want["nodes"].append((role, name, type_name, config and config[1], options and options[1]))
        for _ in range(draw(st.integers(0, 3))):
            steps = draw(st.lists(st.sampled_from(node_names), min_size=2, max_size=4))
            arrows = [draw(st.sampled_from(["->", "=>", "->\n     "])) for _ in steps[1:]]
            lines.append("  " + steps[0] + "".join(f" {a} {s}" for a, s in zip(arrows, steps[1:])))
            want["flows"].append(steps)
        if draw(st.booleans()):
            lines.append("")
        lines.append("}")
        expected.append(want)
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\n\n# end\n"])), expected


@settings(deadline=2000, max_examples=120, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_generated_programs_parse_back(program: tuple[str, list[dict[str, Any]]]) -> None:
    text, expected = program
    result = parse(text, PATH)
    assert result.diagnostics == (), render_all_text(result.diagnostics, {PATH: text})
    assert result.file is not None
    check(text, result)
    assert len(result.file.pipelines) == len(expected)
    for pipeline, want in zip(result.file.pipelines, expected):
        assert [s.key for s in pipeline.settings] == [k for k, _ in want["settings"]]
        for pair, (_, value) in zip(pipeline.settings, want["settings"]):
            assert same(plain(pair.value), value), (plain(pair.value), value)
        assert len(pipeline.nodes) == len(want["nodes"])
        for node, (role, name, type_name, config, options) in zip(pipeline.nodes, want["nodes"]):
            assert (node.role, node.name, node.type_name) == (role, name, type_name)
            assert same([(p.key, plain(p.value)) for p in node.config], config or [])
            assert same([(p.key, plain(p.value)) for p in node.options], options or [])
            assert (node.config_span is None) == (config is None)
        assert [[s.name for s in f.steps] for f in pipeline.flows] == want["flows"]
