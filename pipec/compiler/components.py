"""Resolve a declaration's TYPE + ROLE to its implementation, and validate its config with positions.

A built-in or plugin type comes from the component registry; `alias.Name` comes from a `use` module,
imported with the `.pipe` file's folder first on `sys.path`. Imports are cached per (folder, module)
and refreshed when the module's file changes, so checking a large file imports each module once.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import inspect
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stdout, suppress
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ValidationError

from pipec.compiler import ast
from pipec.compiler.contract import class_problem, function_problem
from pipec.compiler.diagnostics import Diagnostic, Note, closest, did_you_mean
from pipec.compiler.model import ResolvedType
from pipec.compiler.registry import Registry
from pipec.compiler.values import Converted, describe, describe_python, locate, pairs_to_python, path_text
from pipec.runtime.roles import ROLE_BASES

# Diagnostic codes raised here (documented in docs/language.md).
UNKNOWN_CONFIG_KEY = "P201"
INVALID_CONFIG_VALUE = "P202"
MISSING_CONFIG_KEY = "P203"
UNKNOWN_TYPE = "P204"
ROLE_NOT_SUPPORTED = "P205"
TYPE_FAILED_TO_LOAD = "P206"
NOT_A_COMPONENT = "P207"
FUNCTION_WITH_CONFIG = "P208"
NO_SUCH_ATTRIBUTE = "P106"
UNKNOWN_ALIAS = "P107"

ROLE_CLASS_NAMES = {role: base.__name__ for role, base in ROLE_BASES.items()}


# ------------------------------------------------------------------------------------ use modules
@dataclass(frozen=True)
class UseModule:
    """The outcome of importing one `use` line: the module, or why it could not be imported."""

    decl: ast.UseDecl
    module: ModuleType | None
    error: str | None


class UseImportError(Exception):
    pass


_MODULE_CACHE: dict[tuple[str, str], tuple[ModuleType, float | None]] = {}


def _mtime(module: ModuleType) -> float | None:
    path = getattr(module, "__file__", None)
    try:
        return os.stat(path).st_mtime if path else None
    except OSError:
        return None


@contextmanager
def _path_first(folder: str) -> Iterator[None]:
    # Checking must write nothing next to the user's modules (`pipec compile` writes only into its
    # output folder), so no __pycache__ either.
    sys.path.insert(0, folder)
    write_bytecode = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        yield
    finally:
        sys.dont_write_bytecode = write_bytecode
        with suppress(ValueError):  # the imported module may have removed it itself
            sys.path.remove(folder)


def _inside(module: ModuleType, folder: str) -> bool:
    path = getattr(module, "__file__", None) or ""
    return os.path.abspath(path).startswith(folder + os.sep)


def import_use_module(name: str, folder: str) -> ModuleType:
    """Import `name` as the `.pipe` file in `folder` sees it; raises UseImportError with the reason.

    A module found in `folder` wins over one of the same name imported earlier from elsewhere (two
    projects may both have a `steps.py`), so a stale `sys.modules` entry from another folder is dropped.
    """
    folder = os.path.abspath(folder)
    key = (folder, name)
    cached = _MODULE_CACHE.get(key)
    if cached is not None and _mtime(cached[0]) == cached[1]:
        return cached[0]
    top = name.partition(".")[0]
    try:
        local = importlib.machinery.PathFinder.find_spec(top, [folder]) is not None
    except (ImportError, ValueError):
        local = False
    if local and top != "pipec" and top not in sys.stdlib_module_names:
        loaded = sys.modules.get(top)
        if cached is not None or (loaded is not None and not _inside(loaded, folder)):
            for mod_name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
                del sys.modules[mod_name]
    try:
        # Whatever the module prints while importing goes to stderr: stdout may be JSON for a tool.
        with _path_first(folder), redirect_stdout(sys.stderr):
            importlib.invalidate_caches()
            module = importlib.import_module(name)
    except BaseException as exc:  # user code may raise anything, even SystemExit, while importing
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise UseImportError(f"{type(exc).__name__}: {exc}") from exc
    _MODULE_CACHE[key] = (module, _mtime(module))
    return module


_LEFT_LOADED: dict[str, ModuleType] = {}  # what the last `import_uses` left in sys.modules from its folder


def _own_module(name: str, folder: str) -> bool:
    """Whether sys.modules[name] is the folder's own module or package (folder/top.py, folder/top/...)."""
    top = name.partition(".")[0]
    path = getattr(sys.modules.get(top), "__file__", None)
    if not path:
        return False
    parent = os.path.dirname(os.path.abspath(path))
    if parent == folder:  # folder/top.py
        return os.path.basename(path) == top + ".py"
    return os.path.dirname(parent) == folder and os.path.basename(parent) == top  # folder/top/...


