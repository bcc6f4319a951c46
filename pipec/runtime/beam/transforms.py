"""The Beam side of each role: a DoFn per role and one PTransform per `.pipe` node, labelled with its name.

A node transform takes one PCollection or a tuple of them (its `->` inputs and the dead-letter outputs
that name it; they are flattened first). With `deadletters=True` its result has two outputs, `records`
(or `handoff` for a stage) and `deadletters`, indexable by those names.
"""

from __future__ import annotations

import itertools
import os
import pickle
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindows

from pipec.runtime.beam.worker import DEADLETTERS, RECORDS, BeamNode, DeadLetter, NodeFailed, Worker
from pipec.runtime.errors import RunAborted
from pipec.runtime.policy import DROPPED


# ----------------------------------------------------------------------------------------- DoFns
class _NodeFn(beam.DoFn):
    """What every node's DoFn shares: its node, a `Worker` made in setup (where config is resolved,
    on the worker), and a teardown that closes the component if it is still open (what that changes
    reaches the launcher through `Worker.teardown`, as far as the runner lets it)."""

    def __init__(self, node: BeamNode, deadletters: bool = False) -> None:
        self.node = node
        self.deadletters = deadletters

    def setup(self) -> None:
        self.worker = Worker(self.node, self.deadletters)

    def teardown(self) -> None:
        worker = getattr(self, "worker", None)
        if worker is not None:
            worker.teardown()


class _SourceFn(_NodeFn):
    """Opens the source, yields its records (at most `--limit`), closes it: once, for the one impulse."""

    def process(self, impulse: Any) -> Iterator[Any]:
        worker = self.worker
        worker.start()
        emitted = 0
        try:
            records: Iterable[Any] = worker.component.records()
            if self.node.run.limit is not None:
                records = itertools.islice(records, self.node.run.limit)
            try:
                for record in records:
                    if worker.pending:  # records rejected while reading this one go first, as locally
                        yield from worker.drain()
                    emitted += 1
                    yield record
            except RunAborted as stop:  # a rejected record at a node with on_error = "fail"
                raise NodeFailed.of(stop.error) from None
            except Exception as exc:  # the source itself broke: it cannot go on, and the run stops
                assert worker.runtime is not None
                worker.runtime.failed += 1
                info = worker.info(exc, "source")
                worker.errors.add(info)
                raise NodeFailed.of(info) from None
            yield from worker.drain()
        finally:
            worker.sync(emitted)
            problem = worker.close()
            if problem is not None:
                worker.run_error(problem)


class _ProcessFn(_NodeFn):
    """A processor: one record in, the record it returns out (None: filtered)."""

    def setup(self) -> None:
        super().setup()
        self.worker.start()
        assert self.worker.runtime is not None
        self.call = self.worker.runtime.call
        self.filtered = 0
        self.emitted = 0

    def process(self, record: Any) -> Any:
        try:
            out = self.call(record)
        except Exception as exc:
            return self._failed(record, exc)
        if out is None:
            self.filtered += 1
            return ()
        return (out,)

    def _failed(self, record: Any, exc: Exception) -> list[Any]:
        out = self.worker.recover(record, exc)
        outputs = self.worker.drain()
        self.worker.sync(self.emitted, self.filtered)
        if out is DROPPED:
            return outputs
        if out is None:
            self.filtered += 1
            return outputs
        return [out, *outputs]

    def finish_bundle(self) -> Iterator[Any]:
        self.worker.sync(self.emitted, self.filtered)
        yield from self.worker.drain_windowed()


class _FlatProcessFn(_ProcessFn):
    """A processor that emits many: its iterable result is flattened (none at all counts as filtered)."""

    def process(self, record: Any) -> Any:
        try:
            outs = list(self.call(record))
        except Exception as exc:
            return self._failed(record, exc)
        if not outs:
            self.filtered += 1
            return ()
        self.emitted += len(outs)
        return outs

    def _failed(self, record: Any, exc: Exception) -> list[Any]:
        out = self.worker.recover(record, exc)
        outputs = self.worker.drain()
        if out is not DROPPED:
            outs = list(out)
            if not outs:
                self.filtered += 1
            self.emitted += len(outs)
            outputs = outs + outputs
        self.worker.sync(self.emitted, self.filtered)
        return outputs


class _SinkFn(_NodeFn):
    """A sink: opened in setup, `write` per record, `flush()` at the end of every bundle (its pending
    writes, whose failures are still counted and dead-lettered there), closed in teardown. With
    `dead_letter_input`, some elements are DeadLetter entries from other nodes, written as the local
    runner writes them."""

    def __init__(self, node: BeamNode, deadletters: bool, dead_letter_input: bool) -> None:
        super().__init__(node, deadletters)
        self.dead_letter_input = dead_letter_input

    def setup(self) -> None:
        super().setup()
        self.worker.start()
        assert self.worker.runtime is not None
        self.call = self.worker.runtime.call

    def process(self, record: Any) -> Any:
        if self.dead_letter_input and type(record) is DeadLetter:
            self.worker.receive(record.entry)
            return ()
        try:
            self.call(record)
        except Exception as exc:
            self.worker.recover(record, exc)
            self.worker.sync()
            return self.worker.drain()
        return ()

    def finish_bundle(self) -> Iterator[Any]:
        self.worker.flush()
        self.worker.sync()
        yield from self.worker.drain_windowed()


