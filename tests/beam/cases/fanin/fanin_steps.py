"""Components for fanin.pipe."""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict

from pipec.runtime import Processor, Sink


def tag_a(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "tag": "a"}


class Tag(Processor):
    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")
        tag: str
        drop_every: int = 0

    def process(self, event: dict[str, Any]) -> dict[str, Any] | None:
        if self.config.drop_every and event["id"] % self.config.drop_every == 0:
            return None
        return {**event, "tag": self.config.tag}


class Collect(Sink):
    """One line per record, `ID TAG`; fails (every attempt) for the listed ids."""

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")
        path: str
        fail_ids: list[int] = []

    def open(self) -> None:
        os.makedirs(os.path.dirname(self.config.path) or ".", exist_ok=True)
        self._file = open(self.config.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, record: dict[str, Any]) -> None:
        if record["id"] in self.config.fail_ids:
            raise RuntimeError(f"cannot write {record['id']}")
        self._file.write(f"{record['id']} {record['tag']}\n")

    def close(self) -> None:
        self._file.close()


def adults(user: dict[str, Any]) -> dict[str, Any] | None:
    return user if user["age"] >= 18 else None
