"""Shape catalog records (from `sql_metadata` → `pii`, as the `catalog` example writes them) for the
catalog server: a table entity for its REST API, in the style of OpenMetadata's CreateTableRequest, and
a small search document for its `_bulk` search index."""

from __future__ import annotations

from typing import Any

PII_TAG = {"tagFQN": "PII.Sensitive"}


def _column(column: dict[str, Any]) -> dict[str, Any]:
    constraint = "PRIMARY_KEY" if column["primary_key"] else "NULL" if column["nullable"] else "NOT_NULL"
    kinds = column.get("pii") or []
    tags = [PII_TAG, *({"tagFQN": f"PersonalData.{kind}"} for kind in kinds)] if kinds else []
    return {
        "name": column["name"],
        "dataType": column["type"],
        "ordinalPosition": column["position"],
        "constraint": constraint,
        "tags": tags,
    }


def table_entity(table: dict[str, Any]) -> dict[str, Any]:
    """A catalog record as the catalog server's table entity."""
    schema_fqn = f"{table['service']}.{table['database']}.{table['schema']}"
    entity: dict[str, Any] = {
        "name": table["table"],
        "fullyQualifiedName": table["fqn"],
        "databaseSchema": schema_fqn,
        "tableType": "View" if table["kind"] == "view" else "Regular",
        "columns": [_column(column) for column in table["columns"]],
        "tableConstraints": [
            {
                "constraintType": "FOREIGN_KEY",
                "columns": fk["columns"],
                "referredColumns": [
                    f"{table['service']}.{table['database']}.{fk['referred_schema']}.{fk['referred_table']}.{c}"
                    for c in fk["referred_columns"]
                ],
            }
            for fk in table["foreign_keys"]
        ],
        "tags": [PII_TAG] if table.get("_pii") else [],
    }
    if table.get("row_count") is not None:
        entity["profile"] = {"rowCount": table["row_count"]}
    if table.get("view_definition"):
        entity["viewDefinition"] = table["view_definition"]
    return entity


def search_document(table: dict[str, Any]) -> dict[str, Any]:
    """What the search index needs to find a table: its names, columns and personal-data kinds."""
    pii = table.get("_pii") or {}
    return {
        "fqn": table["fqn"],
        "name": table["table"],
        "schema": table["schema"],
        "kind": table["kind"],
        "columns": [column["name"] for column in table["columns"]],
        "pii_columns": sorted(pii),
        "pii_kinds": sorted({kind for kinds in pii.values() for kind in kinds}),
    }
