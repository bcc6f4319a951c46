"""`pii`: a processor that finds personal data in records, tags it, and can mask it.

Two kinds of evidence: a field's *name* (`email`, `phone`, `ssn`, `birth_date`, `card_number`, ...) and
its *value* (an e-mail address, a phone number, a card number passing the Luhn check, a US social
security number, an IBAN passing its mod-97 check, an IPv4 address). Catalog records from `sql_metadata`
(a `columns` list) get each column tagged by its name instead.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipec.runtime import ComponentType, Processor

#: Field-name patterns (case-insensitive `re.search` on the field name), tried in this order.
DEFAULT_NAME_PATTERNS: dict[str, str] = {
    "email": r"e[-_ ]?mail",
    "phone": r"phone|mobile|(^|_)cell(_|$)|(^|_)fax(_|$)|(^|_)tel(ephone)?(_|$)|msisdn",
    "national_id": r"(^|_)ssn(_|$)|social_?security|national_?id|(^|_)(nin|sin|tin|tax_?id|nino)(_|$)"
    r"|passport",
    "card": r"card_?(number|num|no)|credit_?card|(^|_)cc_?(number|num|no)?(_|$)|(^|_)(pan|cvv|cvc)(_|$)",
    "bank_account": r"iban|account_?(number|num|no)|routing_?(number|num|no)|bank_?account|(^|_)bic(_|$)",
    "ip_address": r"(^|_)ip(_?addr(ess)?)?(_|$)|ip_?address",
    "birth_date": r"birth|(^|_)dob(_|$)",
    "address": r"address|street|(^|_)addr(_|$)|post(al)?_?code|zip_?code|(^|_)zip(_|$)",
    "person_name": r"(^|_)(first|last|middle|full|given|family|maiden|customer|contact|person)_?name$"
    r"|^(surname|forename)$",
}

ValueKind = Literal["email", "phone", "card", "national_id", "bank_account", "ip_address"]
ALL_VALUE_KINDS: tuple[ValueKind, ...] = (
    "email",
    "phone",
    "card",
    "national_id",
    "bank_account",
    "ip_address",
)

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE = re.compile(r"\+?(?:\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,5}(?:[\s.-]\d{2,5}){1,4}|\+\d{7,15}")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number carries."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _is_card(text: str) -> bool:
    for match in _CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn_valid(digits):
            return True
    return False


def _iban_valid(candidate: str) -> bool:
    text = candidate.replace(" ", "")
    if not 15 <= len(text) <= 34:
        return False
    rearranged = text[4:] + text[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


def _is_phone(text: str) -> bool:
    text = text.strip()
    if not 7 <= len(text) <= 25 or _ISO_DATE.match(text) or not _PHONE.fullmatch(text):
        return False
    digits = sum(char.isdigit() for char in text)
    return 7 <= digits <= 15 and not _IPV4.fullmatch(text)


def _detectors() -> dict[str, Callable[[str], bool]]:
    return {
        "email": lambda text: "@" in text and _EMAIL.search(text) is not None,
        "card": lambda text: sum(char.isdigit() for char in text) >= 13 and _is_card(text),
        "national_id": lambda text: "-" in text and _SSN.search(text) is not None,
        "bank_account": lambda text: any(_iban_valid(m.group()) for m in _IBAN.finditer(text)),
        "ip_address": lambda text: text.count(".") >= 3 and _IPV4.search(text) is not None,
        "phone": _is_phone,
    }


class PiiProcessor(Processor):
    """Tags the fields of each record that hold personal data, and optionally masks their values.

    The output record is a new dict (the input is never changed) with `tag_field` (default `_pii`)
    mapping each PII field to the sorted kinds found, e.g. `{"email": ["email"], "notes": ["card"]}`;
    nested fields are named by path (`customer.email`, `contacts[].phone`). With `mask`, those fields'
    values are replaced. A record with a `columns` list of column dicts (from `sql_metadata`) is a
    catalog record: each column gets a `pii` list of kinds found from its name, and `tag_field` maps
    column names to kinds.
    """

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        fields: list[str] = Field(
            default_factory=list,
            description="Field (or column) names that are always PII, whatever their name or value.",
        )
        name_patterns: dict[str, str] = Field(
            default_factory=dict,
            description="Extra name patterns: kind -> regular expression searched (case-insensitively) in "
            "field names; a kind named like a built-in one replaces it.",
        )
        builtin_name_patterns: bool = Field(
            True,
            description="Use the built-in name patterns (email, phone, national_id, card, bank_account, "
            "ip_address, birth_date, address, person_name).",
        )
        ignore_fields: list[str] = Field(
            default_factory=list, description="Field names never tagged (e.g. an 'email_verified' flag)."
        )
        detect_values: bool = Field(True, description="Also look at string values for PII (not only names).")
        value_kinds: list[ValueKind] = Field(
            default_factory=lambda: list(ALL_VALUE_KINDS),
            description="Which value detectors to run: email, phone, card (Luhn-checked), national_id "
            "(US SSN), bank_account (IBAN, mod-97 checked), ip_address.",
        )
        mask: bool = Field(False, description="Replace the values of PII fields.")
        mask_style: Literal["replace", "hash", "partial"] = Field(
            "replace",
            description="replace: the value becomes `mask_with`; hash: a stable digest, truncated to 32 hex "
            "characters (joins still work): HMAC-SHA256 with `key` if set, else a plain sha256, which is "
            "only pseudonymous (values can be found again by hashing guesses); partial: all but the last 4 "
            "characters become '*'.",
        )
        key: str | None = Field(
            None,
            repr=False,
            description='Secret key for mask_style = "hash", given as secret("PII_KEY"): the digest becomes '
            "HMAC-SHA256 (`hmac-sha256:...`), which cannot be reversed by guessing without the key. "
            "Strongly recommended with hash.",
        )
        mask_with: Any = Field("***", description="The replacement value when mask_style is replace.")
        tag_field: str | None = Field(
            "_pii", description="Field added to each record with what was found; null adds nothing."
        )
        catalog: Literal["auto", "always", "never"] = Field(
            "auto",
            description="Treat records with a `columns` list of column dicts (from sql_metadata) as catalog "
            "records and tag their columns: auto-detect, always, or never.",
        )

        @field_validator("name_patterns")
        @classmethod
        def _patterns_compile(cls, patterns: dict[str, str]) -> dict[str, str]:
            for kind, pattern in patterns.items():
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(
                        f"name pattern for {kind!r} is not a valid regular expression: {exc}"
                    ) from None
            return patterns

        # Messages here never include the key's value (nor does pipec print pydantic's input values).
        @field_validator("key")
        @classmethod
        def _key_not_empty(cls, key: str | None) -> str | None:
            if key is not None and not key:
                raise ValueError("key is empty: give it a long random value, e.g. secret(\"PII_KEY\")")
            return key

        @model_validator(mode="after")
        def _key_needs_hash(self) -> PiiProcessor.Config:
            if self.key is not None and self.mask_style != "hash":
                raise ValueError(f'key is used only with mask_style = "hash", not {self.mask_style!r}')
            return self

    config: Config

    def open(self) -> None:
        config = self.config
        patterns = dict(DEFAULT_NAME_PATTERNS) if config.builtin_name_patterns else {}
        patterns.update(config.name_patterns)
        self._name_patterns = [(kind, re.compile(p, re.IGNORECASE)) for kind, p in patterns.items()]
        self._forced = frozenset(config.fields)
        self._ignored = frozenset(config.ignore_fields)
        detectors = _detectors()
        self._detectors = (
            [(kind, detectors[kind]) for kind in config.value_kinds] if config.detect_values else []
        )
        self._name_cache: dict[str, tuple[str, ...]] = {}
        key = config.key
        self._hmac = hmac.new(key.encode("utf-8"), digestmod=hashlib.sha256) if key is not None else None

    # ---------------------------------------------------------------------------- classification
    def kinds_for_name(self, name: str) -> tuple[str, ...]:
        """The PII kinds a field name suggests (cached: records repeat their field names)."""
        cached = self._name_cache.get(name)
        if cached is not None:
            return cached
        if name in self._ignored:
            kinds: tuple[str, ...] = ()
        elif name in self._forced:
            found = [kind for kind, pattern in self._name_patterns if pattern.search(name)]
            kinds = tuple(found[:1]) or ("pii",)
        else:
            kinds = tuple(kind for kind, pattern in self._name_patterns if pattern.search(name))[:1]
        if len(self._name_cache) < 10_000:
            self._name_cache[name] = kinds
        return kinds

    def kinds_for_value(self, value: Any) -> list[str]:
        if type(value) is int and value > 10**12:
            value = str(value)  # a card number stored as an integer
        if type(value) is not str or len(value) < 6:
            return []
        return [kind for kind, detect in self._detectors if detect(value)]

    # ---------------------------------------------------------------------------------- masking
    def masked(self, value: Any) -> Any:
        if value is None:
            return None
        style = self.config.mask_style
        if style == "replace":
            return self.config.mask_with
        if style == "hash":
            data = str(value).encode("utf-8")
            if self._hmac is not None:
                keyed = self._hmac.copy()
                keyed.update(data)
                return "hmac-sha256:" + keyed.hexdigest()[:32]
            return "sha256:" + hashlib.sha256(data).hexdigest()[:32]
        text = str(value)
        return "*" * max(len(text) - 4, 0) + text[-4:] if len(text) > 4 else "*" * len(text)

    # -------------------------------------------------------------------------------- processing
    def process(self, record: Any) -> Any:
        if not isinstance(record, dict):
            raise TypeError(f"pii: expected a dict record, got {type(record).__name__}")
        mode = self.config.catalog
        columns = record.get("columns")
        if mode == "always" or (
            mode == "auto"
            and isinstance(columns, list)
            and columns
            and all(isinstance(c, dict) and "name" in c for c in columns)
        ):
            return self._process_catalog(record)
        tags: dict[str, list[str]] = {}
        output = self._walk_dict(record, "", tags)
        tag_field = self.config.tag_field
        if tag_field is not None:
            output[tag_field] = {path: sorted(kinds) for path, kinds in sorted(tags.items())}
        return output

    def _walk_dict(self, record: dict[str, Any], prefix: str, tags: dict[str, list[str]]) -> dict[str, Any]:
        output: dict[str, Any] = {}
        mask = self.config.mask
        tag_field = self.config.tag_field
        for key, value in record.items():
            name = str(key)
            if not prefix and name == tag_field:
                continue
            path = prefix + name
            kinds = list(self.kinds_for_name(name)) or (
                ["pii"] if path in self._forced and path not in self._ignored else []
            )
            if type(value) is dict:
                if kinds:  # a whole structure named as PII (e.g. `address`) is PII as a whole
                    tags[path] = kinds
                    output[key] = self.masked(value) if mask else value
                    continue
                value = self._walk_dict(value, path + ".", tags)
            elif type(value) is list:
                value = self._walk_list(value, path, tags, kinds)
            elif self._detectors and name not in self._ignored:
                for kind in self.kinds_for_value(value):
                    if kind not in kinds:
                        kinds.append(kind)
            if kinds and type(value) is not list:
                tags[path] = kinds
                if mask:
                    value = self.masked(value)
            output[key] = value
        return output

    def _walk_list(
        self, items: list[Any], path: str, tags: dict[str, list[str]], name_kinds: list[str]
    ) -> list[Any]:
        output: list[Any] = []
        found: list[str] = list(name_kinds)
        mask = self.config.mask
        for item in items:
            if type(item) is dict:
                output.append(self._walk_dict(item, path + "[].", tags))
                continue
            kinds = list(name_kinds)
            if self._detectors:
                kinds += [k for k in self.kinds_for_value(item) if k not in kinds]
            found += [k for k in kinds if k not in found]
            output.append(self.masked(item) if mask and kinds else item)
        if found:
            tags[path] = found
        return output

    def _process_catalog(self, record: dict[str, Any]) -> dict[str, Any]:
        tagged: dict[str, list[str]] = {}
        columns: list[Any] = []
        for column in record.get("columns") or []:
            if not isinstance(column, dict):
                columns.append(column)
                continue
            name = str(column.get("name", ""))
            kinds = list(self.kinds_for_name(name))
            columns.append({**column, "pii": kinds})
            if kinds:
                tagged[name] = kinds
        output = {**record, "columns": columns}
        if self.config.tag_field is not None:
            output[self.config.tag_field] = tagged
        return output


component = ComponentType(
    name="pii",
    implementations={"processor": PiiProcessor},
    summary="Tag (and optionally mask) personal data by field names and values; tags catalog columns too",
)
