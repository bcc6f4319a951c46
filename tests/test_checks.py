"""The checker: CheckedPipeline contents, component resolution, config/options, fix suggestions,
robustness (hypothesis) and speed."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipec.compiler import checks_base
from pipec.compiler.check import CheckResult, check_file, check_text
from pipec.compiler.diagnostics import Diagnostic
from pipec.compiler.registry import Registry, load_registry

ROOT = Path(__file__).resolve().parent.parent
VALID = ROOT / "tests" / "fixtures" / "valid"
SHOP = VALID / "shop.pipe"


def check(body: str, folder: Path = VALID, name: str = "t.pipe") -> CheckResult:
    """Check `body` as if it were a file in `folder` (so `use shop_steps` resolves)."""
    return check_text(textwrap.dedent(body), str(folder / name))


def codes(result: CheckResult) -> list[str]:
    return [d.code for d in result.diagnostics]


def only(result: CheckResult, code: str) -> Diagnostic:
    found = [d for d in result.diagnostics if d.code == code]
    assert len(found) == 1, result.diagnostics
    return found[0]


# ------------------------------------------------------------------------------- checked pipeline
def test_design_example_checks_clean() -> None:
    result = check_file(str(SHOP))
    assert result.diagnostics == []
    assert not result.has_errors(strict=True)
    (pipeline,) = result.pipelines
    assert pipeline.name == "orders"
    assert pipeline.threshold == pytest.approx(0.95)
    assert len(pipeline.sha256) == 64
    names = [n.name for n in pipeline.nodes]
    # Topological, ties by declaration order; the dead-letter sink comes after the node that uses it.
    assert names == ["orders", "clean", "pii", "big", "out", "rejected", "daily", "load"]
    positions = {name: i for i, name in enumerate(names)}
    assert [(e.source, e.target) for e in pipeline.edges] == sorted(
        ((e.source, e.target) for e in pipeline.edges), key=lambda st: (positions[st[0]], positions[st[1]])
    )
    assert pipeline.successors("big") == ("out", "daily")
    assert pipeline.successors("daily", "=>") == ("load",)
    big = pipeline.node("big")
    assert big.options.on_error == "deadletter"
    assert big.options.deadletter == "rejected"
    assert big.options.retries == 2
    assert big.options.backoff_seconds == pytest.approx(0.2)
    assert big.resolved.module == "shop_steps"
    assert big.resolved.attribute == "KeepLarge"
    assert big.resolved.user_module and not big.resolved.is_function
    assert big.resolved.origin == "use steps"
    clean = pipeline.node("clean")
    assert clean.resolved.is_function
    out = pipeline.node("out")
    assert out.resolved.module == "pipec.connectors.jsonl" and not out.resolved.user_module
    assert out.resolved.origin == "builtin"


def test_emits_many_from_function_attribute_and_class_attribute() -> None:
    result = check(
        """
        use shop_steps as steps
        pipeline p {
            source    src  : steps.Numbers { n = 3 }
            processor one  : steps.clean
            processor many : steps.explode
            processor cls  : steps.Split { fields = ["a"] } with { workers = 2 }
            sink      out  : steps.Collect
            src -> one -> many -> cls -> out
        }
        """
    )
    assert result.diagnostics == []
    (pipeline,) = result.pipelines
    assert not pipeline.node("one").resolved.emits_many
    assert pipeline.node("many").resolved.emits_many
    assert pipeline.node("cls").resolved.emits_many
    assert pipeline.node("cls").options.workers == 2


def test_only_error_free_pipelines_are_built_and_all_errors_are_reported() -> None:
    result = check(
        """
        pipeline good {
            source a : jsonl { path = "a" }
            sink   b : jsonl { path = "b" }
            a -> b
        }
        pipeline bad {
            source a : jsonl { path = "a" }
            sink   b : jsnol { path = "b" }
            sink   c : jsonl { path = 3 }
            a -> b
            a -> c
        }
        """
    )
    assert [p.name for p in result.pipelines] == ["good"]
    assert codes(result) == ["P204", "P202"]
    assert result.diagnostics == sorted(result.diagnostics, key=Diagnostic.sort_key)


@pytest.mark.parametrize("name", ["import", "class", "None", "²x"])
def test_a_pipeline_name_that_cannot_name_its_runner_module_is_an_error(name: str) -> None:
    # The runner is written as NAME.py and imported by that name: `pipec check` must not call a file
    # clean that `pipec compile` then refuses.
    text = f"""
        pipeline {name} {{
            source a : jsonl {{ path = "a" }}
            sink   b : jsonl {{ path = "b" }}
            a -> b
        }}
        """
    result = check(text)
    diagnostic = only(result, "P109")
    assert (diagnostic.span.line, diagnostic.span.col) == (2, 10)
    assert f"'{name}'" in diagnostic.message
    assert result.pipelines == []


def test_warnings_do_not_block_but_strict_counts_them() -> None:
    result = check(
        """
        pipeline p {
            source a : jsonl { path = "a" }
            sink   b : jsonl { path = "b" }
            sink   spare : jsonl { path = "c" }
            a -> b
        }
        """
    )
    assert codes(result) == ["P311"]
    assert len(result.pipelines) == 1
    assert not result.has_errors()
    assert result.has_errors(strict=True)
    assert [d.severity for d in result.reported(strict=True)] == ["error"]


def test_deadletter_sink_counts_as_consumed_and_may_also_receive_flows() -> None:
    result = check(
        """
        pipeline p {
            source a   : jsonl { path = "a" } with { on_error = "deadletter", deadletter = bad }
            sink   out : jsonl { path = "b" } with { on_error = "deadletter", deadletter = bad }
            sink   bad : jsonl { path = "c" }
            a -> out
        }
        """
    )
    assert result.diagnostics == []
    result = check(
        """
        pipeline p {
            source a   : jsonl { path = "a" } with { on_error = "deadletter", deadletter = bad }
            sink   bad : jsonl { path = "c" }
            a -> bad
        }
        """
    )
    assert result.diagnostics == []


# ------------------------------------------------------------------------------------ the fixes
def test_fix_for_a_typo_in_a_component_type() -> None:
    d = only(check('pipeline p {\n source a : jsonl { path = "a" }\n sink b : jsnol\n a -> b\n}\n'), "P204")
    assert d.message == "unknown component type 'jsnol'"
    assert d.suggestion == "did you mean 'jsonl'?"
    assert (d.span.line, d.span.col, d.span.end_col) == (3, 11, 16)


def test_fix_for_a_bare_name_that_a_use_module_defines() -> None:
    result = check(
        'use shop_steps as steps\npipeline p {\n source a : jsonl { path = "a" }\n'
        " processor c : clean\n sink b : steps.Collect\n a -> c -> b\n}\n"
    )
    assert only(result, "P204").suggestion == "did you mean 'steps.clean'?"


def test_fix_for_a_bulksink_with_no_stage() -> None:
    result = check(
        """
        pipeline p {
            source   a    : jsonl { path = "a" }
            bulksink load : sql { url = "sqlite://", table = "t" }
            a -> load
        }
        """
    )
    d = only(result, "P306")
    assert d.message == "bulksink 'load' has no stage feeding it"
    assert "`a -> NAME => load`" in (d.suggestion or "")
    assert [n.message for n in d.notes] == ["'a' feeds it with '->' here"]
    assert codes(result) == ["P306"]


def test_fix_for_a_cycle_names_every_step_at_its_location() -> None:
    result = check(
        """
        use shop_steps as steps
        pipeline p {
            source    a : jsonl { path = "a" }
            processor x : steps.clean
            processor y : steps.clean
            sink      b : jsonl { path = "b" }
            a -> x -> y -> b
            y -> x
        }
        """
    )
    d = only(result, "P308")
    assert d.message == "cycle: x -> y -> x"
    assert [(n.message, n.span.line if n.span else 0) for n in d.notes] == [("x -> y", 8), ("y -> x", 9)]
    assert "remove one of these arrows" in (d.suggestion or "")


def test_fix_for_a_missing_arrow() -> None:
    result = check(
        'pipeline p {\n source a : jsonl { path = "a" }\n sink b : jsonl { path = "b" }\n a b\n}\n'
    )
    assert result.file is None and result.pipelines == []
    (d,) = result.diagnostics
    assert d.code.startswith("P0")
    assert "'->'" in d.message + (d.suggestion or "")
    assert (d.span.line, d.span.col) == (4, 4)


# ---------------------------------------------------------------------------------------- config
def test_env_and_secret_are_not_resolved_at_compile_time() -> None:
    result = check(
        """
        pipeline p {
            source a : jsonl { path = env("IN") }
            sink   b : jsonl { path = secret("OUT"), sort_keys = env("SORT", default = true) }
            a -> b
        }
        """
    )
    assert result.diagnostics == []
    result = check(
        'pipeline p {\n source a : jsonl { path = env("IN", default = 5) }\n'
        ' sink b : jsonl { path = "b" }\n a -> b\n}\n'
    )
    d = only(result, "P202")
    assert d.message == "'path' must be a string, got 5"


def test_nested_config_errors_point_at_the_item() -> None:
    result = check(
        "use shop_steps as steps\npipeline p {\n source a : steps.Numbers\n"
        ' processor s : steps.Split { fields = ["a", 2], limits = { x = 1, y = "no" } }\n'
        " sink b : steps.Collect\n a -> s -> b\n}\n"
    )
    first, second = result.diagnostics
    assert first.message == "'fields[1]' must be a string, got 2"
    assert (first.span.line, first.span.col, first.span.end_col) == (4, 45, 46)
    assert second.message == "'limits.y' must be an integer, got \"no\""
    assert second.span.col == 67


def test_missing_required_key_not_repeated_after_a_misspelling() -> None:
    result = check(
        "use shop_steps as steps\npipeline p {\n source a : steps.Numbers\n"
        " processor k : steps.KeepLarge { min_amout = 5 }\n sink b : steps.Collect\n a -> k -> b\n}\n"
    )
    assert codes(result) == ["P201"]
    assert result.diagnostics[0].suggestion == "did you mean 'min_amount'?"


def test_a_registered_type_that_failed_to_load(monkeypatch: pytest.MonkeyPatch) -> None:
    real = load_registry()
    broken = Registry(dict(real.types), {"http": "ModuleNotFoundError: No module named 'httpx'"})
    broken.types.pop("http", None)
    monkeypatch.setattr(checks_base, "load_registry", lambda: broken)
    result = check(
        'pipeline p {\n source a : http { url = "x" }\n sink b : jsonl { path = "b" }\n a -> b\n}\n'
    )
    d = only(result, "P206")
    assert "failed to load: ModuleNotFoundError: No module named 'httpx'" in d.message


# ------------------------------------------------------------------------------------ use modules
def _module_folder(tmp_path: Path, name: str, body: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "steps.py").write_text(textwrap.dedent(body), encoding="utf-8")
    return folder


PIPE_USING_STEPS = """
use steps as s
pipeline p {
    source    a : jsonl { path = "a" }
    processor f : s.FUNC
    sink      b : jsonl { path = "b" }
    a -> f -> b
}
"""


def test_use_modules_resolve_next_to_each_pipe_file(tmp_path: Path) -> None:
    one = _module_folder(tmp_path, "one", "def first(r):\n    return r\n")
    two = _module_folder(tmp_path, "two", "def second(r):\n    return r\n")
    assert check(PIPE_USING_STEPS.replace("FUNC", "first"), one).diagnostics == []
    assert check(PIPE_USING_STEPS.replace("FUNC", "second"), two).diagnostics == []
    assert codes(check(PIPE_USING_STEPS.replace("FUNC", "first"), two)) == ["P106"]
    assert check(PIPE_USING_STEPS.replace("FUNC", "first"), one).diagnostics == []


def test_a_changed_use_module_is_imported_again(tmp_path: Path) -> None:
    folder = _module_folder(tmp_path, "changing", "def old(r):\n    return r\n")
    assert check(PIPE_USING_STEPS.replace("FUNC", "old"), folder).diagnostics == []
    module = folder / "steps.py"
    module.write_text("def new(r):\n    return r\n", encoding="utf-8")
    stat = module.stat()
    os.utime(module, (stat.st_atime, stat.st_mtime + 5))
    assert check(PIPE_USING_STEPS.replace("FUNC", "new"), folder).diagnostics == []


def test_a_use_module_that_raises_while_importing(tmp_path: Path) -> None:
    folder = _module_folder(tmp_path, "raising", "raise SystemExit('no thanks')\n")
    d = only(check(PIPE_USING_STEPS.replace("FUNC", "x"), folder), "P105")
    assert d.message == "cannot import module 'steps' (alias 's'): SystemExit: no thanks"


# ------------------------------------------------------------------------------------- robustness
def test_missing_and_unreadable_files_are_diagnostics(tmp_path: Path) -> None:
    missing = check_file(str(tmp_path / "nope.pipe"))
    assert codes(missing) == ["P100"]
    assert "No such file or directory" in missing.diagnostics[0].message
    assert codes(check_file(str(tmp_path))) == ["P100"]


MUTATION_BASE = SHOP.read_text(encoding="utf-8")
TOKENS = [
    "->",
    "=>",
    "{",
    "}",
    "[",
    "]",
    "=",
    ",",
    ":",
    ".",
    "%",
    '"',
    "steps.",
    "env(",
    "secret(",
    "with",
    "source",
    "sink",
    "stage",
    "bulksink",
    "processor",
    "pipeline",
    "use",
    "orders",
    "out",
    "load",
    "daily",
    "big",
    "rejected",
    "1",
    "-1",
    "5s",
    "120%",
    "null",
    "true",
    "\n",
    " ",
    "#",
]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = MUTATION_BASE
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "swap_lines", "duplicate_line"]))
        if action == "insert":
            text = text[:where] + draw(st.sampled_from(TOKENS)) + text[where:]
        elif action == "delete":
            text = text[:where] + text[where + draw(st.integers(1, 12)) :]
        elif action == "replace":
            text = text[:where] + draw(st.text(max_size=3)) + text[where + 1 :]
        else:
            lines = text.split("\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            if action == "swap_lines":
                lines[i], lines[j] = lines[j], lines[i]
            else:
                lines.insert(j, lines[i])
            text = "\n".join(lines)
    return text


WORDS = [
    "orders",
    "clean",
    "pii",
    "big",
    "out",
    "rejected",
    "daily",
    "load",
    "steps",
    "jsonl",
    "csv",
    "sql",
    "KeepLarge",
    "Split",
    "explode",
    "Numbers",
    "Collect",
    "NOT_A_COMPONENT",
    "path",
    "batch",
    "on_error",
    "deadletter",
    "retries",
    "backoff",
    "timeout",
    "workers",
    "threshold",
    "fields",
    "min_amount",
    "x",
]
VALUES = [
    '"deadletter"',
    '"skip"',
    "0",
    "-3",
    "2.5",
    "true",
    "null",
    "5s",
    "0ms",
    "150%",
    "[1, 2]",
    "{ a = 1 }",
    'env("X")',
    'env("X", default = 3)',
    'secret("S")',
    "rejected",
    '"text"',
]


@st.composite
def semantic_mutation(draw: st.DrawFn) -> str:
    """Mutations that mostly keep the syntax valid, so that the checker itself is exercised."""
    lines = MUTATION_BASE.split("\n")
    for _ in range(draw(st.integers(1, 5))):
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["word", "value", "delete", "duplicate", "swap_arrow"]))
        words = list(re.finditer(r"[A-Za-z_]\w*", lines[i]))
        if action == "word" and words:
            m = draw(st.sampled_from(words))
            lines[i] = lines[i][: m.start()] + draw(st.sampled_from(WORDS)) + lines[i][m.end() :]
        elif action == "value" and "= " in lines[i]:
            at = lines[i].index("= ") + 2
            end = min((lines[i].find(c, at) for c in ",}" if lines[i].find(c, at) > 0), default=len(lines[i]))
            lines[i] = lines[i][:at] + draw(st.sampled_from(VALUES)) + lines[i][end:]
        elif action == "delete":
            del lines[i]
        elif action == "duplicate":
            lines.insert(draw(st.integers(0, len(lines))), lines[i])
        elif action == "swap_arrow":
            lines[i] = (
                lines[i].replace("->", "=>", 1) if "->" in lines[i] else lines[i].replace("=>", "->", 1)
            )
        if not lines:
            lines = [""]
    return "\n".join(lines)


def _assert_only_diagnostics(text: str) -> None:
    result = check_text(text, str(SHOP))
    assert all(isinstance(d, Diagnostic) for d in result.diagnostics)
    if not result.has_errors() and result.file is not None:
        assert len(result.pipelines) == len(result.file.pipelines)
    for d in result.diagnostics:
        assert d.span.file == str(SHOP)
        assert d.span.line >= 1 and d.span.col >= 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_random_mutations_produce_diagnostics_not_exceptions(text: str) -> None:
    _assert_only_diagnostics(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(semantic_mutation())
def test_semantic_mutations_produce_diagnostics_not_exceptions(text: str) -> None:
    _assert_only_diagnostics(text)


def generated_pipe(n_nodes: int) -> str:
    """A chain source -> processors... -> sink, with every declaration's config validated."""
    lines = ["use shop_steps as steps", "pipeline big {", '    source n0 : jsonl { path = "in.jsonl" }']
    for i in range(1, n_nodes - 1):
        kind = "steps.KeepLarge { min_amount = 5 }" if i % 2 else 'pii { fields = ["email"] }'
        lines.append(f"    processor n{i} : {kind} with {{ retries = 2, backoff = 100ms }}")
    lines.append(f'    sink n{n_nodes - 1} : jsonl {{ path = "out.jsonl" }} with {{ batch = 100 }}')
    lines.append("    " + " -> ".join(f"n{i}" for i in range(n_nodes)))
    lines.append("}")
    return "\n".join(lines) + "\n"


