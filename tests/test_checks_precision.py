"""Each mistake reported once, at its own line, with a fix that is itself valid; and nothing that
`pipec check` accepts may be unable to run because of its name or an option nobody applies."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipec.compiler.check import CheckResult, check_text
from pipec.compiler.diagnostics import render_all_text

ROOT = Path(__file__).resolve().parent.parent


def check(body: str, folder: Path, name: str = "t.pipe") -> CheckResult:
    return check_text(textwrap.dedent(body), str(folder / name))


def codes(result: CheckResult) -> list[str]:
    return [d.code for d in result.diagnostics]


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c"])
def test_only_cr_and_lf_end_a_line(tmp_path: Path, separator: str) -> None:
    text = (
        "pipeline p {\n"
        f'    source s : jsonl {{ path = "a{separator}b" }}\n'
        '    sink o : jsnol { path = "o" }\n'
        "    s -> o\n"
        "}\n"
    )
    result = check_text(text, str(tmp_path / "t.pipe"))
    (diagnostic,) = result.diagnostics
    assert (diagnostic.code, diagnostic.span.line, diagnostic.span.col) == ("P204", 3, 14)
    rendered = render_all_text(result.diagnostics, result.sources)
    assert '    sink o : jsnol { path = "o" }\n' in rendered  # the excerpt is the right line
    assert separator not in rendered


NOISY_MODULE = """
print("import print")
from pydantic import BaseModel, field_validator
from pipec.runtime import Processor

class Loud(Processor):
    class Config(BaseModel):
        n: int = 0

        @field_validator("n")
        @classmethod
        def say(cls, value):
            print("validator print")
            return value

    def process(self, record):
        return record

def __getattr__(name):
    print("getattr print")
    raise AttributeError(name)
