"""Tests for pipec.compiler.parse: every construct with exact spans, and every syntax error code with
its exact message."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from pipec.compiler import ast
from pipec.compiler.diagnostics import Diagnostic, render_all_text
from pipec.compiler.parse import SYNTAX_CODES, ParseResult, parse
from pipec.compiler.parse_grammar import lark_parser

PATH = "t.pipe"
ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "errors"
TERMINALS = "NAME|STRING|NUMBER|[LR](BRACE|SQB|PAR)|COLON|COMMA|DOT|EQUAL|(FAT_)?ARROW|_NL|WITH|SOURCE"
LARK_WORDS = re.compile(rf"__ANON|\$END|\b({TERMINALS})\b|Token|Tree\(|lark|Unexpected")


def ok(text: str) -> ast.PipeFile:
    result = parse(text, PATH)
    assert result.diagnostics == (), render_all_text(result.diagnostics, {PATH: text})
    assert result.file is not None
    return result.file


def body(text: str) -> ast.Pipeline:
    """Parse `text` as the body of one pipeline (it starts on line 2)."""
    return ok("pipeline p {\n" + text + "\n}\n").pipelines[0]


def setting(value_text: str) -> ast.Value:
    return body(f"x = {value_text}").settings[0].value


def errors(text: str) -> list[tuple[str, int, int, str]]:
    result = parse(text, PATH)
    assert result.file is None
    assert result.diagnostics
    return [(d.code, d.span.line, d.span.col, d.message) for d in result.diagnostics]


def one_error(text: str) -> Diagnostic:
    result = parse(text, PATH)
    assert result.file is None
    assert len(result.diagnostics) == 1, render_all_text(result.diagnostics, {PATH: text})
    return result.diagnostics[0]


def sp(line: int, col: int, end_line: int, end_col: int) -> ast.Span:
    return ast.Span(PATH, line, col, end_line, end_col)


def at(text: str, needle: str, nth: int = 0) -> ast.Span:
    """The span of the nth occurrence of `needle` in `text` (which may span lines)."""
    start = -1
    for _ in range(nth + 1):
        start = text.index(needle, start + 1)
    end = start + len(needle)
    line, col = text.count("\n", 0, start) + 1, start - (text.rfind("\n", 0, start) + 1) + 1
    end_line, end_col = text.count("\n", 0, end) + 1, end - (text.rfind("\n", 0, end) + 1) + 1
    return sp(line, col, end_line, end_col)


SHOP = """\
# shop.pipe
use shop_steps as steps              # a Python module of the user's

