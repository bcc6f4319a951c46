"""`stdout`: prints each record, for demos and debugging."""

from __future__ import annotations

import string
import sys
from collections.abc import Callable
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipec.connectors._files import json_encode
from pipec.runtime import ComponentType, Sink


class StdoutSink(Sink):
    """Prints each record on its own line: as JSON (default), pretty JSON, Python repr, or a template.

    A template is Python format syntax over the record's fields, e.g. `"{id}: {name} <{email}>"`; a
    record missing a field the template names fails with that field's name.
    """

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        format: Literal["json", "pretty", "repr", "template"] = Field(
            "json", description="json: one line of JSON; pretty: indented JSON; repr: Python repr; template."
        )
        template: str | None = Field(
            None, description="Format string over the record's fields, e.g. '{id}: {name}' (format template)."
        )
        stream: Literal["stdout", "stderr"] = Field("stdout", description="Where to print.")
        prefix: str = Field("", description="Text printed before each record (e.g. the node's name).")
        sort_keys: bool = Field(True, description="Sort keys in JSON output.")
        flush: bool = Field(False, description="Flush after every record (for watching a slow stream live).")

        @model_validator(mode="after")
        def _template_given(self) -> StdoutSink.Config:
            if self.format == "template":
                if not self.template:
                    raise ValueError("format 'template' needs `template`, e.g. '{id}: {name}'")
                try:
                    list(string.Formatter().parse(self.template))
                except ValueError as exc:
                    raise ValueError(f"template is not a valid format string: {exc}") from None
            elif self.template is not None:
                raise ValueError("`template` is used only with format = 'template'")
            return self

    config: Config

    def open(self) -> None:
        config = self.config
        self._render: Callable[[Any], str]
        self._stream: IO[str] = sys.stdout if config.stream == "stdout" else sys.stderr
        if config.format == "json":
            self._render = json_encode(sort_keys=config.sort_keys)
        elif config.format == "pretty":
            self._render = json_encode(sort_keys=config.sort_keys, indent=2, ensure_ascii=False)
        elif config.format == "repr":
            self._render = repr
        else:
            template = config.template or ""
            self._render = self._templated(template)

    @staticmethod
    def _templated(template: str) -> Callable[[Any], str]:
        def render(record: Any) -> str:
            try:
                return template.format_map(record)
            except KeyError as exc:
                raise KeyError(
                    f"stdout template names field {exc.args[0]!r}, which the record lacks"
                ) from None

        return render

    def write(self, record: Any) -> None:
        self._stream.write(f"{self.config.prefix}{self._render(record)}\n")
        if self.config.flush:
            self._stream.flush()

    def close(self) -> None:
        stream = getattr(self, "_stream", None)
        if stream is not None:
            stream.flush()


component = ComponentType(
    name="stdout",
    implementations={"sink": StdoutSink},
    summary="Print records to the terminal (JSON, pretty JSON, repr or a template), for demos and debugging",
)
