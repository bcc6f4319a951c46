"""Running a generated pipeline: set-up, lifecycle, the stream, tear-down, status and report.

A generated module describes its pipeline as a `PipelineSpec` (nodes, edges, and its specialised
`stream(run)` function) and hands it to `run_pipeline`. This module does everything that happens once
per run; the per-record work is all in the generated `stream`.

What is needed only once a run is under way (dry-run stand-ins, node timing, counting, the report) is
imported when it is needed, so that importing a generated runner stays cheap.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from pipec.runtime.errors import ConfigurationError, ErrorInfo, RunAborted, Terminated
from pipec.runtime.policy import RECORD_ERRORS, ErrorLog, NodeRuntime, TimedCall
from pipec.runtime.progress import Progress
from pipec.runtime.values import MissingVariable, Redactor, current_environ, resolve
from pipec.runtime.wiring import redacting_handlers, wire_node

if TYPE_CHECKING:
    from pipec.runtime.report import RunOutcome
    from pipec.runtime.status import NodeCounts
    from pipec.runtime.workers import WorkerChain

log = logging.getLogger("pipec")


@dataclass(frozen=True)
class NodeSpec:
    name: str
    role: str  # source | processor | sink | stage | bulksink
    type_name: str
    line: int
    factory: Any  # the component class, or the function of a plain-function processor
    config: Mapping[str, Any] = field(default_factory=dict)  # may hold Env / Secret markers
    is_function: bool = False
    emits_many: bool = False
    on_error: str = "skip"
    deadletter: str | None = None
    retries: int = 0
    backoff: float = 0.1
    timeout: float | None = None
    batch: int | None = None
    workers: int | None = None


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    pipe_file: str
    pipe_sha256: str
    pipec_version: str
    threshold: float
    nodes: tuple[NodeSpec, ...]  # topological order
    edges: tuple[tuple[str, str, str], ...]  # (source, target, "->" | "=>")
    stream: Callable[[Run], None]
    module_file: str = ""  # the generated module's path, for per-node timing


@dataclass(frozen=True)
class RunOptions:
    dry_run: bool = False
    limit: int | None = None
    report: str | None = None
    quiet: bool = False
    progress: bool | None = None  # None: on when stderr is a terminal




class Run:
    """One run of one pipeline. The generated `stream` asks it for each node's call and runtime."""

    def __init__(self, spec: PipelineSpec, options: RunOptions, environ: Mapping[str, str]) -> None:
        self.spec = spec
        self.options = options
        self.environ = environ
        self.run_id = uuid.uuid4().hex[:12]
        self.redact = Redactor()
        self.errors = ErrorLog()
        self.run_errors: list[ErrorInfo] = []
        self.components: dict[str, Any] = {}
        self.runtimes: dict[str, NodeRuntime] = {}
        self.buffers: dict[str, list[Any]] = {}
        self.loop_counts: dict[str, tuple[int, int]] = {}
        self.published: dict[str, bool | None] = {}
        self.not_published: dict[str, str] = {}  # bulk sink -> why it was not published
        self.opened: list[str] = []
        self.closed: set[str] = set()
        self.timed_calls: list[TimedCall] = []
        self.pools: list[WorkerChain] = []
        self.notes: dict[str, list[str]] = {}
        self.aborted = False
        self.stopped_by: ErrorInfo | None = None  # the error that stopped the stream, if one did
        self.streamed = False  # the stream started: the streaming nodes ran
        self.interrupted = False
        self.torn_down = False
        self.specs = {n.name: n for n in spec.nodes}
        self.lifecycle = lifecycle_order(spec.nodes)
        self.progress = Progress(self._describe_progress, enabled=self._progress_enabled())

    # ---------------------------------------------------------------- used by the generated stream
    def records(self, name: str) -> Iterator[Any]:
        try:
            iterator = iter(self.components[name].records())
        except RECORD_ERRORS as exc:  # a records() that is not a generator raised before iterating
            self.source_broke(name, exc)
        if self.options.limit is not None:
            return itertools.islice(iterator, self.options.limit)
        return iterator

    def call(self, name: str) -> Callable[[Any], Any]:
        return self.runtimes[name].call

    def node(self, name: str) -> NodeRuntime:
        return self.runtimes[name]

    def buffer(self, name: str) -> list[Any]:
        return self.buffers.setdefault(name, [])

    def workers(self, names: tuple[str, ...], emit: Callable[[Any], None], chunk: int) -> WorkerChain:
        """The worker processes of a chain of `workers = N` processors; `emit` takes each output."""
        from pipec.runtime.workers import WorkerChain  # multiprocessing only when a pipeline uses it

        pool = WorkerChain(self, names, emit, chunk)
        self.pools.append(pool)
        return pool

    def note(self, name: str, text: str) -> None:
        """A note for a node's entry in the report (e.g. records a stopped run left in flight)."""
        self.notes.setdefault(name, []).append(text)

    def tick(self, counts: Mapping[str, tuple[int, int]]) -> None:
        self.progress.tick(counts)

    def save_counts(self, counts: Mapping[str, tuple[int, int]]) -> None:
        for name, (emitted, filtered) in counts.items():
            old_emitted, old_filtered = self.loop_counts.get(name, (0, 0))
            self.loop_counts[name] = (old_emitted + emitted, old_filtered + filtered)

    def source_broke(self, name: str, exc: BaseException) -> None:
        """A source's iterator raised: it cannot go on, so the run stops (after closing everything).

        The generated `except` around a source's loop also sees anything else that escapes the loop
        body (only a fault in the runtime itself can); that is not the source's fault, so it goes on up
        to `stream()` as an error of the run."""
        if not _raised_by_iteration(exc):
            raise exc
        spec = self.specs[name]
        info = ErrorInfo.from_exception(exc, name, self.location(spec), self.redact, phase="source")
        self.runtimes[name].failed += 1
        self.errors.add(info)
        raise RunAborted(info) from exc

    # ------------------------------------------------------------------------------------ set-up
    def location(self, spec: NodeSpec) -> str:
        return f"{self.spec.pipe_file}:{spec.line}"

    def _progress_enabled(self) -> bool | None:
        if self.options.quiet:
            return False
        return self.options.progress

    def prepare(self) -> None:
        """Resolve env/secret values and validate every config before anything opens."""
        problems: list[str] = []
        secrets: set[str] = set()
        resolved: dict[str, Any] = {}
        for spec in self.spec.nodes:
            config, missing = _resolve_all(dict(spec.config), self.environ, secrets)
            if missing:
                problems.extend(f"{self.location(spec)}: node '{spec.name}': {exc}" for exc in missing)
            else:
                resolved[spec.name] = config
        self.redact.update(secrets)
        configs: dict[str, BaseModel | None] = {}
        for spec in self.spec.nodes:
            if spec.name not in resolved:
                continue
            if spec.is_function:
                configs[spec.name] = None
                continue
            try:
                configs[spec.name] = spec.factory.Config.model_validate(resolved[spec.name])
            except ValidationError as exc:
                for err in exc.errors():
                    where = ".".join(str(p) for p in err["loc"]) or "config"
                    problems.append(
                        self.redact(f"{self.location(spec)}: node '{spec.name}': {where}: {err['msg']}")
                    )
        if problems:
            raise ConfigurationError(problems)
        for spec in self.spec.nodes:
            self._build(spec, configs[spec.name])
        for spec in self.spec.nodes:
            if spec.deadletter:
                self.runtimes[spec.name].deadletter = self.runtimes[spec.deadletter]

    def _build(self, spec: NodeSpec, config: BaseModel | None) -> None:
        location = self.location(spec)
        try:
            wired = wire_node(
                spec, config, run_id=self.run_id, pipeline=self.spec.name, location=location,
                dry_run=self.options.dry_run, errors=self.errors, redact=self.redact,
            )
        except RECORD_ERRORS as exc:  # the component's constructor raised
            info = ErrorInfo.from_exception(exc, spec.name, location, self.redact, "open")
            raise RunAborted(info) from exc
        if wired.timed is not None:
            self.timed_calls.append(wired.timed)
        self.components[spec.name] = wired.component
        self.runtimes[spec.name] = wired.runtime

    # ----------------------------------------------------------------------------------- lifecycle
    def open_all(self) -> None:
        for spec in self.lifecycle:  # close_all closes in the reverse of this order
            component = self.components[spec.name]
            if not spec.is_function:
                try:
                    component.open()
                except RECORD_ERRORS as exc:
                    info = ErrorInfo.from_exception(exc, spec.name, self.location(spec), self.redact, "open")
                    raise RunAborted(info) from exc
            self.opened.append(spec.name)

    def finish(self) -> None:
        """Flush batches, close each stage and publish its hand-off, then close the rest in reverse."""
        for name, buffer in self.buffers.items():
            if buffer:
                self._guard(name, "record", functools.partial(self.runtimes[name].flush, buffer))
        for spec in self.spec.nodes:  # sinks finish pending writes while rejects still reach dead letters
            flush = getattr(self.components[spec.name], "flush", None)
            if spec.role == "sink" and not spec.is_function and flush is not None:
                self._guard(spec.name, "close", flush)
        for spec in self.spec.nodes:
            if spec.role != "bulksink":
                continue
            stage = next(s for s, t, kind in self.spec.edges if t == spec.name and kind == "=>")
            handoff = self._close_stage(stage)
            if self.aborted or handoff is _FAILED:
                self.published[spec.name] = None
                self.not_published[spec.name] = "the run had already failed"
                continue
            if self.options.limit is not None:  # a trial: the stage holds a sample, not the whole
                self.published[spec.name] = None
                self.not_published[spec.name] = (
                    f"the run was limited to {self.options.limit} records per source (--limit): a trial "
                    "run publishes nothing"
                )
                continue
            # Every streaming node's counts are final now: a run already below its threshold ends
            # failed whatever is published, so nothing half-done is published.
            shortfall = self._threshold_shortfall()
            if shortfall is not None:
                self.published[spec.name] = None
                self.not_published[spec.name] = shortfall
                continue
            publish = functools.partial(self.components[spec.name].publish, handoff)
            self.published[spec.name] = self._guard(spec.name, "publish", publish)
        self.close_all()

    def _threshold_shortfall(self) -> str | None:
        from pipec.runtime.status import threshold_shortfall

        streaming = [n for n in self.counts() if n.role != "bulksink"]
        return threshold_shortfall(streaming, self.spec.threshold)

    def _close_stage(self, name: str) -> Any:
        if not self._close_one(name):
            return _FAILED
        result: list[Any] = []
        if self._guard(name, "close", lambda: result.append(self.components[name].handoff())):
            return result[0]
        return _FAILED

    def close_all(self) -> None:
        """Stop workers, close what is still open (reverse order), stop timeout threads. Every step is
        done once, so that calling this again after an interrupt finishes only what is left."""
        if self.torn_down:
            return
        for pool in self.pools:  # no worker process outlives the run, nor runs while its node closes
            self._guard(pool.head.name, "close", pool.shutdown)
        for name in reversed(self.opened):
            self._close_one(name)
        for timed in self.timed_calls:
            timed.shutdown()
        self.torn_down = True

    def _close_one(self, name: str) -> bool:
        if name in self.closed or name not in self.opened:
            return name in self.closed
        self.closed.add(name)
        if self.specs[name].is_function:
            return True
        return self._guard(name, "close", self.components[name].close)

    def _guard(self, name: str, phase: str, action: Callable[[], Any]) -> bool:
        """Run a once-per-run action; a failure is recorded (never masking an earlier one)."""
        try:
            action()
            return True
        except RunAborted as exc:
            self.aborted = True
            self.run_errors.append(exc.error)
            return False
        except RECORD_ERRORS as exc:
            spec = self.specs[name]
            info = ErrorInfo.from_exception(exc, name, self.location(spec), self.redact, phase)
            self.run_errors.append(info)
            self.aborted = True
            return False
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: stop, but still close the rest
            self.interrupt(exc)
            return False

    def interrupt(self, exc: KeyboardInterrupt) -> None:
        """Ctrl-C or SIGTERM, in whatever phase: the run stops as failed; recorded once."""
        self.aborted = True
        if self.interrupted:
            return
        self.interrupted = True
        message = "interrupted (SIGTERM)" if isinstance(exc, Terminated) else "interrupted (Ctrl-C)"
        self.run_errors.append(
            ErrorInfo("(run)", self.spec.pipe_file, type(exc).__name__, message, "", "run")
        )

    # ------------------------------------------------------------------------------------- stream
    def stream(self) -> None:
        lines: list[str] = []
        if self.spec.module_file and os.path.exists(self.spec.module_file):
            with open(self.spec.module_file, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        from pipec.runtime.timing import NodeSampler

        sampler = NodeSampler(self.spec.module_file, lines)
        self.progress.start()
        self.streamed = True
        with sampler:
            try:
                self.spec.stream(self)
            except RunAborted as exc:
                self.aborted = True
                self.stopped_by = exc.error
                if exc.error not in self.errors.by_node.get(exc.error.node, []):
                    self.run_errors.append(exc.error)
            except KeyboardInterrupt as exc:
                self.interrupt(exc)
            except RECORD_ERRORS as exc:  # anything else that escapes the loop still ends in a clean stop
                self.aborted = True
                self.run_errors.append(
                    ErrorInfo.from_exception(exc, "(run)", self.spec.pipe_file, self.redact, "run")
                )
        self.node_seconds = sampler.node_seconds()

    def _describe_progress(self, counts: Mapping[str, tuple[int, int]]) -> str:
        parts = []
        elapsed = max(self.progress.elapsed(), 1e-9)
        for spec in self.spec.nodes:
            emitted, filtered = counts.get(spec.name, (0, 0))
            if spec.role == "source":
                parts.append(f"{spec.name} {emitted:,} ({emitted / elapsed:,.0f}/s)")
            elif filtered:
                parts.append(f"{spec.name} -{filtered:,}")
            failed = self.runtimes[spec.name].failed
            if failed:
                parts.append(f"{spec.name} failed {failed:,}")
        return f"pipec {self.spec.name}: " + ", ".join(parts)

    # ------------------------------------------------------------------------------------ outcome
    def counts(self) -> list[NodeCounts]:
        from pipec.runtime.status import NodeCounts, NodeFacts, RuntimeCounts, derive_counts

        facts = []
        base = {}
        for spec in self.spec.nodes:
            inputs = tuple(s for s, t, kind in self.spec.edges if t == spec.name and kind == "->")
            stage = next((s for s, t, kind in self.spec.edges if t == spec.name and kind == "=>"), None)
            facts.append(NodeFacts(spec.name, spec.role, spec.emits_many, inputs, stage))
            base[spec.name] = NodeCounts(
                spec.name, spec.role, spec.type_name, self.location(spec), spec.emits_many
            )
            base[spec.name].seconds = getattr(self, "node_seconds", {}).get(spec.name, 0.0)
            base[spec.name].notes.extend(self.notes.get(spec.name, ()))
            if spec.role == "bulksink":
                base[spec.name].ran = self.published.get(spec.name) is not None
            else:
                base[spec.name].ran = self.streamed
        runtime_counts = {
            name: RuntimeCounts(rt.failed, rt.retried, rt.deadletters_received)
            for name, rt in self.runtimes.items()
        }
        return derive_counts(
            facts, self.loop_counts, runtime_counts, self.published, base, self.not_published
        )


_FAILED: Any = object()


def lifecycle_order(nodes: tuple[NodeSpec, ...]) -> list[NodeSpec]:
    """The order to open in (and, reversed, to close in): topological, except that every dead-letter sink
    comes first, each after the dead-letter sink it sends to in turn. A dead-letter entry can come from any
    node at any time, even from its `close()` (a sink writing its last rows); the sink it goes to must
    still be open. Opening a sink before the nodes that feed it by a flow changes nothing for them."""
    by_name = {node.name: node for node in nodes}
    order: list[NodeSpec] = []
    placed: set[str] = set()
    visiting: set[str] = set()

    def place(name: str) -> None:
        if name in placed or name in visiting:  # two sinks dead-lettering into each other: one goes first
            return
        visiting.add(name)
        target = by_name[name].deadletter
        if target is not None:
            place(target)
        visiting.discard(name)
        placed.add(name)
        order.append(by_name[name])

    for node in nodes:
        if any(other.deadletter == node.name for other in nodes):
            place(node.name)
    for node in nodes:
        place(node.name)
    return order


def _resolve_all(
    config: dict[str, Any], environ: Mapping[str, str], secrets: set[str]
) -> tuple[Any, list[MissingVariable]]:
    """`resolve`, listing every missing variable rather than only the first: each one found is given a
    stand-in value (never a secret: an empty one is not collected) and the config resolved again."""
    missing: list[MissingVariable] = []
    stand_ins: dict[str, str] = {}
    while True:
        try:
            return resolve(config, {**environ, **stand_ins} if stand_ins else environ, secrets), missing
        except MissingVariable as exc:
            if exc.var in stand_ins:  # cannot happen; never loop
                raise
            missing.append(exc)
            stand_ins[exc.var] = ""


@contextlib.contextmanager
def _sigterm_stops(run: Run) -> Iterator[None]:
    """While the run lasts, SIGTERM stops it as Ctrl-C does (raised as `Terminated` in the main thread):
    everything opened is closed, the report written, the summary printed. Only the first SIGTERM
    raises; a second one must not break off the clean stop it asked for."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread (e.g. a scheduler's worker thread)
        return

    def terminate(signum: int, frame: Any) -> None:
        if not run.interrupted:
            raise Terminated("SIGTERM")

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raised_by_iteration(exc: BaseException) -> bool:
    """Did `exc` come out of a generated `for rec in ...:` line (the source advancing)?"""
    import linecache

    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name == "_stream":
            return linecache.getline(code.co_filename, tb.tb_lineno).lstrip().startswith("for rec in ")
        tb = tb.tb_next
    return True  # no generated frame to tell by: keep the old reading


def run_pipeline(
    spec: PipelineSpec,
    options: RunOptions,
    environ: Mapping[str, str] | None = None,
    out: Any = None,
) -> tuple[int, RunOutcome | None]:
    """Run once; returns (exit code, outcome). Exit 2 (and no outcome) for a configuration problem."""
    err = out if out is not None else sys.stderr
    if options.report:
        from pipec.runtime.report import report_path_problem

        problem = report_path_problem(options.report)
        if problem is not None:
            print(f"pipec: the run did not start: {problem}", file=err)
            return 2, None
    run = Run(spec, options, environ if environ is not None else current_environ())
    started = datetime.now(timezone.utc)
    with _sigterm_stops(run), redacting_handlers(run.redact):
        try:
            run.prepare()
        except ConfigurationError as exc:
            print("pipec: the run did not start; fix the configuration first:", file=err)
            for message in exc.messages:
                print(f"  {message}", file=err)
            return 2, None
        except RunAborted as exc:  # a constructor raised
            run.aborted = True
            run.run_errors.append(exc.error)
        except KeyboardInterrupt as exc:
            run.interrupt(exc)
        try:
            if not run.aborted:
                run.open_all()
            if not run.aborted:
                run.stream()
                run.finish()
        except RunAborted as exc:  # an open failed
            run.aborted = True
            run.run_errors.append(exc.error)
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM between the guarded steps
            run.interrupt(exc)
        finally:
            # Closes only what is still open: each close() runs exactly once. Interrupted in turn, it
            # goes on (each close is guarded), so nothing opened is left unclosed.
            while not run.torn_down:
                try:
                    run.close_all()
                except KeyboardInterrupt as exc:
                    run.interrupt(exc)
    run.progress.done(run.loop_counts)
    nodes = run.counts()
    from pipec.runtime.report import conclude

    outcome = conclude(
        spec, options, run_id=run.run_id, started_at=started, nodes=nodes, aborted=run.aborted,
        node_errors=run.errors.by_node, run_errors=run.run_errors, err=err, stopped_by=run.stopped_by,
    )
    return outcome.exit_code, outcome


