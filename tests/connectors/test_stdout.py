from __future__ import annotations

from typing import Any

import pytest

from pipec.connectors.stdout import StdoutSink, component


def test_component_roles() -> None:
    assert component.roles == ("sink",)


def run(make: Any, records: list[Any], **config: Any) -> None:
    sink = make(StdoutSink, **config)
    sink.open()
    for record in records:
        sink.write(record)
    sink.close()


def test_json_lines(make: Any, capsys: pytest.CaptureFixture[str]) -> None:
    run(make, [{"b": 1, "a": "x"}, {"a": None}])
    assert capsys.readouterr().out == '{"a": "x", "b": 1}\n{"a": null}\n'


def test_pretty_repr_prefix_and_stderr(make: Any, capsys: pytest.CaptureFixture[str]) -> None:
    run(make, [{"a": 1}], format="pretty", prefix="out> ")
    assert capsys.readouterr().out == 'out> {\n  "a": 1\n}\n'
    run(make, [{"a": 1}], format="repr", stream="stderr", flush=True)
    assert capsys.readouterr().err == "{'a': 1}\n"


def test_template(make: Any, capsys: pytest.CaptureFixture[str]) -> None:
    run(make, [{"id": 1, "name": "x"}], format="template", template="{id}: {name}")
    assert capsys.readouterr().out == "1: x\n"
    sink = make(StdoutSink, format="template", template="{id}: {email}")
    sink.open()
    with pytest.raises(KeyError, match="'email'"):
        sink.write({"id": 1})
    sink.close()


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="needs `template`"):
        StdoutSink.Config(format="template")
    with pytest.raises(ValueError, match="only with format"):
        StdoutSink.Config(template="{x}")
    with pytest.raises(ValueError, match="not a valid format string"):
        StdoutSink.Config(format="template", template="{x")


def test_json_formats_refuse_nan_and_keep_decimal_digits(capsys: pytest.CaptureFixture[str], make: Any) -> None:
    import decimal

    for fmt in ("json", "pretty"):
        sink = make(StdoutSink, format=fmt)
        sink.open()
        with pytest.raises(ValueError, match="field 'v' is inf, which cannot be written as JSON"):
            sink.write({"v": float("inf")})
        sink.write({"d": decimal.Decimal("0.12345678901234567891")})
        sink.close()
    out = capsys.readouterr().out
    assert "Infinity" not in out and out.count('"0.12345678901234567891"') == 2