def test_checking_300_nodes_is_clean_and_complete() -> None:
    # How long this takes is measured by `bench/big_pipe.py` (see bench/README.md), not timed here.
    result = check_text(generated_pipe(300), str(VALID / "big.pipe"))
    assert result.diagnostics == []
    assert len(result.pipelines[0].nodes) == 300


def test_component_code_that_misbehaves_is_reported_not_raised(tmp_path: Path) -> None:
    folder = _module_folder(
        tmp_path,
        "misbehaving",
        """
        from pydantic import BaseModel, field_validator
        from pipec.runtime import Processor

        class Picky(Processor):
            class Config(BaseModel):
                n: int = 0

                @field_validator("n")
                @classmethod
                def explode(cls, value):
                    raise TypeError("not today")

            def process(self, record):
                return record

        def __getattr__(name):
            raise RuntimeError("lazy loading failed")
        """,
    )
    result = check(PIPE_USING_STEPS.replace("FUNC", "Picky { n = 1 }"), folder)
    assert only(result, "P202").message == "validating the config of 'f' raised TypeError: not today"
    assert codes(check(PIPE_USING_STEPS.replace("FUNC", "Lazy"), folder)) == ["P106"]


@pytest.mark.parametrize("path", sorted(VALID.glob("*.pipe")), ids=lambda p: p.name)
def test_valid_fixtures_check_clean(path: Path) -> None:
    result = check_file(str(path))
    assert result.diagnostics == []
    assert result.file is not None and len(result.pipelines) == len(result.file.pipelines)


