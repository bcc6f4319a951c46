"""`workers = N`: a chain of processors run in N worker processes, in chunks, in order.

The generated loop appends each record to the chain's buffer and calls `send()` when it holds a chunk;
after the sources end it calls `drain()`. Each chunk goes to the forked worker process with the fewest
chunks queued (a worker that shares its core with the main process, or with a neighbour, gets fewer),
results are taken in as they arrive and handed on strictly in the order the chunks were sent, so the
output order is the input order. At most `N * DEPTH` chunks are between the loop and the hand-on:
memory does not grow with the input.

Failures stay data. A worker runs the node's retries itself; a record that still fails comes back as the
`ErrorInfo` the worker built from the live exception (node, `.pipe` line, traceback) together with the
record as the failing node received it. The main process applies the node's `on_error` policy at the
record's place in the stream: the same counts, the same dead-letter entry, the same stop for `fail`
as in-process (a worker stops its chunk at such a record, so nothing after it is counted).

When the run stops early (`on_error = "fail"`, a downstream failure, Ctrl-C) records may be in flight:
they left the source but will never come out. They are counted as failed at the chain's first node (or
at its last, for results processed but not handed on), with a note saying so, so that every node's
in = out + filtered + failed still holds and no node downstream is credited with records it never got.

Components are opened once, in the main process, before the workers fork: each worker runs on a
copy-on-write image of the opened component (what `open()` set up is shared, state changed by
`process()` is per worker) and never closes it. Where `fork` is not available, the chain runs in the
main process, through the same code, without pickling.
"""

from __future__ import annotations

import collections
import contextlib
import operator
import os
import pickle
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipec.runtime.errors import ErrorInfo, RunAborted
from pipec.runtime.policy import RECORD_ERRORS, NodeRuntime, TimedCall

if TYPE_CHECKING:
    import queue
    from multiprocessing.connection import Connection

    from pipec.runtime.runner import Run

DEPTH = 4  # chunks in flight per worker: one running, the next ones already queued in its pipe
PROTOCOL = pickle.HIGHEST_PROTOCOL

# One failure in a chunk: (index into the chunk's outputs before which it happened, step index,
# the record as that step received it, the error).
Failure = tuple[int, int, Any, ErrorInfo]


@dataclass
class ChunkResult:
    outputs: list[Any]
    failures: list[Failure]
    filtered: list[int]  # per step
    emitted: list[int]  # per step (flat-mapping steps only)
    retried: list[int]  # per step, retries made by a worker process
    consumed: int = 0  # input records taken in (fewer than the chunk when a `fail` record stopped it)
    crash: ErrorInfo | None = None  # the worker could not go on (not a record's failure)


class _Fatal(Exception):
    """A step with on_error = "fail" failed: stop the chunk at this record."""


class ChainRunner:
    """Runs a chain of processors over one chunk, exactly as the generated loop would in-process."""

    def __init__(self, runtimes: Sequence[NodeRuntime], emits_many: Sequence[bool]) -> None:
        self.runtimes = list(runtimes)
        self.calls = [rt.call for rt in self.runtimes]
        self.many = list(emits_many)
        self.fatal = [rt.policy.on_error == "fail" for rt in self.runtimes]
        self.size = len(self.runtimes)

    def run_chunk(self, records: list[Any]) -> ChunkResult:
        size = self.size
        result = ChunkResult([], [], [0] * size, [0] * size, [0] * size)
        before = [rt.retried for rt in self.runtimes]
        try:
            if size == 1 and not self.many[0]:
                self._single(records, result)
            else:
                push = self._push
                for record in records:
                    result.consumed += 1
                    push(record, 0, result)
        except _Fatal:
            pass  # the chunk ends at the failed record, as the in-process loop would stop there
        result.retried = [rt.retried - b for rt, b in zip(self.runtimes, before)]
        return result

    def _single(self, records: list[Any], result: ChunkResult) -> None:
        """The common case, one plain processor, without the general loop's bookkeeping."""
        call = self.calls[0]
        append = result.outputs.append
        filtered = consumed = 0
        try:
            for record in records:
                consumed += 1
                try:
                    out = call(record)
                except RECORD_ERRORS as exc:
                    out = self._recover(record, exc, 0, result)
                    if out is _DROPPED:
                        continue
                if out is None:
                    filtered += 1
                    continue
                append(out)
        finally:
            result.filtered[0] += filtered
            result.consumed += consumed

    def _push(self, record: Any, index: int, result: ChunkResult) -> None:
        calls, many, size = self.calls, self.many, self.size
        while index < size:
            try:
                out = calls[index](record)  # a flat-map's call returns a list (see wiring)
            except RECORD_ERRORS as exc:
                out = self._recover(record, exc, index, result)
                if out is _DROPPED:
                    return
            if many[index]:
                if not out:
                    result.filtered[index] += 1
                    return
                result.emitted[index] += len(out)
                for item in out:
                    self._push(item, index + 1, result)
                return
            if out is None:
                result.filtered[index] += 1
                return
            record = out
            index += 1
        result.outputs.append(record)

    def _recover(self, record: Any, exc: BaseException, index: int, result: ChunkResult) -> Any:
        runtime = self.runtimes[index]
        out, error = runtime.retry(record, exc)
        if error is None:
            return out
        info = ErrorInfo.from_exception(error, runtime.name, runtime.location, runtime.redact)
        result.failures.append((len(result.outputs), index, record, info))
        if self.fatal[index]:
            raise _Fatal
        return _DROPPED


