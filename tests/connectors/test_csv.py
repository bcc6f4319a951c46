from __future__ import annotations

import datetime
import decimal
from pathlib import Path
from typing import Any

import pytest

from pipec.connectors.csv_files import CsvSink, CsvSource, component
from pipec.connectors.jsonl import JsonlSource


def read_all(source: Any) -> list[Any]:
    source.open()
    try:
        return list(source.records())
    finally:
        source.close()


def test_component_roles() -> None:
    assert component.name == "csv"
    assert component.roles == ("source", "sink")


def test_source_reads_rows_with_typed_columns(tmp_path: Path, make: Any, rejects: Any) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(
        "\ufeffid,amount,price,active,note,day,total\n"
        '1,10,2.5,true,"hello, world",2024-01-02,1.10\n'
        "\n"
        '2,,3,no,"multi\nline",,2\n',
        encoding="utf-8",
    )
    columns = {
        "id": "int",
        "amount": "int",
        "price": "float",
        "active": "bool",
        "day": "date",
        "total": "decimal",
    }
    records = read_all(make(CsvSource, rejects, path=str(path), columns=columns))
    assert records == [
        {
            "id": 1,
            "amount": 10,
            "price": 2.5,
            "active": True,
            "note": "hello, world",
            "day": datetime.date(2024, 1, 2),
            "total": decimal.Decimal("1.10"),
        },
        {
            "id": 2,
            "amount": None,
            "price": 3.0,
            "active": False,
            "note": "multi\nline",
            "day": None,
            "total": decimal.Decimal("2"),
        },
    ]
    assert rejects.items == []


def test_source_rejects_bad_rows_with_line_numbers(tmp_path: Path, make: Any, rejects: Any) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(
        'id,amount,note\n1,10,a\n2,abc,b\n"3",30\n"4",40,"x\ny"\n5,5,5,5\n6,60,c\n', encoding="utf-8"
    )
    records = read_all(make(CsvSource, rejects, path=str(path), columns={"amount": "int"}))
    assert [r["id"] for r in records] == ["1", "4", "6"]
    assert rejects.messages == [
        f"{path}:3: column 'amount': cannot read 'abc' as int: invalid literal for int() with base 10: 'abc'",
        f"{path}:4: expected 3 fields, got 2",
        f"{path}:7: expected 3 fields, got 4",
    ]
    assert rejects.items[1][0] == ["3", "30"]


def test_source_declared_column_missing_from_header(tmp_path: Path, make: Any) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("id,amount\n1,2\n")
    source = make(CsvSource, path=str(path), columns={"amout": "int"})
    with pytest.raises(ValueError, match=r"columns 'amout' are not in the file \(its columns: id, amount\)"):
        source.open()
    source.close()


def test_source_missing_file(tmp_path: Path, make: Any) -> None:
    source = make(CsvSource, path=str(tmp_path / "missing.csv"))
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        source.open()


def test_source_empty_file_yields_nothing(tmp_path: Path, make: Any) -> None:
    path = tmp_path / "e.csv"
    path.write_text("")
    assert read_all(make(CsvSource, path=str(path))) == []


def test_source_without_header_and_other_delimiter(tmp_path: Path, make: Any) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("1\tx\n2\ty\n")
    source = make(
        CsvSource,
        path=str(path),
        delimiter="\t",
        has_header=False,
        fieldnames=["n", "s"],
        columns={"n": "int"},
    )
    assert read_all(source) == [{"n": 1, "s": "x"}, {"n": 2, "s": "y"}]
    with pytest.raises(ValueError, match="fieldnames is required"):
        CsvSource.Config(path="x", has_header=False)


def test_source_rejects_bad_bool_and_json(tmp_path: Path, make: Any, rejects: Any) -> None:
    path = tmp_path / "t.csv"
    path.write_text('a,j\nmaybe,{}\ntrue,"{""k"": 1}"\nyes,{bad\n')
    records = read_all(make(CsvSource, rejects, path=str(path), columns={"a": "bool", "j": "json"}))
    assert records == [{"a": True, "j": {"k": 1}}]
    assert [m.split(": column")[0] for m in rejects.messages] == [f"{path}:2", f"{path}:4"]