"""


@pytest.mark.parametrize("processor", ["n.Loud { n = 1 }", "n.Missing"])
def test_what_user_code_prints_while_checking_keeps_json_output_clean(tmp_path: Path, processor: str) -> None:
    (tmp_path / "noisy.py").write_text(NOISY_MODULE)
    (tmp_path / "t.pipe").write_text(
        "use noisy as n\npipeline p {\n"
        f'  source s : jsonl {{ path = "x" }}\n  processor t : {processor}\n  sink o : jsonl {{ path = "o" }}\n'
        "  s -> t -> o\n}\n"
    )
    for command in (["check", "--format", "json"], ["graph", "--format", "json"]):
        done = subprocess.run(
            [sys.executable, "-c", "from pipec.cli import main; main()", *command, "t.pipe"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert "import print" in done.stderr
        if processor.startswith("n.Loud"):
            assert done.returncode == 0, done.stderr
            json.loads(done.stdout)
            assert "validator print" in done.stderr
        elif command[0] == "check":
            assert done.returncode == 1
            assert [d["code"] for d in json.loads(done.stdout)] == ["P106"]
            assert "getattr print" in done.stderr


@pytest.mark.parametrize("name", ["pipec", "json", "logging", "pydantic", "mysteps"])
def test_a_pipeline_name_that_would_hide_a_module_is_p109(tmp_path: Path, name: str) -> None:
    (tmp_path / "mysteps.py").write_text("def tidy(record):\n    return record\n")
    result = check(f"""
        use mysteps as m
        pipeline {name} {{
          source s : jsonl {{ path = "x" }}
          processor t : m.tidy
          sink o : jsonl {{ path = "o" }}
          s -> t -> o
        }}
    """, tmp_path)
    (diagnostic,) = result.diagnostics
    assert diagnostic.code == "P109"
    assert f"would hide the Python module '{name}'" in diagnostic.message


def test_a_broken_setting_gets_only_its_syntax_error(tmp_path: Path) -> None:
    result = check("""
        pipeline p {
            threshold = 1.2.3%
            source s : jsonl { path = "in.jsonl" }
            sink o : jsonl { path = "o" }
            s -> o
        }
    """, tmp_path)
    assert codes(result) == ["P007"]


def test_a_deadletter_written_as_a_string_is_one_error(tmp_path: Path) -> None:
    result = check("""
        pipeline p {
            source s : jsonl { path = "in.jsonl" } with { on_error = "deadletter", deadletter = "rejects" }
            sink o : jsonl { path = "o" }
            sink rejects : jsonl { path = "r" }
            s -> o
        }
    """, tmp_path)
    assert codes(result) == ["P210"]


@pytest.mark.parametrize(
    ("declaration", "fix"),
    [
        ('source extra : jsonl { path = "e" }', "`extra -> ...`"),
        ('stage extra : jsonl { path = "e" }', "`... -> extra => BULKSINK`"),
        ('bulksink extra : sql { url = "sqlite:///x.db", table = "t" }', "`... -> STAGE => extra`"),
        ('sink extra : jsonl { path = "e" }', "`... -> extra`"),
    ],
)
def test_the_unused_node_fix_fits_its_role(tmp_path: Path, declaration: str, fix: str) -> None:
    result = check(f"""
        pipeline p {{
            source s : jsonl {{ path = "in.jsonl" }}
            sink o : jsonl {{ path = "o" }}
            {declaration}
            s -> o
        }}
    """, tmp_path)
    (diagnostic,) = result.diagnostics
    assert diagnostic.code == "P311"
    assert diagnostic.suggestion == f"connect it in a flow ({fix}), or remove it"


def test_a_loop_through_a_source_or_sink_is_reported_once(tmp_path: Path) -> None:
    into_source = check("""
        pipeline p {
            source s : jsonl { path = "in.jsonl" }
            sink o : jsonl { path = "o" }
            s -> s
            s -> o
        }
    """, tmp_path)
    assert codes(into_source) == ["P301"]
    out_of_sink = check("""
        pipeline p {
            source s : jsonl { path = "in.jsonl" }
            processor t : pii { fields = ["a"] }
            sink o : jsonl { path = "o" }
            s -> t -> o -> t
        }
    """, tmp_path)
    assert codes(out_of_sink) == ["P302"] or codes(out_of_sink) == ["P303"]
    processors_only = check("""
        pipeline p {
            source s : jsonl { path = "in.jsonl" }
            processor a : pii { fields = ["a"] }
            processor b : pii { fields = ["b"] }
            sink o : jsonl { path = "o" }
            s -> a -> b -> a
            b -> o
        }
    """, tmp_path)
    assert codes(processors_only) == ["P308"]


def test_a_use_that_fails_to_import_is_not_also_unused(tmp_path: Path) -> None:
    result = check("""
        use no_such_module_here as gone
        pipeline p {
            source s : jsonl { path = "in.jsonl" }
            sink o : jsonl { path = "o" }
            s -> o
        }
    """, tmp_path)
    assert codes(result) == ["P105"]


@pytest.mark.parametrize("call", ['env("")', 'secret("")', 'env("A=B", default = "x")'])
def test_a_variable_name_no_environment_can_hold_is_p011(tmp_path: Path, call: str) -> None:
    result = check(f"""
        pipeline p {{
            source s : jsonl {{ path = {call} }}
            sink o : jsonl {{ path = "o" }}
            s -> o
        }}
    """, tmp_path)
    assert codes(result) == ["P011"]


@pytest.mark.parametrize(
    ("node", "options", "expected"),
    [
        ('source s2 : jsonl { path = "x" }', "retries = 2", "P211"),
        ('source s2 : jsonl { path = "x" }', "timeout = 1s", "P211"),
        ('bulksink s2 : sql { url = "sqlite:///x.db", table = "t" }', "retries = 1", "P211"),
        ('stage s2 : jsonl { path = "x" }', "batch = 10", "P211"),
        ('sink s2 : jsonl { path = "x" }', "timeout = 99999999999h", "P210"),
        ('sink s2 : jsonl { path = "x" }', "retries = 1, backoff = 2m", "P210"),
        ('sink s2 : jsonl { path = "x" }', "retries = 101", "P210"),
        ('sink s2 : jsonl { path = "x" }', "backoff = 1s", "P212"),
        ('sink s2 : jsonl { path = "x" }', "timeout = 24h, backoff = 30s, retries = 3, batch = 5", None),
        ('stage s2 : jsonl { path = "x" }', "timeout = 5s, retries = 3", None),
    ],
)
def test_options_apply_where_the_runtime_applies_them(
    tmp_path: Path, node: str, options: str, expected: str | None
) -> None:
    role = node.split()[0]
    flows = {
        "source": "s2 -> o",
        "bulksink": "s -> st => s2",
        "stage": "s -> s2 => b",
        "sink": "s -> s2",
    }[role]
    extra = {
        "bulksink": 'stage st : jsonl { path = "st" }',
        "stage": 'bulksink b : sql { url = "sqlite:///x.db", table = "t" }',
    }.get(role, "")
    result = check(f"""
        pipeline p {{
            source s : jsonl {{ path = "in.jsonl" }}
            sink o : jsonl {{ path = "o" }}
            {node} with {{ {options} }}
            {extra}
            s -> o
            {flows}
        }}
    """, tmp_path)
    assert codes(result) == ([expected] if expected else [])


def test_commands_on_a_file_without_pipelines_say_so(tmp_path: Path) -> None:
    (tmp_path / "empty.pipe").write_text("# nothing here yet\n")

    def pipec(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "from pipec.cli import main; main()", *args],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    graph = pipec("graph", "empty.pipe")
    assert graph.returncode == 1 and "defines no pipeline" in graph.stderr
    run = pipec("run", "empty.pipe")
    assert run.returncode == 2 and "defines no pipeline: nothing to run" in run.stderr
    compiled = pipec("compile", "empty.pipe", "-o", "out")
    assert compiled.returncode == 0 and "defines no pipeline: nothing written" in compiled.stderr


def test_a_misspelt_pipeline_keyword_does_not_hide_its_body(tmp_path: Path) -> None:
    result = check("""
        pipline p {
            source s : jsonl { path = "in.jsonl" } wiht { retries = 1 }
            sink o : jsonl { path = "o", bogus = 1 }
            s -> o
        }
    """, tmp_path)
    assert [(d.code, d.span.line) for d in result.diagnostics] == [("P005", 2), ("P001", 3), ("P201", 4)]
    assert result.diagnostics[0].suggestion == "did you mean 'pipeline'?"


def test_a_misspelt_use_keyword_does_not_hide_the_rest(tmp_path: Path) -> None:
    result = check("""
        uses json as j
        pipeline p {
            source s : jsonl { path = "in.jsonl" }
            sink o : jsonl { path = "o", bogus = 1 }
            s -> o
        }
    """, tmp_path)
    assert [d.code for d in result.diagnostics] == ["P005", "P201"]


def test_the_caret_counts_terminal_cells_after_wide_characters(tmp_path: Path) -> None:
    result = check("""
        pipeline p {
            source s : jsonl { path = "数据" } with { retrys = 1 }
            sink o : jsonl { path = "o" }
            s -> o
        }
    """, tmp_path)
    source_line, carets = render_all_text(result.diagnostics, result.sources).splitlines()[1:3]
    # Each of the two wide characters takes two cells, so the caret moves two to the right.
    assert carets.index("^") == source_line.index("retrys") + 2
    assert carets.strip() == "^" * len("retrys")


def test_many_unclosed_braces_are_unclosed_not_nested_too_deeply(tmp_path: Path) -> None:
    lines = ["pipeline p {"] + [f'    source s{k} : jsonl {{ path = "x"' for k in range(70)] + ["}"]
    result = check_text("\n".join(lines) + "\n", str(tmp_path / "t.pipe"))
    assert {d.code for d in result.diagnostics} == {"P006", "P013"}
    deep = 'pipeline p {\n    source s : jsonl { a = ' + "[" * 70 + "]" * 70 + " }\n}\n"
    assert [d.code for d in check_text(deep, str(tmp_path / "t.pipe")).diagnostics] == ["P014"]


def test_names_python_would_read_as_other_names_are_refused(tmp_path: Path) -> None:
    (tmp_path / "\ufb01x_steps.py").write_text("def tidy(record):\n    return record\n")
    flow = '  source a : jsonl { path = "x" }\n  sink o : jsonl { path = "o" }\n  a -> o\n'
    result = check_text(
        "use \ufb01x_steps as s\nuse pkg.class as c\n"
        f"pipeline \uff4a\uff53\uff4f\uff4e {{\n{flow}}}\n"  # fullwidth 'json'
        f"pipeline \ufb01le_a {{\n{flow}}}\npipeline file_a {{\n{flow}}}\n",
        str(tmp_path / "t.pipe"),
    )
    found = [(d.code, d.span.line, d.message.rpartition(": ")[2]) for d in result.diagnostics if d.is_error]
    assert found == [
        ("P105", 1, "Python reads it as 'fix_steps', a different file"),
        ("P105", 2, "a Python keyword cannot be part of a module path"),
        ("P109", 3, "Python reads the name as 'json'"),
        ("P109", 8, "Python reads the name as 'file_a'"),
        ("P108", 13, "pipeline 'file_a' is defined twice"),
    ]


@pytest.mark.parametrize(
    ("header", "first"),
    [
        ('pipeline "p" {', "P001"),
        ("pipeline p.q {", "P001"),
        ("pipeline {", "P001"),
        ("pipeline with {", "P010"),
        ("pipeline 1p {", "P007"),
        ("pipe line p {", "P005"),
    ],
)
def test_a_broken_pipeline_header_does_not_hide_its_body(tmp_path: Path, header: str, first: str) -> None:
    text = f'{header}\n    source s : jsonl {{ path = "a" }}\n    sink o : stdot\n    s -> o\n}}\n'
    result = check_text(text, str(tmp_path / "t.pipe"))
    assert [(d.code, d.span.line) for d in result.diagnostics] == [(first, 1), ("P204", 3)]
    assert "pipeline_at_line" not in render_all_text(result.diagnostics, result.sources)