_DROPPED: Any = object()  # a record that failed for good (distinct from None, filtered)


class WorkerChain:
    """The main process's end of one chain of `workers = N` processors (see the module docstring)."""

    def __init__(
        self,
        run: Run,
        names: Sequence[str],
        emit: Callable[[Any], None],
        chunk: int = 256,
        workers: int | None = None,
    ) -> None:
        self.run = run
        self.names = tuple(names)
        self.emit = emit
        self.chunk = chunk
        specs = [run.specs[name] for name in self.names]
        self.workers = workers if workers is not None else (specs[0].workers or 1)
        self.runtimes = [run.runtimes[name] for name in self.names]
        self.runner = ChainRunner(self.runtimes, [spec.emits_many for spec in specs])
        self.buffer: list[Any] = []
        self.head = self.runtimes[0]
        self.forked = "fork" in _start_methods()
        self._processes: list[Any] = []
        self._inboxes: list[Connection] = []  # main -> worker
        self._outboxes: list[Connection] = []  # worker -> main
        # Chunk numbers: `_sent` so far, `_applied` so far (handed on in order); per worker, its queued
        # (chunk number, records) in the order it will answer; results that came early wait in `_done`.
        self._sent = 0
        self._applied = 0
        self._queued: list[collections.deque[tuple[int, int]]] = []
        self._done: dict[int, tuple[ChunkResult, int]] = {}
        self.lost_first = 0  # records taken in but never processed (the run stopped)
        self.lost_last = 0  # records processed but never handed on (the run stopped)
        self._started = False
        self._closed = False
        self.max_in_flight = self.workers * DEPTH  # chunks; records in flight <= this * chunk

    # ------------------------------------------------------------------------ called by the loop
    def send(self) -> None:
        """Hand the buffered records to the next worker (the loop calls this when a chunk is full)."""
        records = self.buffer[:]
        self.buffer.clear()
        if not records:
            return
        if not self.forked:
            self._apply(self.runner.run_chunk(records), len(records))
            return
        waiting = len(records)  # taken in, not yet in a worker's hands
        try:
            if not self._started:
                self._start()
            data, waiting = self._dumps_chunk(records)
            if data is None:
                return
            self._receive(block=False)
            while self._sent - self._applied >= self.max_in_flight:
                self._receive(block=True)
            worker = min(range(self.workers), key=lambda w: len(self._queued[w]))
            self._queued[worker].append((self._sent, waiting))
            self._sent += 1
            waiting = 0
            try:
                self._inboxes[worker].send_bytes(data)
            except OSError:  # a broken pipe: the worker is gone
                raise self._died(worker) from None
        except (RunAborted, KeyboardInterrupt):
            self.lost_first += waiting
            raise
        except Exception as exc:
            self.lost_first += waiting
            raise self._broken(exc) from exc

    def drain(self) -> None:
        """The sources have ended: send the last chunk, take in every result, stop the workers."""
        self.send()
        try:
            while self._applied < self._sent:
                self._receive(block=True)
        except (RunAborted, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise self._broken(exc) from exc
        self._stop(wait=True)

    def shutdown(self) -> None:
        """End of the run, whatever happened: no worker outlives it. Records still in flight (the run
        stopped early) are counted as failed, with a note, so the counts stay true."""
        self._stop(wait=False)
        queued = [count for queue in self._queued for _, count in queue]
        self.lost_first += sum(queued) + sum(count for _, count in self._done.values()) + len(self.buffer)
        for queue in self._queued:
            queue.clear()
        self._done.clear()
        self.buffer.clear()
        for runtime, lost, what in (
            (self.head, self.lost_first, "were taken in but not processed"),
            (self.runtimes[-1], self.lost_last, "were processed but not handed on"),
        ):
            if lost:
                runtime.failed += lost
                self.run.note(runtime.name, f"{lost:,} records {what}: the run stopped while they were "
                                            "in worker processes (counted as failed)")
        self.lost_first = self.lost_last = 0

    # ------------------------------------------------------------------------------- main side
    def _receive(self, block: bool) -> None:
        """Take in the results that have arrived (with `block`, wait for at least one), then hand on
        every chunk whose turn has come."""
        busy = [self._outboxes[w] for w in range(self.workers) if self._queued[w]]
        if busy:
            for connection in self._wait(busy, None if block else 0):
                worker = self._outboxes.index(connection)  # type: ignore[arg-type]
                try:
                    data = self._outboxes[worker].recv_bytes()
                except (EOFError, OSError):
                    raise self._died(worker) from None
                number, count = self._queued[worker].popleft()
                self._done[number] = (pickle.loads(data), count)
        while self._applied in self._done:
            result, count = self._done.pop(self._applied)
            self._applied += 1
            self._apply(result, count)

    def _died(self, worker: int) -> RunAborted:
        process = self._processes[worker]
        process.join(timeout=1.0)
        return self._broken(
            RuntimeError(f"worker process {worker + 1} of {self.workers} died (exit code {process.exitcode})")
        )

    def _apply(self, result: ChunkResult, count: int) -> None:
        """Count the chunk, then apply each failure's policy and emit each output, in stream order."""
        self.lost_first += count - result.consumed  # a `fail` record ended the chunk early
        counts = {}
        for index, name in enumerate(self.names):
            emitted, filtered = result.emitted[index], result.filtered[index]
            if emitted or filtered:
                counts[name] = (emitted, filtered)
            if self.forked and result.retried[index]:
                self.runtimes[index].retried += result.retried[index]
        if counts:
            self.run.save_counts(counts)
        emit = self.emit
        outputs = iter(result.outputs)
        failures = collections.deque(result.failures)
        try:
            done = 0
            while failures:
                at, index, record, info = failures[0]
                while done < at:
                    emit(next(outputs))
                    done += 1
                failures.popleft()
                self.runtimes[index].fail_info(record, info)  # may raise RunAborted ("fail")
            if result.crash is not None:
                raise RunAborted(result.crash)
            for record in outputs:
                emit(record)
        except BaseException:
            self.lost_last += operator.length_hint(outputs)
            for _, index, _, info in failures:  # failed in a worker; the run stopped before their turn
                self.runtimes[index].failed += 1
                self.runtimes[index].errors.add(info)
            raise

    def _dumps_chunk(self, records: list[Any]) -> tuple[bytes | None, int]:
        try:
            return pickle.dumps(records, PROTOCOL), len(records)
        except Exception:
            pass
        # Some record cannot cross to a worker: it fails at the chain's first node, the rest go on.
        good = []
        rejected = 0
        for record in records:
            try:
                pickle.dumps(record, PROTOCOL)
            except Exception as exc:
                rejected += 1
                try:
                    self.head.fail(record, _not_picklable(exc))
                except RunAborted:
                    # `send` counts the whole chunk as lost; these were already counted as failed.
                    self.lost_first -= rejected
                    raise
                continue
            good.append(record)
        return (pickle.dumps(good, PROTOCOL) if good else None), len(good)

    def _broken(self, exc: BaseException) -> RunAborted:
        info = ErrorInfo.from_exception(exc, self.head.name, self.head.location, self.head.redact, "run")
        return RunAborted(info)

    def _start(self) -> None:
        import multiprocessing
        import multiprocessing.connection

        self._wait = multiprocessing.connection.wait
        context = multiprocessing.get_context("fork")
        # Whatever is buffered for stdout/stderr would otherwise be written again by every worker.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        self._started = True
        for number in range(self.workers):
            inbox_read, inbox_write = context.Pipe(duplex=False)
            outbox_read, outbox_write = context.Pipe(duplex=False)
            inherited = [*_MAIN_ENDS, inbox_write, outbox_read]  # every pool's, not only this one's
            process = context.Process(
                target=_serve,
                args=(self.runner, inbox_read, outbox_write, inherited),
                name=f"pipec-{self.head.name}-{number + 1}",
                daemon=True,
            )
            process.start()
            inbox_read.close()
            outbox_write.close()
            self._processes.append(process)
            self._inboxes.append(inbox_write)
            self._outboxes.append(outbox_read)
            self._queued.append(collections.deque())
            _MAIN_ENDS.update((inbox_write, outbox_read))

    def _stop(self, wait: bool) -> None:
        if self._closed:
            return
        self._closed = True
        for connection in self._inboxes:
            with contextlib.suppress(OSError):
                connection.send_bytes(_STOP)
            connection.close()
        for process in self._processes:
            process.join(timeout=5.0 if wait else 0.2)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5.0)
        for connection in self._outboxes:
            connection.close()
        _MAIN_ENDS.difference_update(self._inboxes + self._outboxes)


