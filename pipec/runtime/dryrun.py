"""Counting stand-ins for `--dry-run`: sinks, stages and bulk sinks that accept records and do nothing.

Sources and processors run for real, so a dry run reports the same counts up to the sinks while writing
nothing anywhere. The real sink classes are never constructed, so they open no file or connection.
"""

from __future__ import annotations

from typing import Any

from pipec.runtime.roles import BulkSink, Component, Context, EmptyConfig, Sink, Stage


class DryRunSink(Sink):
    def write(self, record: Any) -> None:
        pass

    def write_batch(self, records: list[Any]) -> None:
        pass


class DryRunStage(Stage):
    def stage(self, record: Any) -> None:
        pass

    def handoff(self) -> Any:
        return None


class DryRunBulkSink(BulkSink):
    def publish(self, handoff: Any) -> None:
        pass


_STAND_INS: dict[str, type[Component]] = {
    "sink": DryRunSink,
    "stage": DryRunStage,
    "bulksink": DryRunBulkSink,
}


def stand_in_for(role: str, context: Context) -> Any:
    return _STAND_INS[role](EmptyConfig(), context)
