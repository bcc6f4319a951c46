"""Building one node for a run: its component (or dry-run stand-in), its per-record call and the
`NodeRuntime` that handles that call's failures. Shared by the local runner and the Beam workers, so
that a node behaves the same wherever it runs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipec.runtime.policy import ErrorLog, NodeRuntime, Policy, TimedCall
from pipec.runtime.roles import Context
from pipec.runtime.values import Redactor

if TYPE_CHECKING:
    from pydantic import BaseModel

    from pipec.runtime.runner import NodeSpec

ROLE_METHOD = {"processor": "process", "sink": "write", "stage": "stage"}


@dataclass
class WiredNode:
    component: Any  # the component instance, the function of a function processor, or a stand-in
    runtime: NodeRuntime
    timed: TimedCall | None  # set when the node has a timeout: to be shut down at the end


def _batches_itself(component: Any) -> bool:
    from pipec.runtime.roles import Sink

    return getattr(type(component), "write_batch", Sink.write_batch) is not Sink.write_batch


def _no_call(record: Any) -> Any:
    raise TypeError("this role takes no per-record call")


class _RedactLogs(logging.Filter):
    """Scrubs secret values from every record a component logs through `context.logger`: the message
    as formatted with its arguments, the traceback and the stack."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


@contextlib.contextmanager
def redacting_handlers(redact: Redactor) -> Iterator[None]:
    """While a run lasts, scrub secrets from every record that reaches the root logger's handlers or
    Python's last-resort stderr handler: a component's own `logging.getLogger(__name__)` (or a
    library's, such as httpx logging a URL) is covered as well as `context.logger`."""
    installed: list[tuple[logging.Handler, logging.Filter]] = []
    for handler in [*logging.getLogger().handlers, logging.lastResort]:
        if handler is not None:
            scrub = _RedactLogs(redact)
            handler.addFilter(scrub)
            installed.append((handler, scrub))
    try:
        yield
    finally:
        for handler, added in installed:
            handler.removeFilter(added)


def _redacting_logger(name: str, redact: Redactor) -> logging.Logger:
    logger = logging.getLogger(name)
    for old in [f for f in logger.filters if isinstance(f, _RedactLogs)]:
        logger.removeFilter(old)  # loggers outlive a run: the next run of the pipeline brings its own
    logger.addFilter(_RedactLogs(redact))
    return logger


def _materialised(function: Callable[[Any], Any]) -> Callable[[Any], list[Any]]:
    def call(record: Any) -> list[Any]:
        out = function(record)
        if out is None:
            return []  # nothing to emit: the record is filtered, as for a one-to-one processor
        if isinstance(out, (dict, str, bytes, bytearray)):
            # list() of these would emit keys or characters as records
            kind = type(out).__name__
            raise TypeError(f"a processor marked emits_many must return an iterable of records, got a {kind}")
        return list(out)

    return call


def wire_node(
    spec: NodeSpec,
    config: BaseModel | None,
    *,
    run_id: str,
    pipeline: str,
    location: str,
    dry_run: bool,
    errors: ErrorLog,
    redact: Redactor,
) -> WiredNode:
    """Construct the node's component (exceptions propagate: the caller knows how to report them)."""
    runtime_ref: list[NodeRuntime] = []

    def reject(record: Any, error: BaseException) -> None:
        runtime_ref[0].reject(record, error)

    context = Context(
        run_id=run_id,
        pipeline=pipeline,
        node=spec.name,
        location=location,
        dry_run=dry_run,
        logger=_redacting_logger(f"pipec.{pipeline}.{spec.name}", redact),
        reject=reject,
    )
    call: Callable[[Any], Any]
    if spec.is_function:
        component: Any = spec.factory
        call = spec.factory
    else:
        if dry_run and spec.role in ("sink", "stage", "bulksink"):
            from pipec.runtime.dryrun import stand_in_for

            component = stand_in_for(spec.role, context)
        else:
            component = spec.factory(config, context)
        method = ROLE_METHOD.get(spec.role)
        call = getattr(component, method) if method else _no_call
    if spec.emits_many:
        # A flat-map's output is often a generator that fails while it is consumed: the list is made
        # inside the call, so that failure is the record's, within its timeout and its retries.
        call = _materialised(call)
    timed = None
    if spec.timeout is not None and spec.role in ("processor", "sink", "stage"):
        timed = TimedCall(call, spec.timeout)
        call = timed
    policy = Policy(spec.on_error, spec.retries, spec.backoff, spec.timeout)
    runtime = NodeRuntime(spec.name, location, policy, call, errors, redact, run_id)
    if spec.role == "source":
        runtime.reject_phase = "source"  # a rejected record never entered the pipeline
    if spec.role == "sink" and not spec.is_function and _batches_itself(component):
        # Only a sink's own write_batch is taken as all-or-nothing; the default writes one record at a
        # time, and retrying a half-written batch of it would write its first records twice.
        runtime.write_batch = component.write_batch
    runtime_ref.append(runtime)
    return WiredNode(component, runtime, timed)
