"""Launching a generated Beam module: runner flags, pre-flight config checks, running the job on the chosen
runner (FnApiRunner by default), and turning its metrics into the local runner's report and exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from pydantic import ValidationError

from pipec.runtime.beam.worker import (
    KEEP_ERRORS,
    NAMESPACE,
    BeamNode,
    RunSettings,
    error_from_text,
    teardown_folder,
)
from pipec.runtime.errors import ErrorInfo
from pipec.runtime.report import RunOutcome, conclude
from pipec.runtime.runner import NodeSpec
from pipec.runtime.status import NodeCounts, NodeFacts, RuntimeCounts, derive_counts
from pipec.runtime.values import Env, MissingVariable, Redactor, Secret, current_environ, resolve

# Runners that run the job on this machine, with this process's environment: config with env/secret
# references is validated before the job starts, as the local runner does.
LOCAL_RUNNERS = frozenset(
    {"FnApiRunner", "DirectRunner", "SwitchingDirectRunner", "BundleBasedDirectRunner", "PrismRunner"}
)


@dataclass(frozen=True)
class BeamSpec:
    """A generated Beam module's pipeline: its nodes (as for the local runner) and its graph builder."""

    name: str
    pipe_file: str
    pipe_sha256: str
    pipec_version: str
    threshold: float
    nodes: tuple[NodeSpec, ...]  # topological order
    edges: tuple[tuple[str, str, str], ...]  # (source, target, "->" | "=>")
    build: Callable[[BeamJob], None]
    module_file: str = ""


@dataclass(frozen=True)
class BeamRunOptions:
    dry_run: bool = False
    limit: int | None = None
    report: str | None = None
    quiet: bool = False
    reshuffle: bool | None = None  # None: only on runners that are not local


class BeamJob:
    """What the generated `build(job)` gets: the Beam pipeline to add transforms to, and each node."""

    def __init__(self, spec: BeamSpec, pipeline: Any, settings: RunSettings) -> None:
        self.spec = spec
        self.pipeline = pipeline
        self.settings = settings
        self._specs = {n.name: n for n in spec.nodes}

    def node(self, name: str) -> BeamNode:
        return BeamNode(self._specs[name], self.settings)


