"""The component registry: every type registered under the `pipec.components` entry-point group.

Built-ins register exactly like third-party plugins (see pyproject.toml), so a plugin's component is
checked, compiled and run the same way. Each entry point names a `pipec.runtime.ComponentType`.
"""

from __future__ import annotations

import sys
from contextlib import redirect_stdout
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points

from pipec.runtime.roles import ComponentType

ENTRY_POINT_GROUP = "pipec.components"


@dataclass(frozen=True)
class RegisteredType:
    component: ComponentType
    module: str  # the module the entry point names, e.g. "pipec.connectors.jsonl"
    distribution: str  # the installed distribution that registered it, e.g. "pipec"

    @property
    def origin(self) -> str:
        return "builtin" if self.distribution == "pipec" else f"plugin {self.distribution}"


@dataclass(frozen=True)
class Registry:
    types: dict[str, RegisteredType]
    load_errors: dict[str, str]  # entry-point name -> why it failed to load

    def get(self, name: str) -> RegisteredType | None:
        return self.types.get(name)

    def names(self) -> list[str]:
        return sorted(self.types)


@lru_cache(maxsize=1)
def load_registry() -> Registry:
    types: dict[str, RegisteredType] = {}
    errors: dict[str, str] = {}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist is not None else "unknown"
        try:
            with redirect_stdout(sys.stderr):  # a plugin's import-time prints must not corrupt JSON output
                loaded = ep.load()
        except Exception as exc:  # a broken plugin must not break every check
            errors[ep.name] = f"{type(exc).__name__}: {exc}"
            continue
        if not isinstance(loaded, ComponentType):
            errors[ep.name] = f"entry point {ep.value!r} is not a pipec.runtime.ComponentType"
            continue
        if ep.name in types:
            errors[ep.name] = f"registered twice (by {types[ep.name].distribution} and {dist})"
            continue
        types[ep.name] = RegisteredType(loaded, ep.module, dist)
    return Registry(types, errors)
