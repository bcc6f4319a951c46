from __future__ import annotations

import copy
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from pipec.connectors.pii import PiiProcessor, component, luhn_valid


def processor(make: Any, **config: Any) -> Any:
    built = make(PiiProcessor, **config)
    built.open()
    return built


def test_component_roles() -> None:
    assert component.roles == ("processor",)


def test_tags_fields_by_name(make: Any) -> None:
    pii = processor(make, detect_values=False)
    record = {
        "id": 1,
        "email_address": "x",
        "Phone": "x",
        "ssn": "x",
        "first_name": "x",
        "product_name": "x",
        "table_name": "x",
        "home_address": "x",
        "ip_address": "x",
        "date_of_birth": "x",
        "dob": "x",
        "card_number": "x",
        "iban": "x",
        "amount": 3,
    }
    tags = pii.process(record)["_pii"]
    assert tags == {
        "Phone": ["phone"],
        "card_number": ["card"],
        "date_of_birth": ["birth_date"],
        "dob": ["birth_date"],
        "email_address": ["email"],
        "first_name": ["person_name"],
        "home_address": ["address"],
        "iban": ["bank_account"],
        "ip_address": ["ip_address"],
        "ssn": ["national_id"],
    }


def test_tags_fields_by_value(make: Any) -> None:
    pii = processor(make)
    record = {
        "a": "write to jane.doe@example.org please",
        "b": "+1 (555) 123-4567",
        "c": "4111 1111 1111 1111",
        "d": "4111 1111 1111 1112",  # fails the Luhn check
        "e": "SSN 123-45-6789 on file",
        "f": "GB82 WEST 1234 5698 7654 32",
        "g": "10.0.0.12",
        "h": "2024-01-02",
        "i": 4012888888881881,
        "j": "just text",
        "k": 12.5,
    }
    assert pii.process(record)["_pii"] == {
        "a": ["email"],
        "b": ["phone"],
        "c": ["card"],
        "e": ["national_id"],
        "f": ["bank_account"],
        "g": ["ip_address"],
        "i": ["card"],
    }


def test_masks_without_mutating_the_input(make: Any) -> None:
    pii = processor(make, mask=True)
    record = {"id": 7, "email": "a@b.co", "customer": {"phone_number": "555-123-4567", "city": "Oslo"}}
    before = copy.deepcopy(record)
    out = pii.process(record)
    assert record == before
    assert out == {
        "id": 7,
        "email": "***",
        "customer": {"phone_number": "***", "city": "Oslo"},
        "_pii": {"customer.phone_number": ["phone"], "email": ["email"]},
    }


def test_mask_styles_and_forced_fields(make: Any) -> None:
    hashed = processor(make, mask=True, mask_style="hash", fields=["notes"])
    out = hashed.process({"email": "a@b.co", "notes": "nothing", "other": None})
    assert out["email"].startswith("sha256:") and out["email"] == hashed.process({"email": "a@b.co"})["email"]
    assert out["notes"].startswith("sha256:")
    assert out["_pii"] == {"email": ["email"], "notes": ["pii"]}
    partial = processor(make, mask=True, mask_style="partial", tag_field=None)
    assert partial.process({"card": "4111111111111111"}) == {"card": "************1111"}
    replaced = processor(make, mask=True, mask_with=None)
    assert replaced.process({"email": "a@b.co"})["email"] is None


KEY = "k3y-for-PII-tests-0f9c2"


def test_hash_with_a_key_is_an_hmac(make: Any) -> None:
    keyed = processor(make, mask=True, mask_style="hash", key=KEY)
    out = keyed.process({"email": "a@b.co", "phone": "+44 20 7946 0958"})
    expected = hmac.new(KEY.encode(), b"a@b.co", hashlib.sha256).hexdigest()[:32]
    assert out["email"] == "hmac-sha256:" + expected
    assert out["phone"].startswith("hmac-sha256:") and len(out["phone"]) == len("hmac-sha256:") + 32
    assert keyed.process({"email": "a@b.co"})["email"] == out["email"]  # stable: joins still work
    other = processor(make, mask=True, mask_style="hash", key=KEY + "x")
    assert other.process({"email": "a@b.co"})["email"] != out["email"]
    # Without a key the digest stays the plain (guessable) sha256 it always was.
    unkeyed = processor(make, mask=True, mask_style="hash")
    plain = hashlib.sha256(b"a@b.co").hexdigest()[:32]
    assert unkeyed.process({"email": "a@b.co"})["email"] == "sha256:" + plain
    assert KEY not in repr(keyed.config) and KEY not in str(keyed.config)