def import_uses(uses: Sequence[ast.UseDecl], folder: str) -> dict[str, UseModule]:
    """Every `use` line by alias (the first one of a repeated alias counts).

    The modules the previous call (another `.pipe` file) imported from its folder leave sys.modules
    first, so that what one file sees (e.g. whether a pipeline name would hide a module) never depends
    on which files were checked before it."""
    for name, module in _LEFT_LOADED.items():
        if sys.modules.get(name) is module:
            del sys.modules[name]
    _LEFT_LOADED.clear()
    folder = os.path.abspath(folder)
    before = set(sys.modules)
    result: dict[str, UseModule] = {}
    for use in uses:
        if use.alias in result:
            continue
        try:
            result[use.alias] = UseModule(use, import_use_module(use.module, folder), None)
        except UseImportError as exc:
            result[use.alias] = UseModule(use, None, str(exc))
    added = [name for name in sys.modules if name not in before]
    _LEFT_LOADED.update({name: sys.modules[name] for name in added if _own_module(name, folder)})
    return result


# ------------------------------------------------------------------------------------- resolution
@dataclass(frozen=True)
class Implementation:
    """What a declaration resolved to: the class or function, where it lives, its Config model."""

    target: Any
    resolved: ResolvedType
    config_model: type[BaseModel] | None  # None for a plain-function processor


def _emits_many(target: Any) -> bool:
    if inspect.isclass(target):
        return getattr(target, "emits_many", False) is True
    return getattr(target, "pipec_emits_many", False) is True


def resolve(
    decl: ast.NodeDecl, uses: Mapping[str, UseModule], registry: Registry
) -> tuple[Implementation | None, list[Diagnostic]]:
    """The implementation of `decl`, or None with the diagnostics that say why not."""
    if "." in decl.type_name:
        return _resolve_use(decl, uses)
    return _resolve_registered(decl, uses, registry)


def _resolve_registered(
    decl: ast.NodeDecl, uses: Mapping[str, UseModule], registry: Registry
) -> tuple[Implementation | None, list[Diagnostic]]:
    name = decl.type_name
    registered = registry.get(name)
    if registered is None:
        if name in registry.load_errors:
            return None, [
                Diagnostic(
                    TYPE_FAILED_TO_LOAD,
                    "error",
                    f"component type '{name}' is registered but failed to load: {registry.load_errors[name]}",
                    decl.type_span,
                    suggestion="install the component's dependencies, or reinstall the plugin",
                )
            ]
        return None, [_unknown_type(decl, uses, registry)]
    impl = registered.component.implementations.get(decl.role)
    if impl is None:
        roles = ", ".join(registered.component.roles)
        return None, [
            Diagnostic(
                ROLE_NOT_SUPPORTED,
                "error",
                f"component type '{name}' cannot be a {decl.role}; it supports: {roles}",
                decl.type_span,
                (Note(f"'{decl.name}' is declared as a {decl.role} here", decl.role_span),),
                f"use a type that provides a {decl.role}, or declare '{decl.name}' as one of: {roles}",
            )
        ]
    problem = _check_class(decl, impl, name)
    if problem is not None:
        return None, [problem]
    resolved = ResolvedType(
        type_name=name,
        module=impl.__module__,
        attribute=impl.__qualname__,
        is_function=False,
        emits_many=decl.role == "processor" and _emits_many(impl),
        origin=registered.origin,
        user_module=False,
    )
    return Implementation(impl, resolved, impl.Config), []


