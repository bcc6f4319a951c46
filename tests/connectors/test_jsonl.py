from __future__ import annotations

import datetime
import decimal
import gzip
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from pipec.connectors.jsonl import JsonlSink, JsonlSource, JsonlStage, component


def read_all(source: Any) -> list[Any]:
    source.open()
    try:
        return list(source.records())
    finally:
        source.close()


def test_component_roles() -> None:
    assert component.name == "jsonl"
    assert component.roles == ("source", "sink", "stage")


def test_source_reads_objects_and_skips_blank_lines(tmp_path: Path, make: Any, rejects: Any) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"a": 1}\n\n   \n{"a": 2, "b": "é"}\r\n{"a": 3}', encoding="utf-8")
    records = read_all(make(JsonlSource, rejects, path=str(path)))
    assert records == [{"a": 1}, {"a": 2, "b": "é"}, {"a": 3}]
    assert rejects.items == []


def test_source_rejects_malformed_lines_with_line_numbers(tmp_path: Path, make: Any, rejects: Any) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"a": 1}\n{"a": \n[1, 2]\n{"a": 4}\nnot json\n', encoding="utf-8")
    records = read_all(make(JsonlSource, rejects, path=str(path)))
    assert records == [{"a": 1}, {"a": 4}]
    assert len(rejects.items) == 3
    assert rejects.messages[0].startswith(f"{path}:2: malformed JSON")
    assert rejects.messages[1] == f"{path}:3: expected a JSON object, got list"
    assert rejects.messages[2].startswith(f"{path}:5: malformed JSON")
    assert rejects.items[0][0] == '{"a": '


def test_source_rejects_a_line_nested_too_deeply(tmp_path: Path, make: Any, rejects: Any) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"a": 1}\n' + "[" * 100_000 + "]" * 100_000 + '\n{"a": 3}\n', encoding="utf-8")
    records = read_all(make(JsonlSource, rejects, path=str(path)))
    assert records == [{"a": 1}, {"a": 3}]
    assert rejects.messages == [f"{path}:2: malformed JSON: nested too deeply"]


def test_source_missing_file_fails_in_open(tmp_path: Path, make: Any) -> None:
    source = make(JsonlSource, path=str(tmp_path / "nope.jsonl"))
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        source.open()
    source.close()  # close after a failed open is harmless


def test_source_reads_gzip(tmp_path: Path, make: Any) -> None:
    path = tmp_path / "in.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write('{"a": 1}\n{"a": 2}\n')
    assert read_all(make(JsonlSource, path=str(path))) == [{"a": 1}, {"a": 2}]


def test_sink_output_is_byte_identical_to_the_plain_loop(tmp_path: Path, make: Any) -> None:
    records = [{"b": i, "a": f"x{i}", "u": "é☃", "n": None, "l": [1.5, True]} for i in range(2000)]
    expected = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode("utf-8")
    path = tmp_path / "deep" / "er" / "out.jsonl"
    sink = make(JsonlSink, path=str(path))
    sink.open()
    for record in records[:1000]:
        sink.write(record)
    sink.write_batch(records[1000:])
    sink.close()
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(expected).hexdigest()


def test_sink_options_append_and_unicode(tmp_path: Path, make: Any) -> None:
    path = tmp_path / "out.jsonl"
    for value in ("é", "ü"):
        sink = make(JsonlSink, path=str(path), append=True, ensure_ascii=False, sort_keys=False)
        sink.open()
        sink.write({"z": value, "a": 1})
        sink.close()
    assert path.read_text(encoding="utf-8") == '{"z": "é", "a": 1}\n{"z": "ü", "a": 1}\n'


def test_sink_encodes_sql_values(tmp_path: Path, make: Any) -> None:
    path = tmp_path / "out.jsonl"
    sink = make(JsonlSink, path=str(path))
    sink.open()
    sink.write(
        {
            "d": datetime.date(2024, 5, 1),
            "m": decimal.Decimal("12.50"),
            "i": decimal.Decimal("3"),
            "b": b"\x00\x01",
        }
    )
    with pytest.raises(TypeError, match="not JSON serializable"):
        sink.write({"x": object()})
    sink.close()
    assert json.loads(path.read_text()) == {"d": "2024-05-01", "m": 12.5, "i": 3, "b": "AAE="}


def test_sink_unwritable_path_fails_in_open(tmp_path: Path, make: Any) -> None:
    (tmp_path / "file").write_text("x")
    sink = make(JsonlSink, path=str(tmp_path / "file" / "out.jsonl"))
    with pytest.raises(OSError, match="out.jsonl"):
        sink.open()
    sink.close()


def test_config_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="pathh"):
        JsonlSink.Config(pathh="x")  # type: ignore[call-arg]


def test_stage_hands_off_its_path(tmp_path: Path, make: Any) -> None:
    path = tmp_path / "stage" / "s.jsonl"
    stage = make(JsonlStage, path=str(path))
    stage.open()
    stage.stage({"a": 1})
    stage.stage({"a": 2})
    stage.close()
    handoff = stage.handoff()
    assert handoff == str(path)
    assert [json.loads(line) for line in Path(handoff).read_text().splitlines()] == [{"a": 1}, {"a": 2}]


def test_stage_without_path_uses_a_temporary_file(make: Any) -> None:
    stage = make(JsonlStage)
    stage.open()
    stage.stage({"a": 1})
    stage.close()
    handoff = stage.handoff()
    try:
        assert Path(handoff).read_text() == '{"a": 1}\n'
    finally:
        os.unlink(handoff)