_STOP = b""  # the message that ends a worker (a pickled chunk is never empty)
_MAIN_ENDS: set[Connection] = set()  # the main process's ends of every worker pipe; workers close them


def _start_methods() -> list[str]:
    if sys.platform != "linux":
        return []  # fork is Linux's default and only safe there; elsewhere the chain runs in-process
    import multiprocessing

    return multiprocessing.get_all_start_methods()


def _not_picklable(exc: Exception) -> Exception:
    return TypeError(f"record cannot be sent to a worker process: {type(exc).__name__}: {exc}")


# ------------------------------------------------------------------------------------ worker side
def _serve(runner: ChainRunner, inbox: Connection, outbox: Connection, inherited: list[Connection]) -> None:
    """A worker process: read chunks, run the chain, send results, until the input ends."""
    import queue
    import signal
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    # Not the main process's SIGTERM handler (inherited through the fork): the main process stops a
    # worker with SIGTERM when the run ends early, and that must end it quietly.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for connection in inherited:
        connection.close()
    for runtime in runner.runtimes:
        if isinstance(runtime.call, TimedCall):  # its helper thread did not survive the fork
            runtime.call.after_fork()
    # A reader thread keeps the input pipe drained, so the main process never blocks on a full pipe
    # while this process is blocked sending it a result.
    chunks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

    def read() -> None:
        try:
            while True:
                data = inbox.recv_bytes()
                if data == _STOP:
                    break
                chunks.put(data)
        except (EOFError, OSError):
            pass
        chunks.put(None)

    threading.Thread(target=read, name="pipec-worker-reader", daemon=True).start()
    with contextlib.suppress(OSError):  # the main process is gone or stopped listening: end quietly
        _answer(runner, chunks, outbox)
    with contextlib.suppress(OSError):
        outbox.close()
    # End here, without the interpreter's shutdown: it would wait for a call abandoned by a timeout
    # (its thread cannot be stopped), and must not flush or finalise the parent's objects it inherited.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