def _has_references(value: Any) -> bool:
    if isinstance(value, (Env, Secret)):
        return True
    if isinstance(value, dict):
        return any(_has_references(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_references(v) for v in value)
    return False


def _secret_vars(value: Any) -> set[str]:
    if isinstance(value, Secret):
        return {value.var}
    if isinstance(value, dict):
        return set().union(*(_secret_vars(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_secret_vars(v) for v in value))
    return set()


def _precheck(
    spec: BeamSpec, environ: Mapping[str, str], local: bool, redact: Redactor
) -> list[str]:
    """Validate configs before the job starts, as the local runner does. On a remote runner the workers'
    environment is not this one, so a config that uses env/secret is left to the workers (checked in
    setup, where a problem stops the job naming the node)."""
    problems: list[str] = []
    for node in spec.nodes:
        if not local and _has_references(node.config):
            continue
        location = f"{spec.pipe_file}:{node.line}"
        try:
            resolved = resolve(dict(node.config), environ, set())
        except MissingVariable as exc:
            problems.append(f"{location}: node '{node.name}': {exc}")
            continue
        if node.is_function:
            continue
        try:
            node.factory.Config.model_validate(resolved)
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"]) or "config"
                problems.append(redact(f"{location}: node '{node.name}': {where}: {err['msg']}"))
    return problems


@dataclass
class _Metrics:
    counters: dict[tuple[str, str], int]
    errors: dict[str, list[ErrorInfo]]
    run_errors: list[ErrorInfo]

    def get(self, node: str, kind: str) -> int:
        return self.counters.get((node, kind), 0)


def _read_metrics(result: Any, names: Sequence[str]) -> _Metrics:
    """pipec's counters and errors from a finished job (committed values where the runner has them)."""
    counters: dict[tuple[str, str], int] = {}
    raw_errors: dict[str, list[tuple[int, ErrorInfo]]] = {}
    run_errors: list[ErrorInfo] = []
    known = set(names)
    query = result.metrics().query(MetricsFilter())
    for item in query.get("counters", []):
        if item.key.metric.namespace != NAMESPACE:
            continue
        node, _, kind = item.key.metric.name.rpartition(".")
        if node in known:
            counters[(node, kind)] = counters.get((node, kind), 0) + int(item.result or 0)
    for item in query.get("string_sets", []):
        if item.key.metric.namespace != NAMESPACE:
            continue
        node, _, kind = item.key.metric.name.rpartition(".")
        for text in sorted(item.result or ()):
            try:
                index, data = json.loads(text)
                info = ErrorInfo(**data)
            except (ValueError, TypeError):
                continue
            if kind == "errors":
                raw_errors.setdefault(node, []).append((index, info))
            elif kind == "run_errors":
                run_errors.append(info)
    errors = {
        node: [info for _, info in sorted(raw_errors[node], key=lambda p: (p[0], p[1].message))[:KEEP_ERRORS]]
        for node in names  # in the pipeline's node order
        if node in raw_errors
    }
    return _Metrics(counters, errors, run_errors)


def _read_teardowns(folder: str, metrics: _Metrics, names: Sequence[str], finished: bool) -> None:
    """Add what closing in `DoFn.teardown` changed (see `Worker.teardown`: counts, errors, close errors)
    to the job's metrics, then delete the reports. Only what workers tore down before the job ended is
    there: always on FnApiRunner, on other runners as they allow. When the job did not finish, its
    counts are not known, so only the close errors are taken."""
    try:
        found = FileSystems.match([FileSystems.join(folder, "*.json")])[0].metadata_list
    except Exception:  # noqa: BLE001 - no folder: nothing was reported
        return
    paths = sorted(item.path for item in found)
    known = set(names)
    for path in paths:
        try:
            with FileSystems.open(path) as file:
                data = json.loads(file.read().decode("utf-8"))
            node = data["node"]
            run_errors = [ErrorInfo(**info) for info in data["run_errors"]]
            errors = [ErrorInfo(**json.loads(text)[1]) for text in data["errors"]]
        except (OSError, ValueError, TypeError, KeyError, IndexError):
            continue
        if node not in known:
            continue
        metrics.run_errors.extend(run_errors)
        if not finished:  # (the run failed already)
            continue
        if run_errors:
            metrics.counters[(node, "aborted")] = metrics.counters.get((node, "aborted"), 0) + 1
        for kind, delta in data["counters"].items():
            metrics.counters[(node, kind)] = metrics.counters.get((node, kind), 0) + int(delta)
        kept = metrics.errors.setdefault(node, [])
        kept.extend(errors[: max(KEEP_ERRORS - len(kept), 0)])
        if not kept:
            del metrics.errors[node]
    try:
        if paths:
            FileSystems.delete(paths)
        if "://" not in folder and os.path.isdir(folder):
            os.rmdir(folder)
    except Exception:  # noqa: BLE001 - leftovers in a temporary folder are harmless
        pass


def _counts(spec: BeamSpec, metrics: _Metrics) -> list[NodeCounts]:
    facts, base = [], {}
    loop_counts: dict[str, tuple[int, int]] = {}
    runtime_counts: dict[str, RuntimeCounts] = {}
    published: dict[str, bool | None] = {}
    for node in spec.nodes:
        name = node.name
        inputs = tuple(s for s, t, kind in spec.edges if t == name and kind == "->")
        stage = next((s for s, t, kind in spec.edges if t == name and kind == "=>"), None)
        facts.append(NodeFacts(name, node.role, node.emits_many, inputs, stage))
        location = f"{spec.pipe_file}:{node.line}"
        base[name] = NodeCounts(name, node.role, node.type_name, location, node.emits_many)
        loop_counts[name] = (metrics.get(name, "emitted"), metrics.get(name, "filtered"))
        runtime_counts[name] = RuntimeCounts(
            metrics.get(name, "failed"), metrics.get(name, "retried"), metrics.get(name, "deadletters")
        )
        if node.role == "bulksink":
            if metrics.get(name, "unpublished"):
                published[name] = False
            elif metrics.get(name, "published"):
                published[name] = True
            else:
                published[name] = None
    return derive_counts(facts, loop_counts, runtime_counts, published, base)


def _job_error(exc: BaseException, spec: BeamSpec, redact: Redactor) -> ErrorInfo:
    """The ErrorInfo a NodeFailed carried through the runner, else the runner's own error."""
    found = error_from_text(str(exc))
    if found is not None:
        return found
    info = ErrorInfo.from_exception(exc, "(run)", spec.pipe_file, redact, phase="run")
    message = info.message if len(info.message) <= 2000 else info.message[:2000] + " ..."
    return ErrorInfo(info.node, info.location, info.type, message, info.traceback, info.phase)


def _pipeline_options(beam_args: Sequence[str]) -> tuple[Any, str | None]:
    options = PipelineOptions(list(beam_args))
    runner = options.view_as(StandardOptions).runner
    return options, runner


@contextmanager
def _worker_import_path(local: bool) -> Iterator[None]:
    """Let local worker processes (`--direct_running_mode=multi_processing`, `--environment_type=PROCESS`)
    import what this process imports: the `use` modules sit in the .pipe file's folder, which the
    generated module put on `sys.path`, and workers unpickle components by module name."""
    if not local:
        yield
        return
    old = os.environ.get("PYTHONPATH")
    entries = [p for p in sys.path if p and os.path.isdir(p)]
    os.environ["PYTHONPATH"] = os.pathsep.join(entries + ([old] if old else []))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def _is_local(runner: str | None) -> bool:
    if runner is None:
        return True
    return runner.rsplit(".", 1)[-1] in LOCAL_RUNNERS


def run_beam(
    spec: BeamSpec,
    options: BeamRunOptions,
    beam_args: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    out: Any = None,
) -> tuple[int, RunOutcome | None]:
    """Build and run the Beam job; returns (exit code, outcome), like the local `run_pipeline`.

    Without `--runner` in `beam_args` the job runs on Beam's FnApiRunner in this process (named
    explicitly: Beam's own default would try to download the Prism runner). Every Beam option passes
    through unchanged.
    """
    err = out if out is not None else sys.stderr
    environ = environ if environ is not None else current_environ()
    beam_options, runner = _pipeline_options(beam_args)
    local = _is_local(runner)
    secret_vars = sorted(set().union(*(_secret_vars(dict(n.config)) for n in spec.nodes)))
    redact = Redactor(environ[v] for v in secret_vars if environ.get(v))
    problems = _precheck(spec, environ, local, redact)
    if problems:
        print("pipec: the run did not start; fix the configuration first:", file=err)
        for message in problems:
            print(f"  {message}", file=err)
        return 2, None
    settings = RunSettings(
        pipeline=spec.name,
        pipe_file=spec.pipe_file,
        run_id=uuid.uuid4().hex[:12],
        dry_run=options.dry_run,
        limit=options.limit,
        reshuffle=(not local) if options.reshuffle is None else options.reshuffle,
        secret_vars=tuple(secret_vars),
        temp_location=beam_options.get_all_options().get("temp_location"),
    )
    started = datetime.now(timezone.utc)
    run_errors: list[ErrorInfo] = []
    metrics = _Metrics({}, {}, [])
    aborted = False
    try:
        if runner is None:
            from apache_beam.runners.portability.fn_api_runner import FnApiRunner

            pipeline = beam.Pipeline(runner=FnApiRunner(), options=beam_options)
        else:
            pipeline = beam.Pipeline(options=beam_options)
        spec.build(BeamJob(spec, pipeline, settings))
        with _worker_import_path(local):
            result = pipeline.run()
            state = result.wait_until_finish()
        metrics = _read_metrics(result, [n.name for n in spec.nodes])
        if str(state).rsplit(".", 1)[-1] != "DONE":
            aborted = True
            message = f"the Beam job ended in state {state}"
            run_errors.append(ErrorInfo("(run)", spec.pipe_file, "JobFailed", message, "", "run"))
    except KeyboardInterrupt:
        aborted = True
        run_errors.append(ErrorInfo("(run)", spec.pipe_file, "KeyboardInterrupt", "interrupted", "", "run"))
    except Exception as exc:
        aborted = True
        run_errors.append(_job_error(exc, spec, redact))
    _read_teardowns(teardown_folder(settings), metrics, [n.name for n in spec.nodes], finished=not aborted)
    run_errors = metrics.run_errors + run_errors
    aborted = aborted or any(metrics.get(n.name, "aborted") for n in spec.nodes)
    nodes = _counts(spec, metrics)
    if aborted and not metrics.counters and nodes:
        nodes[0].notes.append("the Beam job failed before it reported its metrics: counts are not known")
    outcome = conclude(
        spec, options, run_id=settings.run_id, started_at=started, nodes=nodes, aborted=aborted,
        node_errors=metrics.errors, run_errors=run_errors, err=err, target="beam",
    )
    return outcome.exit_code, outcome


def parse_beam_options(
    argv: Sequence[str] | None, prog: str | None = None
) -> tuple[BeamRunOptions, list[str]]:
    """pipec's runner flags; everything else is a Beam pipeline option and passes through unchanged."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run this pipec pipeline on Apache Beam (FnApiRunner in this process unless --runner "
        "names another). Any Beam pipeline option (--runner, --flink_master, --project, ...) passes through.",
    )
    parser.add_argument("--dry-run", action="store_true",
                        help="run sources and processors; replace sinks, stages and bulk sinks by "
                             "counting stand-ins (no side effects)")
    parser.add_argument("--limit", type=_non_negative, metavar="N", help="read at most N records per source")
    parser.add_argument("--report", metavar="PATH", help="write the JSON run report to PATH")
    parser.add_argument("--quiet", action="store_true", help="print nothing unless the run failed")
    parser.add_argument("--reshuffle", dest="reshuffle", action="store_true", default=None,
                        help="spread each source's records over the workers (default on runners that are "
                             "not local; output order is then not kept)")
    parser.add_argument("--no-reshuffle", dest="reshuffle", action="store_false",
                        help="keep each source's records on the worker that read them")
    parser.add_argument("--progress", "--no-progress", dest="progress", action="store_true",
                        help="accepted for the local runner's sake; a Beam run shows no progress line")
    args, rest = parser.parse_known_args(list(argv) if argv is not None else None)
    return BeamRunOptions(args.dry_run, args.limit, args.report, args.quiet, args.reshuffle), rest


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def beam_main(spec: BeamSpec, argv: Sequence[str] | None = None) -> int:
    """Parse the runner flags (the rest are Beam options) and run; returns the exit code."""
    options, beam_args = parse_beam_options(argv, prog=os.path.basename(spec.module_file) or None)
    code, _ = run_beam(spec, options, beam_args)
    return code