def test_import_leaves_the_heavy_libraries_unloaded() -> None:
    # The runner's import cost is measured by the bench; here only what makes it cheap is checked.
    import subprocess
    import sys

    code = (
        "import sys, pipec.connectors.jsonl; "
        "print(sorted(m for m in ('sqlalchemy', 'httpx', 'sqlglot') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_source_rejects_a_line_with_undecodable_bytes_and_reads_on(tmp_path: Path, make: Any, rejects: Any) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b'{"id": 1}\n{"name": "caf\xe9"}\n{"id": 3, "name": "\xc3\xa9t\xc3\xa9"}\n')
    records = read_all(make(JsonlSource, rejects, path=str(path)))
    assert records == [{"id": 1}, {"id": 3, "name": "été"}]
    assert rejects.messages == [f"{path}:2: not valid utf-8 text"]


def test_sink_writes_decimals_without_losing_digits(tmp_path: Path, make: Any) -> None:
    D = decimal.Decimal
    path = tmp_path / "out.jsonl"
    sink = make(JsonlSink, path=str(path))
    sink.open()
    sink.write(
        {
            "big": D("12345678901234567890123"),  # a PostgreSQL numeric no float holds
            "fine": D("0.12345678901234567891"),
            "price": D("19.99"),
            "half": D("12.50"),
            "tiny": D("1E-7"),
        }
    )
    sink.close()
    text = path.read_text()
    assert '"big": 12345678901234567890123' in text  # an integer, every digit
    assert '"fine": "0.12345678901234567891"' in text  # exact digits, as text
    assert json.loads(text) == {
        "big": 12345678901234567890123,
        "fine": "0.12345678901234567891",
        "price": 19.99,
        "half": 12.5,
        "tiny": 1e-07,
    }
    back = json.loads(text, parse_float=D)
    assert back["price"] == D("19.99") and back["tiny"] == D("1E-7")  # the numbers' text is exact


@pytest.mark.parametrize(
    ("value", "shown"),
    [(float("nan"), "nan"), (float("-inf"), "-inf"), (decimal.Decimal("NaN"), "NaN"),
     (decimal.Decimal("Infinity"), "Infinity")],
)
def test_sink_refuses_nan_and_infinity(tmp_path: Path, make: Any, value: Any, shown: str) -> None:
    path = tmp_path / "out.jsonl"
    sink = make(JsonlSink, path=str(path))
    sink.open()
    sink.write({"id": 1})
    with pytest.raises(ValueError, match=rf"field 'm\[1\]' is {shown}, which cannot be written as JSON"):
        sink.write({"id": 2, "m": [1, value]})
    with pytest.raises(ValueError):
        sink.write_batch([{"id": 3}, {"id": 4, "m": value}])  # all or nothing: the batch writes nothing
    sink.close()
    assert path.read_text() == '{"id": 1}\n'  # valid JSON only: no bare NaN line


def test_stage_refuses_nan(make: Any, tmp_path: Path) -> None:
    stage = make(JsonlStage, path=str(tmp_path / "s.jsonl"))
    stage.open()
    with pytest.raises(ValueError, match="field 'x' is nan"):
        stage.stage({"x": float("nan")})
    stage.close()
    assert (tmp_path / "s.jsonl").read_text() == ""


def test_truncated_or_fake_gzip_names_the_file_and_line(tmp_path: Path, make: Any) -> None:
    whole = gzip.compress(b"".join(b'{"id": %d, "pad": "%s"}\n' % (i, b"x" * 50) for i in range(2000)))
    truncated = tmp_path / "cut.jsonl.gz"
    truncated.write_bytes(whole[: len(whole) // 2])
    source = make(JsonlSource, path=str(truncated))
    source.open()
    seen = []
    with pytest.raises(EOFError, match=rf"^{truncated}:(\d+): the gzip file is truncated") as caught:
        for record in source.records():
            seen.append(record)
    source.close()
    assert seen and f"{truncated}:{len(seen) + 1}: " in str(caught.value)  # the line it stopped in
    fake = tmp_path / "fake.jsonl.gz"
    fake.write_text('{"id": 1}\n')
    source = make(JsonlSource, path=str(fake))
    source.open()
    with pytest.raises(OSError, match=rf"^{fake}:1: not a gzip file"):
        list(source.records())
    source.close()


def test_a_run_removes_the_temporary_file_of_a_stage_without_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc
    import sqlite3
    import tempfile

    from e2e.harness import run_pipe

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where mkstemp puts the staging file
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "in.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in range(3)))
    result = run_pipe(tmp_path / "run", """pipeline t {
    source   items  : jsonl { path = "in.jsonl" }
    stage    staged : jsonl
    stage    kept   : jsonl { path = "kept.jsonl" }
    bulksink load   : sql { url = "sqlite:///out.db", table = "items", create = true }
    bulksink load2  : sql { url = "sqlite:///out.db", table = "items2", create = true }
    items -> staged => load
    items -> kept => load2
}
""")
    assert result.code == 0
    with sqlite3.connect(tmp_path / "run" / "out.db") as db:
        assert db.execute("SELECT count(*) FROM items").fetchone() == (3,)  # published from the file
    gc.collect()  # the run is over and gone
    assert list(temp.iterdir()) == []  # its own temporary file was removed
    assert len(result.lines("kept.jsonl")) == 3  # a file the user named stays


def test_stage_removes_only_its_own_temporary_file(tmp_path: Path, make: Any) -> None:
    import gc

    stage = make(JsonlStage)
    stage.open()
    stage.close()
    own = Path(stage.handoff())
    named = make(JsonlStage, path=str(tmp_path / "named.jsonl"))
    named.open()
    named.close()
    assert own.exists()
    del stage, named
    gc.collect()
    assert not own.exists() and (tmp_path / "named.jsonl").exists()