def test_a_too_short_fixed_length_list_says_how_many_items(tmp_path: Path) -> None:
    (tmp_path / "pair_steps.py").write_text(textwrap.dedent("""
        from pydantic import BaseModel
        from pipec.runtime import Processor

        class Limits(Processor):
            class Config(BaseModel):
                limits: dict[str, tuple[float, float]]

            def process(self, record):
                return record
    """))
    result = check("""
        use pair_steps as s
        pipeline p {
          source a : jsonl { path = "x" }
          processor b : s.Limits { limits = { temperature = [-20] } }
          sink c : jsonl { path = "y" }
          a -> b -> c
        }
    """, folder=tmp_path)
    diagnostic = only(result, "P203")
    assert diagnostic.message == "'limits.temperature' needs at least 2 items, got 1"
    assert (diagnostic.span.line, diagnostic.span.col) == (5, 39)  # at `temperature = [-20]`


UNFIT_STEPS = """
from pipec.runtime import Processor, Sink, Stage, emits_many

class NoProcess(Processor):
    pass

class NoWrite(Sink):
    pass

class HalfStage(Stage):
    def stage(self, record):
        pass

class NeedsArg(Processor):
    def __init__(self, config, context, extra):
        super().__init__(config, context)

    def process(self, record):
        return record

class KeepsInit(Processor):
    def __init__(self, config, context, extra=None):
        super().__init__(config, context)

    def process(self, record):
        return record

class WriteTakesNothing(Sink):
    def write(self):
        pass

class GeneratorProcess(Processor):
    def process(self, record):
        yield record

class ManyProcess(Processor):
    emits_many = True

    def process(self, record):
        yield record

def two_args(a, b):
    return a

def with_default(record, scale=2):
    return record

def gen(record):
    yield record

@emits_many
def gen_many(record):
    yield record

async def coro(record):
    return record
"""