def _unknown_type(decl: ast.NodeDecl, uses: Mapping[str, UseModule], registry: Registry) -> Diagnostic:
    name = decl.type_name
    # A bare name that a `use` module defines is most likely missing its alias.
    for alias, use in uses.items():
        if use.module is not None and _lookup(use.module, name) is not _MISSING:
            suggestion: str | None = f"did you mean '{alias}.{name}'?"
            break
    else:
        suggestion = did_you_mean(name, [*registry.names(), *registry.load_errors])
        if suggestion is None:
            suggestion = "`pipec components` lists the registered types; use `alias.Name` for your own"
    return Diagnostic(
        UNKNOWN_TYPE, "error", f"unknown component type '{name}'", decl.type_span, suggestion=suggestion
    )


def _resolve_use(
    decl: ast.NodeDecl, uses: Mapping[str, UseModule]
) -> tuple[Implementation | None, list[Diagnostic]]:
    alias, _, attr_path = decl.type_name.partition(".")
    use = uses.get(alias)
    if use is None:
        hint = did_you_mean(alias, uses)
        if hint is None:
            hint = f"add `use MODULE as {alias}` at the top of the file"
        return None, [
            Diagnostic(
                UNKNOWN_ALIAS,
                "error",
                f"'{alias}' in '{decl.type_name}' is not a `use` alias",
                decl.type_span,
                suggestion=hint,
            )
        ]
    if use.module is None:
        return None, []  # the import failure is reported at the `use` line
    target: Any = use.module
    for part in attr_path.split("."):
        found = _lookup(target, part)
        if found is _MISSING:
            names = [n for n in dir(target) if not n.startswith("_")]
            where = f"module '{use.decl.module}'" if target is use.module else f"'{target.__name__}'"
            return None, [
                Diagnostic(
                    NO_SUCH_ATTRIBUTE,
                    "error",
                    f"{where} has no attribute '{part}'",
                    decl.type_span,
                    (Note(f"'{alias}' is imported here", use.decl.span),),
                    did_you_mean(part, names),
                )
            ]
        target = found
    resolved = ResolvedType(
        type_name=decl.type_name,
        module=use.decl.module,
        attribute=attr_path,
        is_function=not inspect.isclass(target),
        emits_many=decl.role == "processor" and _emits_many(target),
        origin=f"use {alias}",
        user_module=True,
    )
    if inspect.isclass(target):
        problem = _check_class(decl, target, decl.type_name)
        if problem is not None:
            return None, [problem]
        component: Any = target  # checked above: a role subclass with a pydantic Config
        return Implementation(target, resolved, component.Config), []
    if callable(target):
        if decl.role != "processor":
            base = ROLE_CLASS_NAMES[decl.role]
            return None, [
                _not_a_component(
                    decl,
                    f"'{decl.type_name}' is a function; only a processor may be a plain function",
                    f"make it a class that subclasses pipec.runtime.{base}",
                )
            ]
        unfit = function_problem(target, decl.type_name, resolved.emits_many)
        if unfit is not None:
            return None, [_not_a_component(decl, *unfit)]
        return Implementation(target, resolved, None), []
    kind = type(target).__name__
    return None, [
        _not_a_component(
            decl,
            f"'{decl.type_name}' is a {kind}, not a component class or function",
            f"point at a subclass of pipec.runtime.{ROLE_CLASS_NAMES[decl.role]}",
        )
    ]


_MISSING = object()


def _lookup(obj: Any, name: str) -> Any:
    """`getattr` that treats any error raised by a module's `__getattr__` as "no such attribute"."""
    try:
        return getattr(obj, name)
    except Exception:
        return _MISSING


def _check_class(decl: ast.NodeDecl, cls: type, shown: str) -> Diagnostic | None:
    base = ROLE_BASES[decl.role]
    if not issubclass(cls, base):
        actual = [ROLE_CLASS_NAMES[r] for r, b in ROLE_BASES.items() if issubclass(cls, b)]
        what = (
            f"it is a {actual[0]}, not a {base.__name__}"
            if actual
            else f"it does not subclass {base.__name__}"
        )
        return _not_a_component(
            decl,
            f"'{shown}' cannot be a {decl.role}: {what}",
            f"subclass pipec.runtime.{base.__name__}, or declare '{decl.name}' with the role it has",
        )
    config = getattr(cls, "Config", None)
    if not (inspect.isclass(config) and issubclass(config, BaseModel)):
        return _not_a_component(
            decl,
            f"'{shown}.Config' is not a pydantic model",
            "make `Config` a subclass of pydantic.BaseModel",
        )
    problem = class_problem(cls, decl.role, shown)
    return _not_a_component(decl, *problem) if problem is not None else None


