"""pipec's own per-node options (`with { ... }`) and pipeline settings (`threshold = 95%`).

Both are pipec's, the same for every component, and fixed at compile time: the generated runner
bakes each node's policy into its loop, so `env(...)` / `secret(...)` are not allowed here.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipec.compiler import ast
from pipec.compiler.diagnostics import Diagnostic, did_you_mean
from pipec.compiler.model import NodeOptions, OnError
from pipec.compiler.values import describe, duplicate_keys, kind_name
from pipec.runtime.policy import MAX_BACKOFF_SECONDS

# Diagnostic codes raised here (documented in docs/language.md).
UNKNOWN_OPTION = "P209"
INVALID_OPTION = "P210"
OPTION_NOT_FOR_ROLE = "P211"
OPTION_WITHOUT_EFFECT = "P212"
UNKNOWN_SETTING = "P401"
INVALID_SETTING = "P402"
RUNTIME_VALUE_NOT_ALLOWED = "P405"

OPTION_KEYS: tuple[str, ...] = ("on_error", "deadletter", "retries", "backoff", "timeout", "batch", "workers")
ON_ERROR_CHOICES: tuple[OnError, ...] = ("skip", "fail", "deadletter")
# Retries and timeouts wrap the per-record calls: a source's iteration cannot be retried or cut per
# record, and a bulk sink's publish is once per run (retrying it could publish twice).
PER_RECORD_ROLES = ("processor", "sink", "stage")
OPTION_ROLES: dict[str, tuple[str, ...]] = {
    "batch": ("sink",),  # stages and bulk sinks batch by their own config, if at all
    "workers": ("processor",),
    "retries": PER_RECORD_ROLES,
    "backoff": PER_RECORD_ROLES,
    "timeout": PER_RECORD_ROLES,
}
# A longer timeout is a typo (and past the platform's time_t it cannot even be scheduled); a longer
# backoff would be cut to the runtime's cap anyway.
MAX_DURATION_SECONDS = {"timeout": 24 * 3600.0, "backoff": MAX_BACKOFF_SECONDS}
MAX_DURATION_TEXT = {"timeout": "24h", "backoff": f"{MAX_BACKOFF_SECONDS:g}s"}
MAX_DURATION_HINT = {
    "timeout": "leave the timeout out to let a call run as long as it takes",
    "backoff": f"the wait doubles on each retry up to {MAX_BACKOFF_SECONDS:g}s, its cap",
}
# (least, most) for the whole-number options; None: no upper bound. Beyond 100 retries a failing record
# is retried for hours; beyond 256 workers the run forks more processes than any machine has cores.
INT_OPTION_RANGES: dict[str, tuple[int, int | None]] = {
    "retries": (0, 100),
    "batch": (1, None),
    "workers": (1, 256),
}
SETTING_KEYS: tuple[str, ...] = ("threshold",)
DEFAULT_THRESHOLD = 0.9


def _invalid(code: str, message: str, span: ast.Span, suggestion: str | None = None) -> Diagnostic:
    return Diagnostic(code, "error", message, span, suggestion=suggestion)


def _runtime_value(pair: ast.Pair, where: str) -> Diagnostic | None:
    if isinstance(pair.value, (ast.EnvValue, ast.SecretValue)):
        return _invalid(
            RUNTIME_VALUE_NOT_ALLOWED,
            f"{kind_name(pair.value)} is not allowed for {where} '{pair.key}': it is fixed at compile time",
            pair.value.span,
            "write the value itself",
        )
    return None


def parse_options(decl: ast.NodeDecl) -> tuple[NodeOptions, list[Diagnostic]]:
    """`decl`'s options, defaulted, and a diagnostic for every key or value that is wrong."""
    diagnostics = list(duplicate_keys(decl.options, "the options"))
    values: dict[str, object] = {}
    seen: set[str] = set()
    for pair in decl.options:
        if pair.key in seen:
            continue
        seen.add(pair.key)
        if pair.key not in OPTION_KEYS:
            diagnostics.append(
                _invalid(
                    UNKNOWN_OPTION,
                    f"unknown option '{pair.key}'",
                    pair.key_span,
                    did_you_mean(pair.key, OPTION_KEYS) or f"the options are: {', '.join(OPTION_KEYS)}",
                )
            )
            continue
        problem = _runtime_value(pair, "the option")
        if problem is None:
            value, problem = _option_value(decl, pair)
            values[pair.key] = value
        if problem is not None:
            diagnostics.append(problem)
    backoff = next((p for p in decl.options if p.key == "backoff"), None)
    if backoff is not None and not values.get("retries") and "retries" not in {p.key for p in decl.options}:
        diagnostics.append(
            Diagnostic(
                OPTION_WITHOUT_EFFECT,
                "warning",
                "'backoff' has no effect without 'retries': it is the wait before a retry",
                backoff.key_span,
                suggestion="add `retries = N`, or remove `backoff`",
            )
        )
    options = NodeOptions(
        on_error=_on_error(values.get("on_error")),
        deadletter=_opt_str(values.get("deadletter")),
        retries=_opt_int(values.get("retries")) or 0,
        backoff_seconds=_backoff(values.get("backoff")),
        timeout_seconds=_opt_float(values.get("timeout"), None),
        batch=_opt_int(values.get("batch")),
        workers=_opt_int(values.get("workers")),
    )
    return options, diagnostics


def _backoff(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) else NodeOptions.backoff_seconds


