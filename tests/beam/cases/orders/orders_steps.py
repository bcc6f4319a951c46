"""Processors for orders.pipe: a function, a class with config, a flat-mapping function, a filter."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from pipec.runtime import Processor, emits_many


def clean(order: dict[str, Any]) -> dict[str, Any]:
    return {**order, "email": order["email"].strip().lower(), "country": order["country"].upper()}


class FailOn(Processor):
    """Raises for the listed ids (every attempt), passes the rest on with `checked`."""

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")
        ids: list[int] = []

    def process(self, record: dict[str, Any]) -> dict[str, Any]:
        if record["id"] in self.config.ids:
            raise ValueError(f"order {record['id']} cannot be checked")
        return {**record, "checked": True}


@emits_many
def split_items(order: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per item of the order (none for an order of zero items)."""
    return [{"order": order["id"], "item": n, "country": order["country"]} for n in range(order["items"])]


def big_only(order: dict[str, Any]) -> dict[str, Any] | None:
    return order if order["amount"] >= 100 else None
