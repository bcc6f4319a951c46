"""Whether a user's class or function can do its role's job, judged before anything runs.

OpenMetadata found out at run time that a step lacked its method or took the wrong arguments. Here a
class must override each method its role calls, with a signature that accepts the runner's arguments,
and a plain-function processor must take exactly one record. A generator or `async` function would hand
the next node a generator or coroutine object instead of records, so it is refused unless marked as
emitting many (generators) or at all (coroutines: the runner does not await).

Each function returns `(message, suggestion)` for the first problem, or None.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from pipec.runtime.roles import ROLE_BASES

# The methods the runner calls for each role, with the positional arguments it passes (after `self`).
REQUIRED_METHODS: dict[str, tuple[tuple[str, int], ...]] = {
    "source": (("records", 0),),
    "processor": (("process", 1),),
    "sink": (("write", 1),),
    "stage": (("stage", 1), ("handoff", 0)),
    "bulksink": (("publish", 1),),
}

Problem = tuple[str, str]


def class_problem(cls: type, role: str, shown: str) -> Problem | None:
    """Why `cls` (already a subclass of the role's base) cannot serve as a `role`, or None."""
    base = ROLE_BASES[role]
    init = inspect.getattr_static(cls, "__init__", None)
    if callable(init) and init is not inspect.getattr_static(base, "__init__"):  # the runner builds it
        problem = _call_problem(init, 3, f"{shown}.__init__()", "__init__(self, config, context)")
        if problem is not None:
            return problem
    for method, arity in REQUIRED_METHODS[role]:
        found = inspect.getattr_static(cls, method, None)
        if found is None or found is inspect.getattr_static(base, method):
            return (
                f"'{shown}' does not define {method}(), which a {role} must",
                f"add `def {method}(self{', record' if arity else ''}): ...` to the class",
            )
        function = found.__func__ if isinstance(found, (staticmethod, classmethod)) else found
        if not callable(function):
            return f"'{shown}.{method}' is not a method", f"define {method}() as a method"
        bound_args = arity if isinstance(found, staticmethod) else arity + 1  # self is passed too
        expected = f"{method}(self, record)" if arity else f"{method}(self)"
        problem = _call_problem(function, bound_args, f"{shown}.{method}()", expected)
        if problem is not None:
            return problem
        emits_many = role == "processor" and getattr(cls, "emits_many", False) is True
        allow_generator = method == "records" or emits_many
        problem = _kind_problem(function, f"{shown}.{method}()", allow_generator)
        if problem is not None:
            return problem
    return None


def function_problem(function: Callable[..., Any], shown: str, emits_many: bool) -> Problem | None:
    """Why a plain-function processor cannot be called on one record, or None."""
    call = f"{shown.rpartition('.')[2]}(record)"
    return _call_problem(function, 1, f"{shown}()", call) or _kind_problem(
        function, f"{shown}()", emits_many
    )


def _call_problem(function: Callable[..., Any], arguments: int, shown: str, expected: str) -> Problem | None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin or C function without a signature: trust it
        return None
    try:
        signature.bind(*([None] * arguments))
    except TypeError:
        params = ", ".join(str(p) for p in signature.parameters.values())
        return (
            f"{shown} cannot be called as the runner calls it, `{expected}`: it takes ({params})",
            f"define it as `def {expected}`; any further parameters need default values",
        )
    return None


def _kind_problem(function: Callable[..., Any], shown: str, allow_generator: bool) -> Problem | None:
    if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
        return (
            f"{shown} is an async function; the runner calls components synchronously",
            "make it a plain `def` (run any async client with asyncio.run inside it)",
        )
    if inspect.isgeneratorfunction(function) and not allow_generator:
        return (
            f"{shown} is a generator, so it would pass on a generator object instead of records",
            "mark it as emitting many records: decorate it with @pipec.runtime.emits_many "
            "(a class: set `emits_many = True`), or return a single record",
        )
    return None
