"""The five roles a component can play, the per-node `Context`, and `ComponentType`.

A component is a class with a nested pydantic `Config` and optional `open()` / `close()`. The runner
builds it as `Cls(config, context)`, calls `open()` before any record moves and `close()` exactly once
at the end. A plain function `f(record) -> record | None` is a processor too.

`ComponentType` is what the `pipec.components` entry point names: one type name (`jsonl`) with the class
that implements each role it supports.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class EmptyConfig(BaseModel):
    """The config of a component that takes none."""

    model_config = ConfigDict(extra="forbid")


def _raise(record: Any, error: BaseException) -> None:
    raise error


@dataclass(frozen=True)
class Context:
    """What a component knows about the run it is part of.

    `reject(record, error)` reports one bad input record without stopping: a source that meets a malformed
    line calls `self.context.reject(raw_line, ValueError("line 17: ..."))` and goes on reading. The runner
    counts it as failed at this node and applies the node's `on_error` policy (skip, dead-letter, or
    stop the run). Outside a runner it simply raises the error.
    """

    run_id: str
    pipeline: str
    node: str
    location: str  # "file.pipe:LINE" of the node's declaration
    dry_run: bool = False
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("pipec"))
    reject: Callable[[Any, BaseException], None] = _raise


class Component:
    """Base of every role. Subclasses override `Config` and the role's method."""

    Config: ClassVar[type[BaseModel]] = EmptyConfig

    def __init__(self, config: BaseModel, context: Context) -> None:
        self.config = config
        self.context = context

    def open(self) -> None:
        """Acquire resources (files, connections). Called once, before any record moves."""

    def close(self) -> None:
        """Release resources. Called exactly once, even when the run failed."""


class Source(Component):
    def records(self) -> Iterator[Any]:
        raise NotImplementedError


class Processor(Component):
    # True when `process` returns an iterable of output records (zero or more) instead of one record.
    emits_many: ClassVar[bool] = False

    def process(self, record: Any) -> Any:
        raise NotImplementedError


class Sink(Component):
    def write(self, record: Any) -> None:
        raise NotImplementedError

    def write_batch(self, records: list[Any]) -> None:
        """Write several records at once; the default writes them one by one."""
        for record in records:
            self.write(record)

    def flush(self) -> None:
        """Finish every write still pending (buffered rows, requests in flight) without closing.

        Called after the stream (locally) and at the end of every bundle (Beam), before `close()`,
        while failures can still be counted: report each record that fails here with
        `self.context.reject(record, error)`. A sink that buffers must do this work here, not only in
        `close()`. The default has nothing to finish."""


class Stage(Component):
    def stage(self, record: Any) -> None:
        raise NotImplementedError

    def handoff(self) -> Any:
        """Called once after `close()`: the value (e.g. the staged file's path) the bulk sink publishes."""
        raise NotImplementedError


class BulkSink(Component):
    def publish(self, handoff: Any) -> None:
        raise NotImplementedError


ROLE_BASES: Mapping[str, type[Component]] = {
    "source": Source,
    "processor": Processor,
    "sink": Sink,
    "stage": Stage,
    "bulksink": BulkSink,
}


def emits_many(function: Callable[[Any], Iterable[Any]]) -> Callable[[Any], Iterable[Any]]:
    """Mark a plain-function processor as returning an iterable of records per input."""
    function.pipec_emits_many = True  # type: ignore[attr-defined]
    return function


@dataclass(frozen=True)
class ComponentType:
    """A named component type and the implementation of each role it supports."""

    name: str
    implementations: Mapping[str, type[Component]]
    summary: str = ""

    @property
    def roles(self) -> tuple[str, ...]:
        order = list(ROLE_BASES)
        return tuple(sorted(self.implementations, key=order.index))