def _not_a_component(decl: ast.NodeDecl, message: str, suggestion: str) -> Diagnostic:
    return Diagnostic(NOT_A_COMPONENT, "error", message, decl.type_span, suggestion=suggestion)


# ------------------------------------------------------------------------------------------ config
def validate_config(decl: ast.NodeDecl, impl: Implementation) -> Iterator[Diagnostic]:
    """Every problem with `decl`'s `{ config }` block, each at the key (or item) it is about."""
    model = impl.config_model
    if model is None:
        if decl.config and decl.config_span is not None:
            yield Diagnostic(
                FUNCTION_WITH_CONFIG,
                "error",
                f"'{decl.type_name}' is a plain function and takes no config",
                decl.config_span,
                suggestion="remove the { ... } block, or make it a Processor class with a Config model",
            )
        return
    converted = pairs_to_python(decl.config)
    yield from converted.problems
    fields = _field_names(model)
    suggested: set[str] = set()
    for pair in decl.config:
        if pair.key not in fields:
            best = closest(pair.key, fields)
            if best is not None:
                suggested.add(best)
            hint = f"did you mean '{best}'?" if best else _known_keys(fields)
            yield Diagnostic(
                UNKNOWN_CONFIG_KEY,
                "error",
                f"unknown config key '{pair.key}' for component type '{decl.type_name}'",
                pair.key_span,
                suggestion=hint,
            )
            converted.value.pop(pair.key, None)
    try:
        model.model_validate(converted.value)
    except ValidationError as exc:
        yield from _pydantic_errors(decl, model, exc, converted, suggested)
    except Exception as exc:  # a validator in the component's own code that raised something else
        yield Diagnostic(
            INVALID_CONFIG_VALUE,
            "error",
            f"validating the config of '{decl.name}' raised {type(exc).__name__}: {exc}",
            decl.config_span or decl.span,
            suggestion=f"the Config model of '{decl.type_name}' should raise ValueError for bad values",
        )


def _field_names(model: type[BaseModel]) -> list[str]:
    """The keys the model accepts: a field's alias, and its name unless only the alias validates."""
    config = model.model_config
    by_name = bool(config.get("populate_by_name") or config.get("validate_by_name"))
    names: list[str] = []
    for name, info in model.model_fields.items():
        alias = info.validation_alias if isinstance(info.validation_alias, str) else info.alias
        if isinstance(alias, str):
            names.append(alias)
        if not isinstance(alias, str) or by_name:
            names.append(name)
    return names


def _known_keys(fields: Sequence[str]) -> str:
    return f"known keys: {', '.join(sorted(fields))}" if fields else "this component takes no config"


def _pydantic_errors(
    decl: ast.NodeDecl,
    model: type[BaseModel],
    exc: ValidationError,
    converted: Converted,
    suggested: set[str],
) -> Iterator[Diagnostic]:
    by_path: dict[tuple[str | int, ...], list[str]] = {}
    spans: dict[tuple[str | int, ...], ast.Span] = {}
    skip = [*converted.unresolved, *converted.invalid]
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        if any(loc[: len(p)] == p for p in skip):
            continue  # env()/secret() values are only known at run time; refs are reported already
        if error["type"] == "missing":
            if loc and loc[0] in suggested and len(loc) == 1:
                continue  # the misspelled key's did-you-mean already says it
            yield _missing(decl, loc)
            continue
        if error["type"] == "extra_forbidden":
            yield _nested_unknown(decl, model, loc)
            continue
        found, depth = locate(decl.config, loc)
        where = loc[:depth]
        if found is not None:
            got, span = describe(_shown(found)), found.span
        else:
            got, span = describe_python(error.get("input")), decl.config_span or decl.span
        key = (*where, got)
        spans.setdefault(key, span)
        by_path.setdefault(key, []).append(_expectation(error))
    for key, expectations in by_path.items():
        unique = list(dict.fromkeys(expectations))
        name = path_text(key[:-1]) if len(key) > 1 else "config"
        got = str(key[-1])
        yield Diagnostic(
            INVALID_CONFIG_VALUE, "error", f"'{name}' {' or '.join(unique)}, got {got}", spans[key]
        )


