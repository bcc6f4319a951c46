"""One node inside a Beam worker: its settings (pickled into the job: names, never values), its component,
failure handling through the local runner's `NodeRuntime`, and its counts as Beam metrics.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import uuid
from dataclasses import dataclass
from typing import Any

from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput
from apache_beam.transforms.window import GlobalWindows
from pydantic import BaseModel, ValidationError

from pipec.runtime.errors import ErrorInfo, RunAborted
from pipec.runtime.policy import ErrorLog, NodeRuntime, TimedCall, backoff_delay
from pipec.runtime.runner import NodeSpec
from pipec.runtime.values import MissingVariable, Redactor, resolve
from pipec.runtime.wiring import wire_node

log = logging.getLogger("pipec")

NAMESPACE = "pipec"  # the Beam metrics namespace of every pipec counter
DEADLETTERS = "deadletters"  # the tag of a node's dead-letter output
RECORDS = "records"  # the tag of its main output
ERROR_MARKER = "pipec-error:"  # precedes an ErrorInfo as JSON in the message of a job-stopping error
KEEP_ERRORS = 20  # errors kept per node, as the local runner's ErrorLog
# Counter kinds, one Beam counter per node and kind, named "NODE.KIND" in namespace "pipec".
COUNTER_KINDS = (
    "emitted", "filtered", "failed", "retried", "deadletters", "published", "unpublished", "aborted"
)


def metric_name(node: str, kind: str) -> str:
    return f"{node}.{kind}"


def teardown_folder(run: RunSettings) -> str:
    """Where workers leave what closing in `DoFn.teardown` changed, for the launcher to read."""
    base = run.temp_location or tempfile.gettempdir()
    return FileSystems.join(base, f"pipec-{run.run_id}-{run.pipeline}-teardown")


@dataclass(frozen=True)
class RunSettings:
    """What every worker needs to know about the run. Pickled into the job: names only, no values."""

    pipeline: str
    pipe_file: str
    run_id: str
    dry_run: bool = False
    limit: int | None = None
    reshuffle: bool = False
    temp_location: str | None = None  # where stages spool records (`--temp_location`); else local temp
    secret_vars: tuple[str, ...] = ()  # every secret(...) of the pipeline, to redact on every node


@dataclass(frozen=True)
class BeamNode:
    """One node as its DoFns receive it: the generated NodeSpec plus the run's settings."""

    spec: NodeSpec
    run: RunSettings

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def location(self) -> str:
        return f"{self.run.pipe_file}:{self.spec.line}"


@dataclass(frozen=True)
class DeadLetter:
    """A dead-letter entry on its way to the dead-letter sink (the same dict the local runner writes)."""

    entry: dict[str, Any]


class NodeFailed(Exception):
    """Stops the Beam job: a node with `on_error = "fail"` failed, a source broke, or a component could
    not open. The message ends with the node's ErrorInfo as JSON, so that the launcher can report it
    (with node and `.pipe` line) whatever the runner wrapped around it."""

    @classmethod
    def of(cls, info: ErrorInfo) -> NodeFailed:
        return cls(f"{info.one_line()}\n{ERROR_MARKER}{json.dumps(info.to_json(), sort_keys=True)}")


def error_from_text(text: str) -> ErrorInfo | None:
    """The first ErrorInfo a NodeFailed put into `text` (an exception message or a job's error log)."""
    start = text.find(ERROR_MARKER)
    if start < 0:
        return None
    try:
        data, _ = json.JSONDecoder().raw_decode(text, start + len(ERROR_MARKER))
        return ErrorInfo(**data)
    except (ValueError, TypeError):
        return None


