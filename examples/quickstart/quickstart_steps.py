"""The quickstart's own processors: plain functions are processors too."""

from __future__ import annotations

from typing import Any

STATUSES = {"paid", "pending", "refunded"}


def clean(order: dict[str, Any]) -> dict[str, Any]:
    """Normalise one order; raise on data that no downstream step should see."""
    email = (order.get("email") or "").strip().lower()
    if "@" not in email:
        raise ValueError(f"order {order['id']}: no valid e-mail address ({order.get('email')!r})")
    status = order["status"].strip().lower()
    if status not in STATUSES:
        raise ValueError(f"order {order['id']}: unknown status {order['status']!r}")
    return {**order, "email": email, "status": status, "country": order["country"].strip().upper()}


def paid_only(order: dict[str, Any]) -> dict[str, Any] | None:
    """Keep paid orders; returning None drops (filters) the record."""
    return order if order["status"] == "paid" else None