def test_sink_header_from_first_record_and_roundtrip(tmp_path: Path, make: Any) -> None:
    path = tmp_path / "out" / "o.csv"
    sink = make(CsvSink, path=str(path))
    sink.open()
    sink.write({"id": 1, "name": "a,b", "ok": True, "tags": ["x"], "none": None})
    sink.write_batch([{"id": 2, "name": 'q"uote', "ok": False}, {"id": 3}])
    sink.close()
    assert path.read_text() == ('id,name,ok,tags,none\n1,"a,b",true,"[""x""]",\n2,"q""uote",false,,\n3,,,,\n')
    source = make(CsvSource, path=str(path), columns={"id": "int", "ok": "bool", "tags": "json"})
    assert read_all(source)[0] == {"id": 1, "name": "a,b", "ok": True, "tags": ["x"], "none": ""}


def test_sink_extra_keys_fail_the_record(tmp_path: Path, make: Any) -> None:
    path = tmp_path / "o.csv"
    sink = make(CsvSink, path=str(path), fields=["id", "name"])
    sink.open()
    sink.write({"id": 1, "name": "a"})
    with pytest.raises(ValueError, match="keys that are not columns: 'email'"):
        sink.write({"id": 2, "name": "b", "email": "x@y"})
    with pytest.raises(ValueError, match="'email'"):
        sink.write_batch([{"id": 3}, {"id": 4, "email": "x"}])
    sink.write({"id": 5})
    sink.close()
    assert path.read_text() == "id,name\n1,a\n5,\n"


def test_sink_ignore_extras_and_append_without_second_header(tmp_path: Path, make: Any) -> None:
    path = tmp_path / "o.csv"
    for i in range(2):
        sink = make(CsvSink, path=str(path), fields=["id"], extra="ignore", append=True)
        sink.open()
        sink.write({"id": i, "x": 1})
        sink.close()
    assert path.read_text() == "id\n0\n1\n"


def test_sink_with_fields_writes_header_even_when_empty(tmp_path: Path, make: Any) -> None:
    path = tmp_path / "o.csv"
    sink = make(CsvSink, path=str(path), fields=["a", "b"], line_terminator="\r\n")
    sink.open()
    sink.close()
    assert path.read_bytes() == b"a,b\r\n"


def test_jsonl_to_csv(tmp_path: Path, make: Any) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"a": 1, "b": "x"}\n{"a": 2, "b": "y"}\n')
    source = make(JsonlSource, path=str(src))
    sink = make(CsvSink, path=str(tmp_path / "o.csv"))
    source.open()
    sink.open()
    for record in source.records():
        sink.write(record)
    source.close()
    sink.close()
    assert (tmp_path / "o.csv").read_text() == "a,b\n1,x\n2,y\n"


def test_source_rejects_a_row_with_undecodable_bytes_and_reads_on(tmp_path: Path, make: Any, rejects: Any) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(b"id,name\n1,ok\n2,caf\xe9\n3,\xc3\xa9t\xc3\xa9\n")
    records = read_all(make(CsvSource, rejects, path=str(path)))
    assert records == [{"id": "1", "name": "ok"}, {"id": "3", "name": "été"}]
    assert rejects.messages == [f"{path}:3: not valid utf-8-sig text"]


def test_sink_json_cells_are_strict_and_keep_decimal_digits(tmp_path: Path, make: Any) -> None:
    path = tmp_path / "o.csv"
    sink = make(CsvSink, path=str(path), fields=["id", "tags"])
    sink.open()
    with pytest.raises(ValueError, match=r"field 'tags\[1\]' is nan, which cannot be written as JSON"):
        sink.write({"id": 1, "tags": [1, float("nan")]})
    sink.write({"id": 2, "tags": {"d": decimal.Decimal("0.12345678901234567891")}})
    sink.close()
    assert path.read_text() == 'id,tags\n2,"{""d"": ""0.12345678901234567891""}"\n'


def test_fake_gzip_fails_in_open_naming_the_file(tmp_path: Path, make: Any) -> None:
    fake = tmp_path / "fake.csv.gz"
    fake.write_text("id\n1\n")
    with pytest.raises(OSError, match=rf"^{fake}:1: not a gzip file"):
        make(CsvSource, path=str(fake)).open()
