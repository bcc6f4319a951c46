"""pipec-plugin-demo: the `upper` component type, a processor that upper-cases some fields of each record.

Registered in pyproject.toml under the `pipec.components` entry point:

    [project.entry-points."pipec.components"]
    upper = "pipec_plugin_demo:component"

After `pip install`, `.pipe` files use it by name like a built-in: `processor loud : upper { fields = ["name"] }`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipec.runtime import ComponentType, Processor


class Upper(Processor):
    """Upper-cases the named text fields of each record (a new dict; the input is not changed).

    A record without one of the fields fails, unless `missing = "skip"`.
    """

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        fields: list[str] = Field(min_length=1, description="Names of the text fields to upper-case.")
        missing: Literal["fail", "skip"] = Field(
            "fail", description="A record without one of the fields: 'fail' it, or 'skip' that field."
        )

    config: Config

    def process(self, record: dict[str, Any]) -> dict[str, Any]:
        output = dict(record)
        for name in self.config.fields:
            if name not in record:
                if self.config.missing == "fail":
                    raise KeyError(f"upper: the record has no field {name!r}")
                continue
            output[name] = str(record[name]).upper()
        return output


component = ComponentType(
    name="upper",
    implementations={"processor": Upper},
    summary="Upper-case some text fields of each record (a demo plugin)",
)
