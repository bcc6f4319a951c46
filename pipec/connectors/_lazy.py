"""Import a module on first attribute access.

The registry imports every connector module to learn its roles and configs, on every `pipec check`.
Connectors whose client library is heavy (SQLAlchemy: ~0.15 s) load it through this, so that checking
a pipeline that doesn't connect to a database doesn't pay for it.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module named {name!r}")
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