def _answer(runner: ChainRunner, chunks: queue.SimpleQueue[bytes | None], outbox: Connection) -> None:
    """Run each chunk that arrives and send its result back, until the input ends."""
    halted: bytes | None = None
    while True:
        data = chunks.get()
        if data is None:
            break
        if halted is not None:  # the run is stopping at an earlier record: answer without working
            outbox.send_bytes(halted)
            continue
        zeros = [0] * runner.size
        try:
            result = runner.run_chunk(pickle.loads(data))
            message = _dumps_result(result, runner)
        except BaseException as exc:  # noqa: BLE001 - reported to the main process, which stops the run
            head = runner.runtimes[0]
            crash = ErrorInfo.from_exception(exc, head.name, head.location, head.redact, "run")
            message = halted = pickle.dumps(ChunkResult([], [], zeros, zeros, zeros, crash=crash), PROTOCOL)
        else:
            if any(runner.fatal[f[1]] for f in result.failures):
                # The run stops at that record; later chunks are answered empty, not worked on. (The
                # worker stays to answer them: the main process reads every worker's answers in order.)
                halted = pickle.dumps(ChunkResult([], [], zeros, zeros, zeros), PROTOCOL)
        outbox.send_bytes(message)


def _dumps_result(result: ChunkResult, runner: ChainRunner) -> bytes:
    try:
        return pickle.dumps(result, PROTOCOL)
    except Exception:
        pass
    # An output that cannot travel back fails at the chain's last node; a failed record that cannot is
    # replaced by its repr (the error itself always travels).
    last = runner.size - 1
    runtime = runner.runtimes[last]
    outputs: list[Any] = []
    failures: list[Failure] = []
    pending = list(result.failures)
    position = 0
    for index, record in enumerate(result.outputs + [None]):
        while pending and pending[0][0] == index:
            _, step, failed, info = pending.pop(0)
            try:
                pickle.dumps(failed, PROTOCOL)
            except Exception:
                failed = repr(failed)
            failures.append((position, step, failed, info))
        if index == len(result.outputs):
            break
        try:
            pickle.dumps(record, PROTOCOL)
        except Exception as exc:
            error = _not_picklable(exc)
            info = ErrorInfo.from_exception(error, runtime.name, runtime.location, runtime.redact)
            failures.append((position, last, repr(record), info))
            continue
        outputs.append(record)
        position += 1
    result.outputs, result.failures = outputs, failures
    return pickle.dumps(result, PROTOCOL)