def _on_error(value: object) -> OnError:
    for choice in ON_ERROR_CHOICES:
        if value == choice:
            return choice
    return "skip"


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _opt_int(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _opt_float(value: object, default: float | None) -> float | None:
    return float(value) if isinstance(value, (int, float)) else default


def _option_value(decl: ast.NodeDecl, pair: ast.Pair) -> tuple[object, Diagnostic | None]:
    """The option's Python value, or None with the diagnostic that says what is wrong."""
    key, value = pair.key, pair.value
    roles = OPTION_ROLES.get(key)
    if roles is not None and decl.role not in roles:
        plural = [f"{r}s" for r in roles]
        allowed = plural[0] if len(plural) == 1 else ", ".join(plural[:-1]) + " and " + plural[-1]
        return None, _invalid(
            OPTION_NOT_FOR_ROLE,
            f"option '{key}' applies only to {allowed}, not to {decl.role} '{decl.name}'",
            pair.key_span,
            f"remove '{key}'",
        )
    got = f"got {describe(value)}"
    if key == "on_error":
        choices = ", ".join(f'"{c}"' for c in ON_ERROR_CHOICES)
        if isinstance(value, ast.StringValue) and value.value in ON_ERROR_CHOICES:
            return value.value, None
        if isinstance(value, ast.RefValue) and value.name in ON_ERROR_CHOICES:
            return None, _invalid(
                INVALID_OPTION,
                f"'on_error' must be a string, got the bare name {value.name}",
                value.span,
                f'write on_error = "{value.name}"',
            )
        text = value.value if isinstance(value, ast.StringValue) else describe(value)
        hint = did_you_mean(text, ON_ERROR_CHOICES)
        return None, _invalid(
            INVALID_OPTION,
            f"'on_error' must be one of {choices}, {got}",
            value.span,
            hint.replace("'", '"') if hint else None,
        )
    if key == "deadletter":
        if isinstance(value, ast.RefValue):
            return value.name, None
        if isinstance(value, ast.StringValue):
            return None, _invalid(
                INVALID_OPTION,
                "'deadletter' takes a sink's name, not a string",
                value.span,
                f"write the bare name: deadletter = {value.value}",
            )
        return None, _invalid(INVALID_OPTION, f"'deadletter' takes a sink's name, {got}", value.span)
    if key in ("retries", "batch", "workers"):
        least, most = INT_OPTION_RANGES[key]
        if isinstance(value, ast.IntValue) and least <= value.value <= (most or value.value):
            return value.value, None
        what = f"a whole number from {least} to {most}" if most else f"a whole number ≥ {least}"
        return None, _invalid(INVALID_OPTION, f"'{key}' must be {what}, {got}", value.span)
    # backoff, timeout: durations
    if isinstance(value, ast.DurationValue) and value.seconds > MAX_DURATION_SECONDS[key]:
        return None, _invalid(
            INVALID_OPTION,
            f"'{key}' must be at most {MAX_DURATION_TEXT[key]}, {got}",
            value.span,
            MAX_DURATION_HINT[key],
        )
    if isinstance(value, ast.DurationValue) and (value.seconds > 0 or key == "backoff"):
        return value.seconds, None
    hint = None
    if isinstance(value, (ast.IntValue, ast.FloatValue)) and value.value > 0:
        limit = MAX_DURATION_SECONDS[key]
        units = [unit for unit, scale in (("s", 1.0), ("ms", 0.001)) if value.value * scale <= limit]
        hint = "write a unit: " + " or ".join(f"{key} = {value.value:g}{u}" for u in units) if units else None
    positive = "" if key == "backoff" else " greater than zero"
    return None, _invalid(
        INVALID_OPTION, f"'{key}' must be a duration{positive} (200ms, 5s, 2m, 1h), {got}", value.span, hint
    )


def parse_settings(settings: Sequence[ast.Pair]) -> tuple[float, list[Diagnostic]]:
    """The pipeline's threshold (0..1), and a diagnostic for every setting that is wrong."""
    diagnostics = list(duplicate_keys(settings, "the pipeline settings"))
    threshold = DEFAULT_THRESHOLD
    seen: set[str] = set()
    for pair in settings:
        if pair.key in seen:
            continue
        seen.add(pair.key)
        if pair.key not in SETTING_KEYS:
            diagnostics.append(
                _invalid(
                    UNKNOWN_SETTING,
                    f"unknown pipeline setting '{pair.key}'",
                    pair.key_span,
                    did_you_mean(pair.key, SETTING_KEYS) or f"the settings are: {', '.join(SETTING_KEYS)}",
                )
            )
            continue
        problem = _runtime_value(pair, "the setting")
        if problem is not None:
            diagnostics.append(problem)
            continue
        value = pair.value
        if isinstance(value, ast.PercentValue) and 0.0 <= value.fraction <= 1.0:
            threshold = value.fraction
            continue
        hint = None
        if isinstance(value, (ast.IntValue, ast.FloatValue)):
            fraction = isinstance(value, ast.FloatValue) and 0 < value.value <= 1
            number = value.value * 100 if fraction else value.value
            if 0 <= number <= 100:
                hint = f"write a percentage: threshold = {number:g}%"
        diagnostics.append(
            _invalid(
                INVALID_SETTING,
                f"'threshold' must be a percentage from 0% to 100%, got {describe(value)}",
                value.span,
                hint,
            )
        )
    return threshold, diagnostics