# -------------------------------------------------------------------------------- worker-side state
class Worker:
    """One node's component, failure handling and metrics inside a Beam worker (built in `setup()`).

    Config is resolved here, from the worker's environment, never on the machine that submits the job.
    """

    def __init__(self, node: BeamNode, forward: bool) -> None:
        self.node = node
        self.name = node.name
        self.location = node.location
        spec = node.spec
        environ = os.environ
        self.redact = Redactor(environ[var] for var in node.run.secret_vars if environ.get(var))
        self.errors = ErrorLog(KEEP_ERRORS)
        self.pending: list[Any] = []  # dead-letter outputs waiting to be emitted
        self.forward = forward
        self.config = self._config()
        self.component: Any = None
        self.runtime: NodeRuntime | None = None
        self.timed: TimedCall | None = None
        self.opened = False
        self.counters = {k: Metrics.counter(NAMESPACE, metric_name(spec.name, k)) for k in COUNTER_KINDS}
        self.error_set = Metrics.string_set(NAMESPACE, metric_name(spec.name, "errors"))
        self.run_error_set = Metrics.string_set(NAMESPACE, metric_name(spec.name, "run_errors"))
        self.sent = dict.fromkeys(COUNTER_KINDS, 0)
        self.errors_sent = 0

    def _config(self) -> BaseModel | None:
        spec = self.node.spec
        try:
            resolved = resolve(dict(spec.config), os.environ, set())
            if spec.is_function:
                return None
            config: BaseModel = spec.factory.Config.model_validate(resolved)
            return config
        except MissingVariable as exc:
            raise NodeFailed.of(self.info(exc, "open", "ConfigurationError")) from None
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
            )
            raise NodeFailed.of(self.info(ValueError(problems), "open", "ConfigurationError")) from None

    def info(self, exc: BaseException, phase: str, kind: str | None = None) -> ErrorInfo:
        info = ErrorInfo.from_exception(exc, self.name, self.location, self.redact, phase)
        if kind is not None:
            info = ErrorInfo(info.node, info.location, kind, info.message, info.traceback, info.phase)
        return info

    # --------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Build the component (a counting stand-in in a dry run) and open it; NodeFailed if it cannot."""
        spec, run = self.node.spec, self.node.run
        try:
            wired = wire_node(
                spec, self.config, run_id=run.run_id, pipeline=run.pipeline, location=self.location,
                dry_run=run.dry_run, errors=self.errors, redact=self.redact,
            )
            if not spec.is_function:
                wired.component.open()
                self.opened = True
        except Exception as exc:
            raise NodeFailed.of(self.info(exc, "open")) from None
        self.timed = wired.timed
        if self.forward:
            wired.runtime.deadletter = _Outlet(self)  # type: ignore[assignment]
        self.component = wired.component
        self.runtime = wired.runtime
        # A fresh component counts from zero (a runner may retry a bundle on the same DoFn instance).
        self.errors.by_node.clear()
        self.sent.update(failed=0, retried=0, deadletters=0)
        self.errors_sent = 0

    def close(self) -> ErrorInfo | None:
        """Close the component once; the error, if closing failed."""
        if self.timed is not None:
            self.timed.shutdown()
            self.timed = None
        if not self.opened:
            return None
        self.opened = False
        try:
            self.component.close()
        except RunAborted as stop:  # it rejected a record at a node with on_error = "fail"
            return stop.error
        except Exception as exc:
            return self.info(exc, "close")
        return None

    def flush(self) -> None:
        """A sink's `flush()`, at the end of a bundle: the writes its `close()` would otherwise finish in
        `teardown` (where nothing is counted) finish here, and the records it rejects are counted and
        dead-lettered. Any other error fails the run, as a failed flush does locally."""
        flush = getattr(self.component, "flush", None)
        if flush is None or not self.opened:
            return
        try:
            flush()
        except RunAborted as stop:  # a rejected record at a node with on_error = "fail"
            raise NodeFailed.of(stop.error) from None
        except Exception as exc:
            self.run_error(self.info(exc, "close"))

    def teardown(self) -> None:
        """Close from `DoFn.teardown()`, where Beam keeps no metrics and nothing can be emitted. What
        closing changed (a close error, records rejected while closing, dead letters that can no longer
        be sent) is logged, and written as a small JSON file to the run's teardown folder, which the
        launcher reads when the job has ended (on runners that tear down before that)."""
        waiting = len(self.pending)  # left by a failed bundle: not closing's doing
        problem = self.close()
        found = self._unsent()
        undelivered = len(self.pending) - waiting
        self.pending = []
        run_errors = [problem] if problem is not None else []
        if undelivered:
            run_errors.append(ErrorInfo(
                self.name, self.location, "DeadLettersLost",
                f"{undelivered} dead-letter entr{'y' if undelivered == 1 else 'ies'} produced while closing "
                "in DoFn.teardown could not be sent to the dead-letter sink",
                "", "close",
            ))
        if not run_errors and not any(found["counters"].values()):
            return
        for info in run_errors:
            log.error("pipec: %s", info.one_line())
        report = {
            "node": self.name,
            "counters": found["counters"],
            "errors": found["errors"],
            "run_errors": [info.to_json() for info in run_errors],
        }
        try:  # (a local file system makes the folder; object stores have none)
            path = FileSystems.join(teardown_folder(self.node.run), f"{self.name}-{uuid.uuid4().hex}.json")
            with FileSystems.create(path) as file:
                file.write(json.dumps(report, sort_keys=True).encode("utf-8"))
        except Exception as exc:  # noqa: BLE001 - teardown must not raise; the log has it
            log.error("pipec: node '%s': cannot write its teardown report: %s", self.name, exc)

    # ------------------------------------------------------------------------------ per record
    def recover(self, record: Any, exc: Exception) -> Any:
        """`call(record)` raised: retry / skip / dead-letter as the node's policy says, or stop the job.
        Returns the call's result (after a successful retry) or DROPPED."""
        assert self.runtime is not None
        try:
            return self.runtime.recover(record, exc)
        except RunAborted as stop:
            raise NodeFailed.of(stop.error) from None

    def drain(self) -> list[Any]:
        """The dead-letter outputs produced since the last call, as tagged outputs."""
        pending = self.pending
        if not pending:
            return []
        self.pending = []
        return [TaggedOutput(DEADLETTERS, entry) for entry in pending]

    def drain_windowed(self) -> list[Any]:
        """The same, from `finish_bundle` (which must name the window of what it emits)."""
        pending = self.pending
        if not pending:
            return []
        self.pending = []
        return [TaggedOutput(DEADLETTERS, GlobalWindows.windowed_value(entry)) for entry in pending]

    def receive(self, entry: dict[str, Any]) -> None:
        """A dead-letter sink's `receive_deadletter`: write the entry; a failure is this sink's own and is
        never forwarded further (so two sinks dead-lettering into each other cannot loop)."""
        runtime = self.runtime
        assert runtime is not None
        runtime.deadletters_received += 1
        try:
            runtime.call(entry)
            return
        except Exception as first:
            error: Exception = first
        for attempt in range(1, runtime.policy.retries + 1):
            runtime.sleep(backoff_delay(runtime.policy.backoff, attempt))
            runtime.retried += 1
            try:
                runtime.call(entry)
                return
            except Exception as again:
                error = again
        runtime.failed += 1
        info = self.info(error, "record")
        self.errors.add(info)
        if runtime.policy.on_error == "fail":
            raise NodeFailed.of(info)

    # ---------------------------------------------------------------------------------- metrics
    def sync(self, emitted: int = 0, filtered: int = 0) -> None:
        """Report what changed since the last call as Beam metrics (call only inside a bundle)."""
        found = self._unsent(emitted, filtered)
        for kind, delta in found["counters"].items():
            if delta:
                self.counters[kind].inc(delta)
        for text in found["errors"]:
            self.error_set.add(text)

    def _unsent(self, emitted: int | None = None, filtered: int | None = None) -> dict[str, Any]:
        """What changed since it was last reported (counter deltas, errors as metric strings); from now
        on it counts as reported. `emitted` / `filtered` are the DoFn's own totals (None: not known
        here, as in teardown)."""
        runtime = self.runtime
        now = {"emitted": emitted, "filtered": filtered}
        if runtime is not None:
            now["failed"], now["retried"] = runtime.failed, runtime.retried
            now["deadletters"] = runtime.deadletters_received
        deltas = {}
        for kind, value in now.items():
            if value is None:
                continue
            delta = value - self.sent[kind]
            if delta:
                deltas[kind] = delta
                self.sent[kind] = value
        errors = []
        kept = self.errors.by_node.get(self.name, [])
        while self.errors_sent < len(kept):
            errors.append(json.dumps([self.errors_sent, kept[self.errors_sent].to_json()], sort_keys=True))
            self.errors_sent += 1
        return {"counters": deltas, "errors": errors}

    def count(self, kind: str) -> None:
        self.counters[kind].inc()

    def run_error(self, info: ErrorInfo) -> None:
        """A once-per-run action failed (closing, handing off, publishing): the run counts as failed."""
        self.run_error_set.add(json.dumps([0, info.to_json()], sort_keys=True))
        self.counters["aborted"].inc()


class _Outlet:
    """Stands in for the dead-letter sink's NodeRuntime: the entry leaves on the `deadletters` output."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def receive_deadletter(self, record: Any, info: ErrorInfo) -> None:
        worker = self.worker
        entry = {
            "run_id": worker.node.run.run_id,
            "node": info.node,
            "location": info.location,
            "error": {"type": info.type, "message": info.message, "traceback": info.traceback},
            "record": worker.redact.deep(record),
        }
        worker.pending.append(DeadLetter(entry))