pipeline orders {
    threshold = 95%                  # pipeline settings: NAME = value

    source    orders  : csv           { path = "data/orders.csv" }
    processor clean   : steps.clean                      # a plain function is a processor
    processor pii     : pii           { fields = ["email", "phone"] }
    processor big     : steps.KeepLarge { min_amount = 500 } with { on_error = "deadletter", retries = 2 }
    sink      out     : jsonl         { path = "out/orders.jsonl" }
    stage     daily   : jsonl         { path = "staging/daily.jsonl" }
    bulksink  load    : sql           { url = env("ORDERS_DB", default = "sqlite:///orders.db") }

    orders -> clean -> pii -> big -> out
    big -> daily => load
}
"""


# ------------------------------------------------------------------------------------ whole files
def test_design_example_parses() -> None:
    f = ok(SHOP)
    assert f.path == PATH and f.text == SHOP
    assert [u.alias for u in f.uses] == ["steps"]
    (p,) = f.pipelines
    assert p.name == "orders" and p.name_span == sp(4, 10, 4, 16)
    assert p.span == sp(4, 1, 17, 2)
    assert [(n.role, n.name, n.type_name) for n in p.nodes] == [
        ("source", "orders", "csv"),
        ("processor", "clean", "steps.clean"),
        ("processor", "pii", "pii"),
        ("processor", "big", "steps.KeepLarge"),
        ("sink", "out", "jsonl"),
        ("stage", "daily", "jsonl"),
        ("bulksink", "load", "sql"),
    ]
    assert [[s.name for s in flow.steps] for flow in p.flows] == [
        ["orders", "clean", "pii", "big", "out"],
        ["big", "daily", "load"],
    ]


def test_empty_and_comment_only_files() -> None:
    for text in ["", "\n\n", "# nothing\n", "# no newline at the end", "   \n\t\n  # x\n"]:
        f = ok(text)
        assert f.uses == () and f.pipelines == ()


def test_several_pipelines_and_uses_anywhere_at_top_level() -> None:
    f = ok("use a\npipeline one {\n}\nuse b.c as d\n\npipeline two { }\npipeline three {\n  x = 1\n}")
    assert [p.name for p in f.pipelines] == ["one", "two", "three"]
    assert [(u.module, u.alias) for u in f.uses] == [("a", "a"), ("b.c", "d")]


def test_use_spans_and_default_alias() -> None:
    f = ok("use pkg.sub.steps\nuse shop_steps as s\n")
    first, second = f.uses
    assert (first.module, first.alias) == ("pkg.sub.steps", "steps")
    assert first.module_span == sp(1, 5, 1, 18)
    assert first.alias_span == sp(1, 13, 1, 18)  # the module's last part
    assert first.span == sp(1, 1, 1, 18)
    assert second.alias_span == sp(2, 19, 2, 20) and second.span == sp(2, 1, 2, 20)


def test_comments_blank_lines_crlf_and_tabs() -> None:
    text = "# head\r\n\r\npipeline p {\t# c\r\n\r\n\t# only a comment\r\n\tx = 1\t# trailing\r\n\r\n}\r\n"
    p = ok(text).pipelines[0]
    assert p.settings[0].key == "x"
    assert p.settings[0].span == sp(6, 2, 6, 7)


def test_hash_inside_a_string_is_not_a_comment() -> None:
    assert setting('"a # b"') == ast.StringValue("a # b", sp(2, 5, 2, 12))


# ----------------------------------------------------------------------------------- declarations
def test_declaration_spans() -> None:
    text = 'pipeline p {\n  sink out : steps.Writer { path = "o" } with { retries = 2 }\n}\n'
    (node,) = ok(text).pipelines[0].nodes
    assert node.role == "sink" and node.role_span == sp(2, 3, 2, 7) == at(text, "sink")
    assert node.name == "out" and node.name_span == sp(2, 8, 2, 11)
    assert node.type_name == "steps.Writer" and node.type_span == sp(2, 14, 2, 26)
    assert node.config_span == at(text, '{ path = "o" }') == sp(2, 27, 2, 41)
    assert node.config[0].key == "path" and node.config[0].key_span == at(text, "path")
    assert node.config[0].span == at(text, 'path = "o"')
    assert node.options_span == at(text, "{ retries = 2 }")
    pair = ast.Pair("retries", at(text, "retries"), ast.IntValue(2, at(text, "2")), at(text, "retries = 2"))
    assert node.options[0] == pair
    assert node.span == at(text, 'sink out : steps.Writer { path = "o" } with { retries = 2 }')


def test_every_role_and_optional_blocks() -> None:
    text = (
        "source a : csv\nprocessor b : m.F { }\nsink c : x with {  }\nstage d : jsonl\n"
        "bulksink e : sql { a = 1 }"
    )
    p = body(text)
    text = "pipeline p {\n" + text
    assert [n.role for n in p.nodes] == ["source", "processor", "sink", "stage", "bulksink"]
    a, b, c, _, e = p.nodes
    assert a.config == () and a.config_span is None and a.options_span is None
    assert b.config == () and b.config_span == at(text, "{ }") and b.options_span is None
    assert c.config_span is None and c.options_span == at(text, "{  }")
    assert e.config[0].value == ast.IntValue(1, at(text, "1"))


def test_config_block_spans_lines() -> None:
    p = body(
        '  source a : csv {\n    path = "x"\n\n    # comment\n    delimiter = ";",\n'
        "  } with {\n retries = 1 }"
    )
    (node,) = p.nodes
    assert [c.key for c in node.config] == ["path", "delimiter"]
    assert node.config_span == sp(2, 18, 7, 4)
    assert node.options[0].key == "retries"
    assert node.span == sp(2, 3, 8, 15)


def test_settings() -> None:
    p = body('threshold = 99%\nname = "x"')
    assert [(s.key, s.key_span) for s in p.settings] == [
        ("threshold", sp(2, 1, 2, 10)),
        ("name", sp(3, 1, 3, 5)),
    ]
    assert p.settings[0].value == ast.PercentValue(0.99, "99%", sp(2, 13, 2, 16))


def test_unicode_names_and_keyword_prefixes() -> None:
    p = body("source café : csv\nsink sources : within\ncafé -> sources\n_x = 1")
    assert [n.name for n in p.nodes] == ["café", "sources"]
    assert p.nodes[1].type_name == "within"
    assert p.flows[0].steps[0].span == sp(4, 1, 4, 5)


# ------------------------------------------------------------------------------------------ flows
def test_flow_steps_and_arrows() -> None:
    p = body("a -> b => c")
    (flow,) = p.flows
    assert flow.span == sp(2, 1, 2, 12)
    assert flow.steps == (
        ast.FlowStep("a", sp(2, 1, 2, 2), None, None),
        ast.FlowStep("b", sp(2, 6, 2, 7), "->", sp(2, 3, 2, 5)),
        ast.FlowStep("c", sp(2, 11, 2, 12), "=>", sp(2, 8, 2, 10)),
    )


def test_flow_continues_after_a_trailing_arrow() -> None:
    p = body("big ->\n    daily =>  # comment\n\n  load\nx -> y")
    first, second = p.flows
    assert [s.name for s in first.steps] == ["big", "daily", "load"]
    assert first.span == sp(2, 1, 5, 7)
    assert [s.name for s in second.steps] == ["x", "y"]


def test_several_flows_share_nodes() -> None:
    p = body("a -> b\na -> c\nb -> c")
    assert len(p.flows) == 3


# ----------------------------------------------------------------------------------------- values
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("-3", -3),
        ("1_000", 1000),
        ("007", 7),
    ],
)
def test_integers(text: str, value: int) -> None:
    assert setting(text) == ast.IntValue(value, sp(2, 5, 2, 5 + len(text)))


@pytest.mark.parametrize(
    ("text", "value"), [("1.5", 1.5), ("1e3", 1000.0), ("-2.5e-3", -0.0025), ("1_0.2_5", 10.25)]
)
def test_floats(text: str, value: float) -> None:
    assert setting(text) == ast.FloatValue(value, sp(2, 5, 2, 5 + len(text)))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("200ms", 0.2),
        ("5s", 5.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1.5s", 1.5),
        ("0.5h", 1800.0),
        ("1_500ms", 1.5),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert setting(text) == ast.DurationValue(seconds, text, sp(2, 5, 2, 5 + len(text)))


@pytest.mark.parametrize(("text", "fraction"), [("95%", 0.95), ("100%", 1.0), ("12.5%", 0.125), ("0%", 0.0)])
def test_percentages(text: str, fraction: float) -> None:
    assert setting(text) == ast.PercentValue(fraction, text, sp(2, 5, 2, 5 + len(text)))


def test_constants_and_references() -> None:
    p = body("a = true\nb = false\nc = null\nd = rejected")
    assert [s.value for s in p.settings] == [
        ast.BoolValue(True, sp(2, 5, 2, 9)),
        ast.BoolValue(False, sp(3, 5, 3, 10)),
        ast.NullValue(sp(4, 5, 4, 9)),
        ast.RefValue("rejected", sp(5, 5, 5, 13)),
    ]


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        (r'""', ""),
        (r'"plain"', "plain"),
        (r'"say \"hi\""', 'say "hi"'),
        (r'"C:\\data\\x"', "C:\\data\\x"),
        (r'"a\nb\tc\rd"', "a\nb\tc\rd"),
        (r'"\u00e9t\u00E9"', "été"),
        (r'"\ud83d\ude00"', "\U0001f600"),
        ('"日本語 ünï 😀"', "日本語 ünï 😀"),
        (r'"\\\""', '\\"'),
        (r'"it\'s"', None),
        ("\"'single' // /* not */ {a = [b]}\"", "'single' // /* not */ {a = [b]}"),
    ],
)
def test_strings(literal: str, value: str | None) -> None:
    result = parse(f"pipeline p {{\nx = {literal}\n}}", PATH)
    if value is None:
        assert [d.code for d in result.diagnostics] == ["P004"]
        return
    assert result.file is not None, result.diagnostics
    assert result.file.pipelines[0].settings[0].value == ast.StringValue(value, sp(2, 5, 2, 5 + len(literal)))


def test_lists() -> None:
    assert setting("[]") == ast.ListValue((), sp(2, 5, 2, 7))
    value = setting('[1, "a",\n  [true],\n  {k = 1}, ]')
    assert isinstance(value, ast.ListValue)
    assert value.span == sp(2, 5, 4, 13)
    one, a, inner, pair_map = value.items
    assert one == ast.IntValue(1, sp(2, 6, 2, 7)) and a == ast.StringValue("a", sp(2, 9, 2, 12))
    assert inner == ast.ListValue((ast.BoolValue(True, sp(3, 4, 3, 8)),), sp(3, 3, 3, 9))
    assert isinstance(pair_map, ast.MapValue) and pair_map.entries[0].key == "k"


def test_list_items_separated_by_newlines() -> None:
    value = setting("[\n  1\n  2 # two\n\n  3\n]")
    assert isinstance(value, ast.ListValue)
    assert [i.value for i in value.items if isinstance(i, ast.IntValue)] == [1, 2, 3]


def test_maps() -> None:
    assert setting("{}") == ast.MapValue((), sp(2, 5, 2, 7))
    value = setting('{ a = 1, "Quoted-Key" = 2\n  with = 3,\n  source = 4, }')
    assert isinstance(value, ast.MapValue)
    assert [e.key for e in value.entries] == ["a", "Quoted-Key", "with", "source"]
    assert value.entries[1].key_span == sp(2, 14, 2, 26)
    assert value.entries[1].span == sp(2, 14, 2, 30)


def test_env_and_secret() -> None:
    p = body(
        'a = env("DB")\nb = env("DB", default = "sqlite://")\nc = env("N", 3)\nd = secret("TOKEN")\n'
        'e = env(\n  "X",\n  default = [1],\n)'
    )
    a, b, c, d, e = (s.value for s in p.settings)
    assert a == ast.EnvValue("DB", None, sp(2, 5, 2, 14))
    assert b == ast.EnvValue("DB", ast.StringValue("sqlite://", sp(3, 25, 3, 36)), sp(3, 5, 3, 37))
    assert c == ast.EnvValue("N", ast.IntValue(3, sp(4, 14, 4, 15)), sp(4, 5, 4, 16))
    assert d == ast.SecretValue("TOKEN", sp(5, 5, 5, 20))
    assert isinstance(e, ast.EnvValue) and e.var == "X" and isinstance(e.default, ast.ListValue)
    assert e.span == sp(6, 5, 9, 2)


# ---------------------------------------------------------------------------------- syntax errors
def test_syntax_codes_are_described_and_each_has_a_fixture() -> None:
    assert all(re.fullmatch(r"P0\d\d", code) for code in SYNTAX_CODES)
    assert all(SYNTAX_CODES.values())
    fixtures = {p.name[:4] for p in FIXTURES.glob("P0*_*.pipe")}
    assert fixtures == set(SYNTAX_CODES) - {"P099"}


@pytest.mark.parametrize("pipe", sorted(FIXTURES.glob("P0*_*.pipe")), ids=lambda p: p.stem)
def test_syntax_error_fixtures(pipe: Path) -> None:
    path = pipe.relative_to(ROOT).as_posix()
    text = pipe.read_text(encoding="utf-8")
    result = parse(text, path)
    assert result.file is None
    assert pipe.stem[:4] in {d.code for d in result.diagnostics}
    expected = pipe.with_suffix(".expected").read_text(encoding="utf-8")
    assert render_all_text(result.diagnostics, {path: text}) == expected


def test_p001_unexpected_token() -> None:
    assert errors("pipeline p {\n  x =\n}") == [
        ("P001", 2, 6, "expected a value after '=', found end of line")
    ]
    assert errors("pipeline p {\n  source a : csv foo\n}") == [
        ("P001", 2, 18, "expected '.', 'with', '{' or end of line after 'csv', found 'foo'")
    ]
    assert errors("pipeline {\n}") == [
        ("P001", 1, 10, "expected a pipeline name after 'pipeline', found '{'")
    ]
    assert errors("pipeline p {\n  x = 2 3\n}") == [
        ("P001", 2, 9, "expected end of line after '2', found '3'")
    ]
    assert errors("pipeline p {\n  x = { a 1 }\n}") == [("P001", 2, 11, "expected '=' after 'a', found '1'")]


def test_p001_missing_colon() -> None:
    d = one_error("pipeline p {\n  source orders csv\n}")
    assert (d.code, d.span, d.message) == (
        "P001",
        sp(2, 17, 2, 20),
        "expected ':' and a component type after 'orders', found 'csv'",
    )
    assert d.suggestion == "insert ':' before 'csv'"
    d = one_error("pipeline p {\n  source orders\n}")
    assert d.message == "expected ':' and a component type after 'orders', found end of line"
    assert d.span == sp(2, 16, 2, 17)


def test_p001_statements_out_of_place() -> None:
    d = one_error("source a : csv\n")
    assert d.message == "declarations belong inside a pipeline, found 'source' at the top level"
    assert d.suggestion == "put it inside a pipeline: 'pipeline <name> { ... }'"
    assert one_error("a -> b\n").message == "flows belong inside a pipeline, found 'a' at the top level"
    d = one_error("pipeline p {\n  use x\n}")
    assert d.message == "'use' lines belong at the top of the file, outside any pipeline"


def test_p002_unexpected_end_of_file() -> None:
    d = one_error("pipeline p {\n  source a : csv\n")
    assert d.code == "P002" and d.span == sp(2, 17, 2, 18)
    assert d.message == "unexpected end of file: '{' opened at 1:12 is never closed"
    d = one_error("pipeline p {\n  a ->")
    assert d.message == "unexpected end of file: expected a node name after '->'"
    d = one_error("pipeline p {\n  source a : csv { x = [1,")
    assert d.message == "unexpected end of file: '[' opened at 2:24 is never closed"
    assert one_error("use").message == "unexpected end of file: expected a module name after 'use'"


def test_p003_unterminated_string() -> None:
    d = one_error('pipeline p {\n  x = "abc }\n  y = 1\n}')
    assert (d.code, d.span, d.message) == ("P003", sp(2, 7, 2, 13), "unterminated string")
    d = one_error('pipeline p {\n  x = "two\nlines"\n  y = 1\n}')
    assert d.message == "unterminated string: a string cannot span lines"
    d = one_error('pipeline p {\n  sink o"ut : jsonl { path = "x" }\n}')
    assert d.code == "P003" and d.notes[0].span == sp(2, 9, 2, 10)


def test_p004_invalid_escape() -> None:
    assert errors('pipeline p {\n  x = "a\\qb\\u12x\\ud800"\n}') == [
        ("P004", 2, 9, "invalid escape '\\q' in string"),
        ("P004", 2, 12, "invalid unicode escape: '\\u' must be followed by 4 hex digits"),
        ("P004", 2, 17, "invalid unicode escape '\\ud800': half of a surrogate pair"),
    ]


def test_p005_unknown_declaration() -> None:
    d = one_error("pipeline p {\n  procesor clean : steps.clean\n  sink x : y\n}")
    assert (d.code, d.span, d.message, d.suggestion) == (
        "P005",
        sp(2, 3, 2, 11),
        "unknown declaration 'procesor'",
        "did you mean 'processor'?",
    )
    d = one_error("pipelin p {\n}\n")
    assert (d.message, d.suggestion) == ("unknown declaration 'pipelin'", "did you mean 'pipeline'?")
    d = one_error("pipeline p {\n  node a : csv\n}")
    assert d.suggestion == "a declaration starts with source, processor, sink, stage or bulksink"


def test_p006_unclosed_bracket() -> None:
    d = one_error('pipeline p {\n  source a : csv { path = "x"\n  sink b : jsonl\n  a -> b\n}\n')
    assert (d.code, d.span, d.message) == ("P006", sp(2, 18, 2, 19), "'{' is never closed")
    assert d.suggestion == "insert '}' at the end of line 2"
    assert d.notes[0].span == sp(3, 3, 3, 7)
    d = one_error("pipeline p {\n  a -> b\npipeline q {\n  c -> d\n}\n")
    assert (d.code, d.span) == ("P006", sp(1, 12, 1, 13))


def test_p007_invalid_number() -> None:
    assert errors("pipeline p {\n  a = 1.5.3\n  b = 5sec\n  c = -2s\n  d = 1e999\n  e = 0x1F\n}") == [
        ("P007", 2, 7, "invalid number '1.5.3'"),
        ("P007", 3, 7, "unknown duration unit 'sec' in '5sec'"),
        ("P007", 4, 7, "a duration cannot be negative: '-2s'"),
        ("P007", 5, 7, "float '1e999' is too large"),
        ("P007", 6, 7, "invalid number '0x1F'"),
    ]
    assert one_error("pipeline p {\n  b = 3minutes\n}").suggestion == (
        "did you mean '3m'? durations use the units ms, s, m and h"
    )


def test_p008_unexpected_character() -> None:
    assert errors("pipeline p {\n  a -> b $ $ c\n  x = 1;\n  y = 'q'\n}") == [
        ("P008", 2, 10, "unexpected character '$'"),
        ("P008", 3, 8, "unexpected character ';'"),
        ("P008", 4, 7, "strings are written in double quotes"),
    ]
    assert errors("\x00\n") == [("P008", 1, 1, "unexpected character '\\x00'")]


def test_p009_missing_arrow() -> None:
    d = one_error("pipeline p {\n  a -> b c -> d\n}")
    assert (d.code, d.span, d.message, d.suggestion) == (
        "P009",
        sp(2, 10, 2, 11),
        "expected '->' or '=>' between 'b' and 'c'",
        "insert '->' to connect them",
    )
    assert (
        one_error("pipeline p {\n  clean pii\n}").message == "expected '->' or '=>' between 'clean' and 'pii'"
    )


def test_p010_keyword_as_name() -> None:
    assert errors("pipeline p {\n  source with : csv\n  a -> sink\n}") == [
        ("P010", 2, 10, "'with' is a keyword and cannot be used as a name"),
        ("P010", 3, 8, "'sink' is a keyword and cannot be used as a name"),
    ]


def test_p011_invalid_call() -> None:
    text = (
        'pipeline p {\n  a = enb("A")\n  b = env(3)\n  c = secret("A", default = "b")\n'
        '  d = env("A", dflt = 2)\n  e = env("A", 1, 2)\n  f = env()\n}'
    )
    assert errors(text) == [
        ("P011", 2, 7, "unknown function 'enb'"),
        ("P011", 3, 11, "env() needs the variable name as a string"),
        ("P011", 4, 19, "secret() takes only the variable name: a secret has no default"),
        ("P011", 5, 16, "env() has no argument 'dflt'"),
        ("P011", 6, 19, "env() takes a variable name and an optional default"),
        ("P011", 7, 7, "env() needs the variable name as a string"),
    ]


def test_p012_mismatched_bracket() -> None:
    d = one_error("pipeline p {\n  x = [1, 2}\n}")
    assert (d.code, d.message) == ("P012", "expected ']' to close '[' opened at 2:7, found '}'")
    assert one_error("}\n").message == "unexpected '}': there is no '{' to close"
    d = one_error("pipeline p {\n  source a : csv }\n  sink b : x\n  a -> b\n}\n")
    assert (d.code, d.span) == ("P012", sp(2, 18, 2, 19))
    assert d.message == "unexpected '}': it ends pipeline 'p', but the pipeline goes on after it"


def test_p013_too_many_errors() -> None:
    result = parse("pipeline p {\n" + "a b\n" * 30 + "}\n", PATH)
    assert len(result.diagnostics) == 21
    assert result.diagnostics[-1].code == "P013"


def test_p014_nesting_too_deep() -> None:
    d = one_error("pipeline p {\n  x = " + "[" * 100 + "]" * 100 + "\n}")
    assert (d.code, d.message) == ("P014", "brackets are nested more than 64 levels deep")
    assert setting("[" * 60 + "]" * 60) is not None


# ------------------------------------------------------------------------------------ recovery
def test_independent_errors_are_all_reported() -> None:
    text = (
        "pipeline p {\n"
        "  procesor a : csv\n"
        "  sink b jsonl\n"
        "  x = \n"
        "  a -> b c\n"
        '  y = "a\\q"\n'
        "}\n"
        "pipeline q {\n"
        "  a -> -> b\n"
        "}\n"
    )
    assert [(c, line) for c, line, _, _ in errors(text)] == [
        ("P005", 2),
        ("P001", 3),
        ("P001", 4),
        ("P009", 5),
        ("P004", 6),
        ("P001", 9),
    ]


@pytest.mark.parametrize(
    "text",
    [
        # a stray '{' must not swallow the pipeline's '}'
        "pipeline p {\n  a -> b{c\n  x = 1\n}\n",
        # a missing '{' after the pipeline name
        "pipeline p\n  source a : csv\n  a -> b\n}\n",
        # a header broken by a comment
        "pipel#ine p {\n  source a : csv\n  a -> b\n}\n",
        # a '}' closing the options block too early
        "pipeline p {\n  sink a : x with { backoff = 20}0ms }\n  sink b : y\n  a -> b\n}\n",
        # a statement broken over two lines
        "pipeline p {\n  source\n   a : csv\n  a -> b\n}\n",
        # a '}' on its own line in the middle of a pipeline
        "pipeline p {\n  source a : csv\n}\n  sink b : x\n  a -> b\n}\n",
    ],
)
def test_one_mistake_one_error(text: str) -> None:
    one_error(text)


def test_two_pipelines_stray_brace_names_the_right_pipeline() -> None:
    d = one_error("pipeline a {\n  x = 1\n}\npipeline b {\n  source s : csv }\n  sink t : x\n}\n")
    assert d.message == "unexpected '}': it ends pipeline 'b', but the pipeline goes on after it"


def _walk(node: object) -> list[object]:
    if dataclasses.is_dataclass(node):
        return [node] + [x for f in dataclasses.fields(node) for x in _walk(getattr(node, f.name))]
    if isinstance(node, tuple):
        return [x for item in node for x in _walk(item)]
    return [node]


def test_no_lark_object_leaves_the_parser() -> None:
    for leaf in _walk(ok(SHOP)):
        assert type(leaf).__module__.split(".")[0] in ("builtins", "pipec"), type(leaf)


def test_messages_never_use_lark_words() -> None:
    texts = [
        "pipeline p {\n  a -> -> b\n}",
        "pipeline",
        "{",
        "x",
        "pipeline p {\n  x = [1 2]\n}",
        "use a.",
        "!",
    ]
    for text in texts:
        for d in parse(text, PATH).diagnostics:
            words = d.message + " ".join(n.message for n in d.notes) + (d.suggestion or "")
            assert not LARK_WORDS.search(re.sub(r"'[^']*'", "", words)), words


@pytest.mark.parametrize(
    "text", ["\ud800", "\x00{[(", '"\\', "pipeline p {" * 50, "}" * 100, "\u2028a\u2029", "é" * 50]
)
def test_never_raises_on_odd_input(text: str) -> None:
    result = parse(text, PATH)
    assert isinstance(result, ParseResult)
    assert (result.file is None) == bool(result.diagnostics)
    assert all(d.code != "P099" for d in result.diagnostics)


def test_large_file_parses_with_the_grammar_built_once() -> None:
    # Speed itself is measured by `bench/big_pipe.py`, never timed here: the parser must be built once
    # per process and reused, which is what keeps a 300-node parse cheap.
    lines = ["use steps as s", "pipeline big {"]
    for k in range(300):
        role = ("source", "processor", "sink")[k % 3]
        lines.append(
            f'  {role} n{k} : s.T{k} {{ path = "p/{k}.jsonl", n = {k}, t = 200ms }} with {{ retries = 2 }}'
        )
    lines += [f"  n{k} -> n{k + 1} -> n{k + 2}" for k in range(0, 297, 3)] + ["}"]
    text = "\n".join(lines) + "\n"
    parse(text, PATH)
    builds_before = lark_parser.cache_info().misses
    result = parse(text, PATH)
    assert lark_parser.cache_info().misses == builds_before
    assert not result.diagnostics
    assert result.file is not None and len(result.file.pipelines[0].nodes) == 300
    assert len(result.file.pipelines[0].flows) == 99