@pytest.mark.parametrize(
    ("role", "attr", "problem"),
    [
        ("processor", "NoProcess", "'s.NoProcess' does not define process(), which a processor must"),
        ("sink", "NoWrite", "'s.NoWrite' does not define write(), which a sink must"),
        ("stage", "HalfStage", "'s.HalfStage' does not define handoff(), which a stage must"),
        ("sink", "WriteTakesNothing", "s.WriteTakesNothing.write() cannot be called as the runner calls it"),
        ("processor", "GeneratorProcess", "s.GeneratorProcess.process() is a generator"),
        ("processor", "two_args", "s.two_args() cannot be called as the runner calls it, `two_args(record)`"),
        ("processor", "gen", "s.gen() is a generator"),
        ("processor", "coro", "s.coro() is an async function"),
        ("processor", "NeedsArg", "s.NeedsArg.__init__() cannot be called as the runner calls it"),
        ("processor", "KeepsInit", None),
        ("processor", "ManyProcess", None),
        ("processor", "with_default", None),
        ("processor", "gen_many", None),
    ],
)
def test_a_component_that_cannot_do_its_job_is_p207(
    tmp_path: Path, role: str, attr: str, problem: str | None
) -> None:
    (tmp_path / "unfit_steps.py").write_text(UNFIT_STEPS)
    body = {
        "processor": f"processor n : s.{attr}\n  sink o : jsonl {{ path = 'o' }}\n  a -> n -> o",
        "sink": f"sink n : s.{attr}\n  a -> n",
        "stage": f"stage n : s.{attr}\n  bulksink b : sql {{ url = 'sqlite:///x.db', table = 't' }}\n  a -> n => b",
    }[role].replace("'", '"')
    result = check(f"""
        use unfit_steps as s
        pipeline p {{
          source a : jsonl {{ path = "x" }}
          {body}
        }}
    """, folder=tmp_path)
    if problem is None:
        assert result.diagnostics == []
    else:
        assert only(result, "P207").message.startswith(problem)