def test_key_errors_never_show_the_key() -> None:
    with pytest.raises(ValidationError) as wrong_style:
        PiiProcessor.Config(mask=True, mask_style="partial", key=KEY)
    with pytest.raises(ValidationError) as empty:
        PiiProcessor.Config(mask=True, mask_style="hash", key="")
    assert 'key is used only with mask_style = "hash"' in str(wrong_style.value)
    assert "key is empty" in str(empty.value)
    for error in (*wrong_style.value.errors(), *empty.value.errors()):
        assert KEY not in error["msg"]


def test_a_secret_key_never_reaches_the_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from pipec.cli import main

    monkeypatch.setenv("PIPEC_TEST_PII_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.jsonl").write_text('{"id": 1, "email": "a@b.co"}\n', encoding="utf-8")
    (tmp_path / "p.pipe").write_text(
        """pipeline p {
    source src : jsonl { path = "in.jsonl" }
    processor mask : pii { mask = true, mask_style = "hash", key = secret("PIPEC_TEST_PII_KEY") }
    sink out : jsonl { path = "out.jsonl" }
    src -> mask -> out
}
""",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["run", "p.pipe", "--report", "report.json"])
    assert result.exit_code == 0, result.output
    [row] = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert row["email"] == "hmac-sha256:" + hmac.new(KEY.encode(), b"a@b.co", hashlib.sha256).hexdigest()[:32]
    assert KEY not in result.output
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(encoding="utf-8", errors="replace"), path


def test_custom_patterns_ignore_and_value_kinds(make: Any) -> None:
    pii = processor(
        make,
        builtin_name_patterns=False,
        name_patterns={"employee": r"^emp_no$"},
        ignore_fields=["contact"],
        value_kinds=["email"],
    )
    out = pii.process(
        {"emp_no": 5, "email": "x", "contact": "a@b.co", "note": "a@b.co", "p": "+1 555 123 4567"}
    )
    assert out["_pii"] == {"emp_no": ["employee"], "note": ["email"]}
    with pytest.raises(ValueError, match="not a valid regular expression"):
        PiiProcessor.Config(name_patterns={"x": "("})


def test_lists_and_nested_structures(make: Any) -> None:
    pii = processor(make, mask=True)
    out = pii.process(
        {
            "contacts": [{"email": "a@b.co", "role": "x"}, {"email": "c@d.co", "role": "y"}],
            "phones": ["+44 20 7946 0958", "n/a"],
            "address": {"street": "1 Main St", "city": "X"},
        }
    )
    assert out["contacts"] == [{"email": "***", "role": "x"}, {"email": "***", "role": "y"}]
    assert out["phones"] == ["***", "***"]  # the name says every item is a phone number
    assert out["address"] == "***"
    assert out["_pii"] == {"address": ["address"], "contacts[].email": ["email"], "phones": ["phone"]}


def test_catalog_records_get_column_tags(make: Any) -> None:
    pii = processor(make)
    record = {
        "table": "customers",
        "columns": [
            {"name": "id", "type": "INTEGER"},
            {"name": "email", "type": "VARCHAR(100)"},
            {"name": "birth_date", "type": "DATE"},
        ],
    }
    out = pii.process(record)
    assert [c["pii"] for c in out["columns"]] == [[], ["email"], ["birth_date"]]
    assert out["_pii"] == {"email": ["email"], "birth_date": ["birth_date"]}
    assert "pii" not in record["columns"][1]
    assert processor(make, catalog="never").process(record)["_pii"] == {}


def test_rejects_non_dict_records(make: Any) -> None:
    with pytest.raises(TypeError):
        processor(make).process(["a"])


def luhn_reference(number: str) -> bool:
    digits = [int(d) for d in number]
    odd = digits[-1::-2]
    even = [sum(divmod(2 * d, 10)) for d in digits[-2::-2]]
    return (sum(odd) + sum(even)) % 10 == 0


@given(st.text(alphabet="0123456789", min_size=1, max_size=20))
def test_luhn_matches_the_reference(number: str) -> None:
    assert luhn_valid(number) == luhn_reference(number)


@given(st.dictionaries(st.text(max_size=12), st.one_of(st.none(), st.integers(), st.text(max_size=30))))
def test_any_flat_record_is_processed_and_keeps_its_keys(record: dict[str, Any]) -> None:
    from pipec.runtime import Context

    pii = PiiProcessor(PiiProcessor.Config(mask=True), Context("t", "p", "n", "t.pipe:1"))
    pii.open()
    record.pop("_pii", None)
    out = pii.process(record)
    assert set(out) == set(record) | {"_pii"}
    assert set(out["_pii"]) <= set(record)