class _BatchSinkFn(_SinkFn):
    """A sink with `batch = N`: records are buffered and written with `write_batch`, N at a time and at
    the end of every bundle (a failed batch is retried, then written one by one, as locally)."""

    def setup(self) -> None:
        super().setup()
        self.buffer: list[Any] = []
        self.size = self.node.spec.batch or 1
        assert self.worker.runtime is not None
        self.flush = self.worker.runtime.flush

    def process(self, record: Any) -> Any:
        if self.dead_letter_input and type(record) is DeadLetter:
            self.worker.receive(record.entry)
            return ()
        buffer = self.buffer
        buffer.append(record)
        if len(buffer) >= self.size:
            return self._flush()
        return ()

    def _flush(self) -> list[Any]:
        self._write_buffer()
        return self.worker.drain()

    def _write_buffer(self) -> None:
        try:
            self.flush(self.buffer)
        except RunAborted as stop:
            raise NodeFailed.of(stop.error) from None

    def finish_bundle(self) -> Iterator[Any]:
        if self.buffer:  # its dead letters leave below, with the window finish_bundle must name
            self._write_buffer()
        self.worker.flush()
        self.worker.sync()
        yield from self.worker.drain_windowed()


class _SpoolFn(beam.DoFn):
    """The first half of a stage: the records it receives, pickled as they arrive, SPOOL_BATCH at a
    time, into one spool file per bundle (under `--temp_location`, else the worker's temporary folder);
    each bundle hands on its file's path. Memory stays flat however long the stream."""

    def __init__(self, node: BeamNode) -> None:
        self.node = node

    def setup(self) -> None:
        self.folder = spool_folder(self.node)
        self.instance = uuid.uuid4().hex[:12]
        self.bundles = 0
        self.file: Any = None
        self.buffer: list[Any] = []

    def start_bundle(self) -> None:
        self.file = None
        self.buffer = []

    def process(self, record: Any) -> Any:
        buffer = self.buffer
        buffer.append(record)
        if len(buffer) >= SPOOL_BATCH:
            self._spill()
        return ()

    def _spill(self) -> None:
        if self.file is None:
            self.bundles += 1
            self.path = FileSystems.join(self.folder, f"{self.instance}-{self.bundles:08d}.spool")
            self.file = FileSystems.create(self.path)
        pickle.dump(self.buffer, self.file, pickle.HIGHEST_PROTOCOL)
        self.buffer = []

    def finish_bundle(self) -> Iterator[Any]:
        if self.buffer:
            self._spill()
        if self.file is not None:
            self.file.close()
            self.file = None
            yield GlobalWindows.windowed_value(self.path)


SPOOL_BATCH = 1000  # records pickled together: fewer calls, still little memory


def spool_folder(node: BeamNode) -> str:
    base = node.run.temp_location or tempfile.gettempdir()
    return FileSystems.join(base, f"pipec-{node.run.run_id}-{node.run.pipeline}-{node.name}")


def _spooled(paths: Iterable[str]) -> Iterator[Any]:
    """The records of every spool file, in order (a file is deleted once read)."""
    for path in sorted(paths):
        with FileSystems.open(path) as file:
            while True:
                try:
                    batch = pickle.load(file)
                except EOFError:
                    break
                yield from batch
        FileSystems.delete([path])


class _StageFn(_NodeFn):
    """The stage, once per run: open, stage every record of the stream (read back from the spool files),
    close, hand off.

    One invocation sees the whole stream, so a stage whose hand-off is one file (the `jsonl` stage) is
    written by exactly one writer on any runner, and its bulk sink publishes exactly one hand-off."""

    def process(self, paths: list[str]) -> Iterator[Any]:
        worker = self.worker
        worker.start()
        assert worker.runtime is not None
        call = worker.runtime.call
        try:
            for record in _spooled(paths):
                try:
                    call(record)
                except Exception as exc:
                    worker.recover(record, exc)
                    yield from worker.drain()
            yield from worker.drain()
        finally:
            worker.sync()
            problem = worker.close()
            _remove_folder(spool_folder(self.node))
        if problem is not None:
            worker.run_error(problem)
            return
        try:
            handoff = worker.component.handoff()
        except Exception as exc:
            worker.run_error(worker.info(exc, "close"))
            return
        yield handoff


def _remove_folder(folder: str) -> None:
    """Remove the (now empty) spool folder on a local file system; object stores have no folders."""
    if "://" not in folder and os.path.isdir(folder):
        shutil.rmtree(folder, ignore_errors=True)


