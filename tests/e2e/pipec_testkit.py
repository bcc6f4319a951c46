"""Test components for the end-to-end tests: used from .pipe files as `use pipec_testkit as kit`.

Each lifecycle event (open, close) is appended to the file named by `events` so that a test can check
that every component was closed exactly once, whatever failed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict

from pipec.runtime import BulkSink, Processor, Sink, Source, emits_many


class _Tracked(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: str = ""


def _log(events: str, text: str) -> None:
    if events:
        with open(events, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")


class Numbers(Source):
    """Records {"id": i, "amount": i * 10} for i in 0..n-1."""

    class Config(_Tracked):
        n: int = 100
        fail_at: int = -1  # the source itself breaks after this many records
        pause: float = 0.0  # seconds before each record (a slow source, to be stopped mid-stream)
        reject_ids: list[int] = []  # rejected as malformed input (context.reject), not emitted

    def open(self) -> None:
        _log(self.config.events, f"open {self.context.node}")

    def records(self) -> Iterator[dict[str, Any]]:
        for i in range(self.config.n):
            if i == self.config.fail_at:
                raise OSError("the source's connection dropped")
            if self.config.pause:
                time.sleep(self.config.pause)
            if i in self.config.reject_ids:
                self.context.reject({"id": i}, ValueError(f"malformed input {i}"))
                continue
            yield {"id": i, "amount": i * 10}

    def close(self) -> None:
        _log(self.config.events, f"close {self.context.node}")


class FailOn(Processor):
    """Raises ValueError for the listed ids, passes every other record on (a copy with `seen`)."""

    class Config(_Tracked):
        ids: list[int] = []
        message: str = "bad record"

    def open(self) -> None:
        _log(self.config.events, f"open {self.context.node}")

    def process(self, record: dict[str, Any]) -> dict[str, Any]:
        if record["id"] in self.config.ids:
            raise ValueError(f"{self.config.message} {record['id']}")
        return {**record, "seen": True}

    def close(self) -> None:
        _log(self.config.events, f"close {self.context.node}")


def even_only(record: dict[str, Any]) -> dict[str, Any] | None:
    return record if record["id"] % 2 == 0 else None


@emits_many
def twice(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Two records per input, none for ids divisible by 5."""
    if record["id"] % 5 == 0:
        return []
    return [{**record, "copy": 1}, {**record, "copy": 2}]


class Hang(Processor):
    class Config(BaseModel):
        ids: list[int] = []
        seconds: float = 5.0  # below 0: forever

    def process(self, record: dict[str, Any]) -> dict[str, Any]:
        if record["id"] in self.config.ids:
            if self.config.seconds < 0:
                threading.Event().wait()  # never returns
            time.sleep(self.config.seconds)
        return record


class Collect(Sink):
    """Writes ids to a text file, one per line; can fail on chosen ids, always, flakily, or on close."""

    class Config(_Tracked):
        path: str
        fail_ids: list[int] = []
        fail_always: bool = False
        flaky_attempts: int = 0  # each record fails this many times before it is written
        close_raises: bool = False

    def open(self) -> None:
        _log(self.config.events, f"open {self.context.node}")
        self._file = open(self.config.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._attempts: dict[int, int] = {}

    def write(self, record: dict[str, Any]) -> None:
        if self.config.fail_always or record.get("id") in self.config.fail_ids:
            raise RuntimeError(f"cannot write {record.get('id')}")
        if self.config.flaky_attempts:
            key = record["id"]
            self._attempts[key] = self._attempts.get(key, 0) + 1
            if self._attempts[key] <= self.config.flaky_attempts:
                raise ConnectionError(f"flaky write of {key}, attempt {self._attempts[key]}")
        self._file.write(f"{record.get('id')}\n")

    def close(self) -> None:
        _log(self.config.events, f"close {self.context.node}")
        self._file.close()
        if self.config.close_raises:
            raise OSError("close failed: disk full")


def busy(record: dict[str, Any]) -> dict[str, Any]:
    """About 2 ms of pure-Python work per record, so the sampler sees this node."""
    deadline = time.perf_counter() + 0.002
    while time.perf_counter() < deadline:
        pass
    return record



class _Unprintable(ValueError):
    def __str__(self) -> str:
        raise RuntimeError("__str__ itself fails")


def unprintable_error(record: dict[str, Any]) -> dict[str, Any]:
    """Raises an exception whose message cannot even be rendered, for ids divisible by 3."""
    if record["id"] % 3 == 0:
        raise _Unprintable()
    return record


@emits_many
def lazy_split(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A generator: yields one copy, then raises for id 3 (only when its output is consumed)."""
    yield {**record, "copy": 1}
    if record["id"] == 3:
        raise ValueError("lazy failure at 3")
    yield {**record, "copy": 2}


def exits_at_2(record: dict[str, Any]) -> dict[str, Any]:
    """Calls sys.exit() for id 2, as a library deep inside a component might."""
    if record["id"] == 2:
        raise SystemExit(3)
    return record


class SlowPublish(BulkSink):
    """Publishes by waiting (logs "publish" first): a run can be stopped while it publishes."""

    class Config(_Tracked):
        seconds: float = 60.0
        interrupt: bool = False  # raise KeyboardInterrupt in publish, as Ctrl-C there would

    def open(self) -> None:
        _log(self.config.events, f"open {self.context.node}")

    def publish(self, handoff: Any) -> None:
        _log(self.config.events, f"publish {self.context.node}")
        if self.config.interrupt:
            raise KeyboardInterrupt
        time.sleep(self.config.seconds)

    def close(self) -> None:
        _log(self.config.events, f"close {self.context.node}")


class InterruptOnOpen(Sink):
    """Its open() is cut short by Ctrl-C."""

    class Config(_Tracked):
        pass

    def open(self) -> None:
        raise KeyboardInterrupt

    def write(self, record: dict[str, Any]) -> None:
        pass


class Chatty(Processor):
    """Logs its token through the run's logger and through a logger of its own (as a client library
    would) for every record; raises KeyError(token) for id 1."""

    class Config(BaseModel):
        token: str

    def process(self, record: dict[str, Any]) -> dict[str, Any]:
        self.context.logger.warning("calling the API with token %s", self.config.token)
        logging.getLogger("chatty.client").warning("client sends Bearer %s", self.config.token)
        if record["id"] == 1:
            raise KeyError(self.config.token)
        return record


class RejectOnClose(Sink):
    """Holds records and writes them on close(), rejecting the listed ids there (as a sink that flushes
    its last batch when it closes would)."""

    class Config(_Tracked):
        reject_ids: list[int] = []

    def open(self) -> None:
        _log(self.config.events, f"open {self.context.node}")
        self._held: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any]) -> None:
        self._held.append(record)

    def close(self) -> None:
        _log(self.config.events, f"close {self.context.node}")
        for record in self._held:
            if record["id"] in self.config.reject_ids:
                self.context.reject(record, ValueError(f"refused {record['id']} on close"))


@emits_many
def one_dict(record: dict[str, Any]) -> Any:
    """A flat-map written wrongly: returns one record instead of a list of them (None for odd ids)."""
    return None if record["id"] % 2 else dict(record)
