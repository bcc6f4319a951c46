"""Import a module on first attribute access.

The registry imports every connector module to learn its roles and configs, on every `pipec check`.
Connectors whose client library is heavy (SQLAlchemy: ~0.15 s) load it through this, so that checking
a pipeline that doesn't connect to a database doesn't pay for it.

The import runs under a lock through the normal import system: `importlib.util.LazyLoader` is not
safe when several threads touch the module first at once (Beam's threaded runners start many DoFns
together), and one of them could see a half-executed module.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands in for the module `name` until an attribute is read, then imports it, once."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None
        self._lock = threading.Lock()

    def __getattr__(self, attribute: str) -> Any:
        module = self._module
        if module is None:
            with self._lock:
                if self._module is None:
                    self._module = importlib.import_module(self._name)
                module = self._module
        return getattr(module, attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str) -> Any:
    """A stand-in for module `name` that imports it on first use; raises ImportError now if it is missing."""
    if importlib.util.find_spec(name) is None:
        raise ImportError(f"no module named {name!r}")
    return LazyModule(name)


def release_connection(component: Any) -> None:
    """Close a SQL component's `_connection` and dispose of its `_engine`, whichever it opened.

    Here rather than in `_sql`, so that closing a node that never connected does not import SQLAlchemy."""
    connection = getattr(component, "_connection", None)
    if connection is not None:
        connection.close()
    engine = getattr(component, "_engine", None)
    if engine is not None:
        engine.dispose()
