"""What happens when a call fails: retries with backoff, timeouts, and the node's `on_error` policy.

The generated loop calls each component directly inside `try`; only when that raises does it call into a
`NodeRuntime` (`recover`, `recover_write`), so a record that succeeds pays nothing here.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipec.runtime.errors import ErrorInfo, RunAborted
from pipec.runtime.values import Redactor

MAX_BACKOFF_SECONDS = 30.0

# What a component call can raise that fails only its record. SystemExit too: a library calling
# sys.exit() deep inside a component must not end the run silently, with nothing closed or reported.
# (KeyboardInterrupt and RunAborted stop the run; they are not a record's failure.)
RECORD_ERRORS: tuple[type[BaseException], ...] = (Exception, SystemExit)


class _Dropped:
    """The sentinel `recover` returns when the record failed for good (distinct from None = filtered)."""

    _instance: _Dropped | None = None

    def __new__(cls) -> _Dropped:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DROPPED"


DROPPED: Any = _Dropped()


@dataclass(frozen=True)
class Policy:
    on_error: str = "skip"  # skip | fail | deadletter
    retries: int = 0
    backoff: float = 0.1  # seconds before the first retry; doubles each time, with jitter
    timeout: float | None = None


class ErrorLog:
    """The first `keep` errors of each node, for the report; later ones are only counted."""

    def __init__(self, keep: int = 20) -> None:
        self.keep = keep
        self.by_node: dict[str, list[ErrorInfo]] = {}

    def add(self, error: ErrorInfo) -> None:
        kept = self.by_node.setdefault(error.node, [])
        if len(kept) < self.keep:
            kept.append(error)


def backoff_delay(base: float, attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with jitter: base * 2^(attempt-1), capped, scaled by 0.5..1.0."""
    delay = min(base * (2 ** (attempt - 1)), MAX_BACKOFF_SECONDS)
    return delay * (0.5 + rng() / 2)


class CallTimedOut(TimeoutError):
    pass