def _shown(found: ast.Pair | ast.Value) -> ast.Value:
    """The value a message talks about: an env() with a default is validated as its default."""
    value = found.value if isinstance(found, ast.Pair) else found
    while isinstance(value, ast.EnvValue) and value.default is not None:
        value = value.default
    return value


def _missing(decl: ast.NodeDecl, loc: tuple[str | int, ...]) -> Diagnostic:
    field = str(loc[-1])
    if len(loc) > 1 and isinstance(loc[-1], int):  # a fixed-length list (a tuple field) is too short
        found, depth = locate(decl.config, loc[:-1])
        span = found.span if found is not None and depth else (decl.config_span or decl.span)
        items = loc[-1] + 1
        message = f"'{path_text(loc[:-1])}' needs at least {items} items, got {loc[-1]}"
        return Diagnostic(
            MISSING_CONFIG_KEY, "error", message, span, suggestion="give the list every item its type expects"
        )
    if len(loc) > 1:
        found, depth = locate(decl.config, loc[:-1])
        span = found.span if found is not None and depth else (decl.config_span or decl.span)
        message = f"'{path_text(loc[:-1])}' is missing the required key '{field}'"
    else:
        span = decl.config_span or decl.span
        message = f"{decl.role} '{decl.name}' ({decl.type_name}) needs the config key '{field}'"
    return Diagnostic(MISSING_CONFIG_KEY, "error", message, span, suggestion=f"add `{field} = ...`")


def _nested_unknown(decl: ast.NodeDecl, model: type[BaseModel], loc: tuple[str | int, ...]) -> Diagnostic:
    found, depth = locate(decl.config, loc)
    span = (
        found.key_span
        if isinstance(found, ast.Pair) and depth == len(loc)
        else (found.span if found is not None else decl.config_span or decl.span)
    )
    nested = _nested_model(model, loc[:-1])
    hint = did_you_mean(str(loc[-1]), _field_names(nested)) if nested is not None else None
    where = f"in '{path_text(loc[:-1])}'" if len(loc) > 1 else f"for component type '{decl.type_name}'"
    return Diagnostic(
        UNKNOWN_CONFIG_KEY, "error", f"unknown config key '{loc[-1]}' {where}", span, suggestion=hint
    )


def _nested_model(model: type[BaseModel], path: Sequence[str | int]) -> type[BaseModel] | None:
    """The model a nested map validates against, when the path leads through plain model fields."""
    current: Any = model
    for part in path:
        if not (inspect.isclass(current) and issubclass(current, BaseModel)) or not isinstance(part, str):
            return None
        info = current.model_fields.get(part)
        if info is None:
            return None
        current = info.annotation
    return current if inspect.isclass(current) and issubclass(current, BaseModel) else None


_EXPECTATIONS = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "bytes_type": "must be a string",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "set_type": "must be a list",
    "dict_type": "must be a map",
    "model_type": "must be a map",
    "model_attributes_type": "must be a map",
    "none_required": "must be null",
    "url_parsing": "must be a URL",
    "url_type": "must be a URL",
    "timedelta_type": "must be a duration",
    "timedelta_parsing": "must be a duration",
}


def _expectation(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind in _EXPECTATIONS:
        return _EXPECTATIONS[kind]
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}"
    if kind == "greater_than":
        return f"must be greater than {ctx.get('gt')}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}"
    if kind == "less_than":
        return f"must be less than {ctx.get('lt')}"
    if kind in ("literal_error", "enum"):
        return f"must be one of {ctx.get('expected')}"
    if kind in ("too_short", "string_too_short"):
        unit = "characters" if kind.startswith("string") else "items"
        return f"must have at least {ctx.get('min_length')} {unit}"
    if kind in ("too_long", "string_too_long"):
        unit = "characters" if kind.startswith("string") else "items"
        return f"must have at most {ctx.get('max_length')} {unit}"
    if kind == "string_pattern_mismatch":
        return f"must match the pattern {ctx.get('pattern')!r}"
    message = str(error.get("msg", "is invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return f"is invalid ({message[:1].lower() + message[1:]})"
