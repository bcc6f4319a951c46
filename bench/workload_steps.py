"""The reference workload's functions as pipec components, for `bench/workload.pipe`.

The per-record work is the shared `workload.py` of `../shared/bench/` (see `plain.py` for where it is
found), so the pipec runner and the plain loop run byte-for-byte the same code. Only the small adapters
below are pipec's: the workload's `keep` is a predicate, a pipec processor returns the record or None.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from plain import heavy, workload
from pydantic import BaseModel, ConfigDict

from pipec.runtime import BulkSink, Source

__all__ = ["BulkLoad", "Generate", "enrich", "heavy", "keep", "mask"]

# The workload's processors, unchanged: each takes a record and returns a new one.
mask = workload.mask
enrich = workload.enrich
_keep = workload.keep


def keep(record: dict[str, Any]) -> dict[str, Any] | None:
    """The workload's filter as a pipec processor: the record when `workload.keep` says so, else None."""
    return record if _keep(record) else None


class Generate(Source):
    """The workload's source: records 0..n-1 in id order."""

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")
        n: int = workload.DEFAULT_N

    config: Config

    def records(self) -> Iterator[dict[str, Any]]:
        return workload.generate(self.config.n)  # type: ignore[no-any-return, unused-ignore]


class BulkLoad(BulkSink):
    """Variant B's bulk sink: `workload.bulk_load(staged file, db)` once the stream has ended."""

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")
        db: str
        batch: int = workload.BATCH_SIZE

    config: Config

    def publish(self, handoff: Any) -> None:
        self.rows = workload.bulk_load(handoff, self.config.db, self.config.batch)
