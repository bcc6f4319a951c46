"""Running a pipeline on Apache Beam: what a generated `PIPELINE_beam.py` module is built from.

Only generated Beam modules import this package; `import pipec.runtime` and the local runner never do,
so apache-beam (the optional extra `pipec[beam]`) is needed only where Beam runs. A generated Beam module
imports names from `pipec.runtime.__all__` and from this package's `__all__`, nothing else of pipec.

How the roles map onto Beam (docs/beam.md has the whole story):

- source    -> `Impulse` + a DoFn that opens the component, iterates `records()` and closes it;
- processor -> a `ParDo` whose DoFn opens the component in `setup()` and closes it in `teardown()`;
- sink      -> the same, writing each record (or buffering `batch` records for `write_batch`, flushed
               when full and at the end of every bundle);
- stage     -> records spooled to files per bundle (in parallel), their paths gathered globally, then
               one DoFn call: open, stage every record, close, hand off; one stage instance sees the
               whole stream, on any runner;
- bulksink  -> a DoFn over that single hand-off: open, publish once, close.

Per-record failures go through the local runner's `NodeRuntime` (retries with backoff, timeouts, skip /
deadletter / fail); dead-letter entries leave a node on a tagged output that feeds the dead-letter sink.
Counts travel as Beam metrics and the launcher turns them into the same run report and exit code as
the local runner. `env(...)` / `secret(...)` values are resolved on the workers: the job holds only names.

Modules: `worker` (a node's state inside a worker), `transforms` (DoFns and one PTransform per role),
`launch` (flags, pre-flight checks, running the job, metrics -> report).
"""

from __future__ import annotations

import logging


class _Quiet(logging.Filter):
    """Drops apache_beam's import-time warning about Google Cloud client libraries pipec never uses."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "apitools not found" not in record.getMessage()


def _require_beam() -> None:
    root = logging.getLogger()
    quiet = _Quiet()
    root.addFilter(quiet)
    try:
        import apache_beam  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "this pipeline was compiled with `--target beam` and needs Apache Beam: "
            "pip install 'pipec[beam]' (or 'apache-beam>=2.60')"
        ) from exc
    finally:
        root.removeFilter(quiet)


_require_beam()

from pipec.runtime.beam.launch import BeamJob, BeamSpec, beam_main, run_beam  # noqa: E402
from pipec.runtime.beam.transforms import (  # noqa: E402
    ProcessRecords,
    PublishHandoff,
    ReadSource,
    StageRecords,
    WriteRecords,
)
from pipec.runtime.beam.worker import DeadLetter  # noqa: E402

__all__ = [
    "BeamJob",
    "BeamSpec",
    "DeadLetter",
    "ProcessRecords",
    "PublishHandoff",
    "ReadSource",
    "StageRecords",
    "WriteRecords",
    "beam_main",
    "run_beam",
]
