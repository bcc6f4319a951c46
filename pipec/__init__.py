"""pipec: a compiler for ingestion pipelines written as `.pipe` files.

The compiler's entry points are re-exported here lazily: a generated runner imports `pipec.runtime`,
which imports this package, and must not pay for loading the compiler (lark, networkx, jinja2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "check_file": "pipec.compiler.check",
    "check_text": "pipec.compiler.check",
    "CheckResult": "pipec.compiler.check",
    "parse": "pipec.compiler.parse",
    "build": "pipec.compiler.build",
    "Diagnostic": "pipec.compiler.diagnostics",
}

__all__ = ["CheckResult", "Diagnostic", "__version__", "build", "check_file", "check_text", "parse"]

if TYPE_CHECKING:
    from pipec.compiler.build import build
    from pipec.compiler.check import CheckResult, check_file, check_text
    from pipec.compiler.diagnostics import Diagnostic
    from pipec.compiler.parse import parse


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pipec' has no attribute {name!r}")