class _PublishFn(_NodeFn):
    """The bulk sink: open, publish the stage's hand-off once, close. A failed publish fails the run."""

    def process(self, handoff: Any) -> None:
        worker = self.worker
        worker.start()
        try:
            if self.node.run.limit is not None:  # a trial run (--limit) publishes nothing, as locally
                return
            worker.component.publish(handoff)
        except Exception as exc:
            worker.run_error(worker.info(exc, "publish"))
            worker.count("unpublished")
        else:
            worker.count("published")
        finally:
            problem = worker.close()
            if problem is not None:
                worker.run_error(problem)


# ---------------------------------------------------------------------------------- the transforms
def _merged(inputs: Any) -> Any:
    """A node's input: one PCollection, or several (its `->` inputs and dead-letter outputs) flattened;
    for a node nothing feeds (declared but unused: a warning), an empty one, so that its component
    still opens and closes as it does locally."""
    if isinstance(inputs, beam.pvalue.PBegin):
        return inputs | "NoInput" >> beam.Create([])
    if isinstance(inputs, (tuple, list)):
        if len(inputs) == 1:
            return inputs[0]
        return inputs | "Inputs" >> beam.Flatten()
    return inputs


def _with_deadletters(pardo: Any, deadletters: bool) -> Any:
    return pardo.with_outputs(DEADLETTERS, main=RECORDS) if deadletters else pardo


class ReadSource(beam.PTransform):
    """A source node: `Impulse` then the source's records. With `deadletters`, the result has the
    outputs `.records` and `.deadletters` (rejected input records)."""

    def __init__(self, node: BeamNode, deadletters: bool = False) -> None:
        super().__init__()
        self.node = node
        self.deadletters = deadletters

    def expand(self, pbegin: Any) -> Any:
        read = pbegin | "Impulse" >> beam.Impulse()
        outputs = read | "Read" >> _with_deadletters(beam.ParDo(_SourceFn(self.node, self.deadletters)),
                                                     self.deadletters)
        if not self.node.run.reshuffle:
            return outputs
        # Spread the records over the workers (a single impulse would keep them all on one).
        records = outputs[RECORDS] if self.deadletters else outputs
        spread = records | "Spread" >> beam.Reshuffle()
        if self.deadletters:
            return {RECORDS: spread, DEADLETTERS: outputs[DEADLETTERS]}
        return spread


class ProcessRecords(beam.PTransform):
    """A processor node: a ParDo over its input (several inputs are flattened first)."""

    def __init__(self, node: BeamNode, deadletters: bool = False) -> None:
        super().__init__()
        self.node = node
        self.deadletters = deadletters

    def expand(self, inputs: Any) -> Any:
        fn_class = _FlatProcessFn if self.node.spec.emits_many else _ProcessFn
        pardo = beam.ParDo(fn_class(self.node, self.deadletters))
        return _merged(inputs) | "Process" >> _with_deadletters(pardo, self.deadletters)


class WriteRecords(beam.PTransform):
    """A sink node: a ParDo that writes (or batches) every record; `dead_letter_input` when some of its
    input is other nodes' dead-letter entries."""

    def __init__(self, node: BeamNode, deadletters: bool = False, dead_letter_input: bool = False) -> None:
        super().__init__()
        self.node = node
        self.deadletters = deadletters
        self.dead_letter_input = dead_letter_input

    def expand(self, inputs: Any) -> Any:
        fn_class = _BatchSinkFn if self.node.spec.batch else _SinkFn
        pardo = beam.ParDo(fn_class(self.node, self.deadletters, self.dead_letter_input))
        return _merged(inputs) | "Write" >> _with_deadletters(pardo, self.deadletters)


class StageRecords(beam.PTransform):
    """A stage node: every record it receives is spooled to files as it arrives (in parallel), the
    files' paths are gathered globally, and one stage instance stages them all; the result holds its
    one hand-off (none when staging failed to close or hand off)."""

    def __init__(self, node: BeamNode, deadletters: bool = False) -> None:
        super().__init__()
        self.node = node
        self.deadletters = deadletters

    def expand(self, inputs: Any) -> Any:
        spools = _merged(inputs) | "Spool" >> beam.ParDo(_SpoolFn(self.node))
        # One list of every spool file's path: exactly one element, [] when no record came.
        paths = spools | "Gather" >> beam.combiners.ToList()
        pardo = beam.ParDo(_StageFn(self.node, self.deadletters))
        outputs = paths | "Stage" >> _with_deadletters(pardo, self.deadletters)
        if self.deadletters:
            return {"handoff": outputs[RECORDS], DEADLETTERS: outputs[DEADLETTERS]}
        return outputs


class PublishHandoff(beam.PTransform):
    """A bulk sink node: publishes its stage's single hand-off, once."""

    def __init__(self, node: BeamNode) -> None:
        super().__init__()
        self.node = node

    def expand(self, handoff: Any) -> Any:
        return handoff | "Publish" >> beam.ParDo(_PublishFn(self.node))