class _Helper:
    """One daemon thread that runs calls handed to it, one at a time.

    A daemon, unlike a ThreadPoolExecutor's threads (which the interpreter joins at exit): a call abandoned
    after its timeout must not keep the process alive once the run is over."""

    def __init__(self) -> None:
        import queue
        import threading

        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="pipec-timed", daemon=True).start()

    def _serve(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            job.run()

    def stop(self) -> None:
        self.jobs.put(None)  # ends the thread after the call it is running, if any, returns


class _Job:
    def __init__(self, function: Callable[[Any], Any], record: Any) -> None:
        import threading

        self.function = function
        self.record = record
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.function(self.record)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, raised there
            self.error = exc
        finally:
            self.done.set()


class TimedCall:
    """Runs `function(record)` in a helper thread and gives up after `seconds`.

    Python cannot kill a thread, so a hung call is abandoned (its thread is a daemon and keeps running
    until the call returns, or the process ends) and a fresh thread serves the next record.
    """

    def __init__(self, function: Callable[[Any], Any], seconds: float) -> None:
        self.function = function
        self.seconds = seconds
        self._helper = _Helper()

    def __call__(self, record: Any) -> Any:
        job = _Job(self.function, record)
        self._helper.jobs.put(job)
        if not job.done.wait(self.seconds):
            self._helper.stop()
            self._helper = _Helper()
            raise CallTimedOut(f"call took longer than its timeout of {self.seconds:g}s")
        if job.error is not None:
            error, job.error = job.error, None
            raise error
        return job.result

    def after_fork(self) -> None:
        """In a forked worker process: the helper thread did not survive the fork; start a new one."""
        self._helper = _Helper()

    def shutdown(self) -> None:
        self._helper.stop()


class NodeRuntime:
    """One node's failure handling and off-hot-path counters."""

    def __init__(
        self,
        name: str,
        location: str,
        policy: Policy,
        call: Callable[[Any], Any],
        errors: ErrorLog,
        redact: Redactor,
        run_id: str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.location = location
        self.policy = policy
        self.call = call  # the per-record call, already wrapped in TimedCall when a timeout is set
        self.errors = errors
        self.redact = redact
        self.run_id = run_id
        self.sleep = sleep
        self.deadletter: NodeRuntime | None = None
        self.write_batch: Callable[[list[Any]], Any] | None = None
        self.reject_phase = "record"  # "source" for sources: the record never entered the pipeline
        self.failed = 0
        self.retried = 0
        self.deadletters_received = 0

    # -------------------------------------------------------------------------- per-record failures
    def recover(self, record: Any, exc: BaseException) -> Any:
        """`call(record)` raised `exc`: retry as configured; return the result or DROPPED."""
        result, error = self.retry(record, exc)
        if error is None:
            return result
        self.fail(record, error)
        return DROPPED

    def retry(self, record: Any, exc: BaseException) -> tuple[Any, BaseException | None]:
        """Retry a failed call as configured: (result, None), or (None, the last error) when every
        attempt failed. Worker processes use this too, and report the failure to the main process."""
        for attempt in range(1, self.policy.retries + 1):
            self.sleep(backoff_delay(self.policy.backoff, attempt))
            self.retried += 1
            try:
                return self.call(record), None
            except RECORD_ERRORS as again:
                exc = again
        return None, exc

    def fail(self, record: Any, exc: BaseException, phase: str = "record") -> None:
        """Count a record as failed here and apply on_error (may raise RunAborted)."""
        self.fail_info(record, ErrorInfo.from_exception(exc, self.name, self.location, self.redact, phase))

    def fail_info(self, record: Any, info: ErrorInfo) -> None:
        """`fail` for an error already described (e.g. by a worker process, which has the traceback)."""
        self.failed += 1
        self.errors.add(info)
        if self.policy.on_error == "fail":
            raise RunAborted(info)
        if self.policy.on_error == "deadletter" and self.deadletter is not None:
            self.deadletter.receive_deadletter(record, info)

    def reject(self, record: Any, error: BaseException) -> None:
        """`Context.reject`: a component reports one bad record itself (a malformed input line, a row
        the database refused); failed here without retries."""
        self.fail(record, error, phase=self.reject_phase)

    def receive_deadletter(self, record: Any, info: ErrorInfo) -> None:
        entry = {
            "run_id": self.run_id,
            "node": info.node,
            "location": info.location,
            "error": {"type": info.type, "message": info.message, "traceback": info.traceback},
            "record": self.redact.deep(record),
        }
        self.deadletters_received += 1
        try:
            self.call(entry)
        except RECORD_ERRORS as first:
            # A dead-letter sink that cannot write is a failure of its own; never forwarded further,
            # so two sinks that dead-letter into each other cannot loop.
            error: BaseException = first
            for attempt in range(1, self.policy.retries + 1):
                self.sleep(backoff_delay(self.policy.backoff, attempt))
                self.retried += 1
                try:
                    self.call(entry)
                    return
                except RECORD_ERRORS as again:
                    error = again
            self.failed += 1
            failure = ErrorInfo.from_exception(error, self.name, self.location, self.redact)
            self.errors.add(failure)
            if self.policy.on_error == "fail":
                raise RunAborted(failure) from None

    # ------------------------------------------------------------------------------ batched sinks
    def flush(self, buffer: list[Any]) -> None:
        """Write a sink's buffered records with `write_batch`; on failure retry the batch, then write
        the records one by one so that only the bad ones fail."""
        if not buffer:
            return
        batch = buffer[:]
        buffer.clear()
        if self.write_batch is None:  # no all-or-nothing batch write: record by record from the start
            self._write_one_by_one(batch)
            return
        try:
            self.write_batch(batch)
            return
        except RECORD_ERRORS:
            pass
        for attempt in range(1, self.policy.retries + 1):
            self.sleep(backoff_delay(self.policy.backoff, attempt))
            self.retried += 1
            try:
                self.write_batch(batch)
                return
            except RECORD_ERRORS:
                continue
        self._write_one_by_one(batch)

    def _write_one_by_one(self, batch: list[Any]) -> None:
        for position, record in enumerate(batch):
            try:
                self.call(record)
            except RECORD_ERRORS as exc:
                try:
                    self.recover(record, exc)
                except RunAborted:
                    self.failed += len(batch) - position - 1  # the run stopped: never written
                    raise
