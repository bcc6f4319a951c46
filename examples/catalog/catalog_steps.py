"""Turn the tagged catalog records (one per table, from `sql_metadata` then `pii`) into flat rows that fit
SQL tables: one row per table for `catalog_tables`, and one row per column for `catalog_columns`."""

from __future__ import annotations

from typing import Any

from pipec.runtime import emits_many


def _joined(items: list[str]) -> str:
    return ",".join(items)


def table_entry(table: dict[str, Any]) -> dict[str, Any]:
    """One row describing a table or view: where it lives, its shape and its personal data."""
    pii = table.get("_pii") or {}
    kinds = sorted({kind for found in pii.values() for kind in found})
    return {
        "fqn": table["fqn"],
        "service": table["service"],
        "schema": table["schema"],
        "table": table["table"],
        "kind": table["kind"],
        "column_count": len(table["columns"]),
        "row_count": table.get("row_count"),
        "primary_key": _joined(table["primary_key"]),
        "references": _joined(
            sorted({f"{fk['referred_schema']}.{fk['referred_table']}" for fk in table["foreign_keys"]})
        ),
        "pii_columns": _joined(sorted(pii)),
        "pii_kinds": _joined(kinds),
        "contains_pii": bool(pii),
    }


@emits_many
def column_entries(table: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per column of a table (a flat-map: one input record, several output records)."""
    return [
        {
            "fqn": f"{table['fqn']}.{column['name']}",
            "table_fqn": table["fqn"],
            "schema": table["schema"],
            "table": table["table"],
            "column": column["name"],
            "position": column["position"],
            "type": column["type"],
            "nullable": column["nullable"],
            "primary_key": column["primary_key"],
            "pii": _joined(column.get("pii") or []),
        }
        for column in table["columns"]
    ]
