"""The run report (JSON, valid against `report.schema.json`) and the human summary printed at the end."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, TextIO

from pipec.runtime.errors import ErrorInfo
from pipec.runtime.status import NodeCounts, State

SCHEMA_PATH = Path(__file__).with_name("report.schema.json")


@dataclass
class RunOutcome:
    run_id: str
    pipeline: str
    pipe_file: str
    pipe_sha256: str
    pipec_version: str
    started_at: datetime
    ended_at: datetime
    state: State
    exit_code: int
    dry_run: bool
    limit: int | None
    threshold: float
    nodes: list[NodeCounts]
    node_errors: dict[str, list[ErrorInfo]]
    run_errors: list[ErrorInfo]
    target: str = "local"
    reason: str | None = None  # why a failed run failed, in one line

    @property
    def seconds(self) -> float:
        return (self.ended_at - self.started_at).total_seconds()

    def to_json(self) -> dict[str, Any]:
        nodes = []
        for node in self.nodes:
            entry = node.to_json()
            entry["errors"] = [e.to_json() for e in self.node_errors.get(node.name, [])]
            nodes.append(entry)
        data: dict[str, Any] = {
            "report_version": 1,
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "pipe_file": self.pipe_file,
            "pipe_sha256": self.pipe_sha256,
            "pipec_version": self.pipec_version,
            "target": self.target,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat(),
            "seconds": round(self.seconds, 6),
            "state": self.state,
            "exit_code": self.exit_code,
            "dry_run": self.dry_run,
            "limit": self.limit,
            "threshold": self.threshold,
            "nodes": nodes,
            "errors": [e.to_json() for e in self.run_errors],
            "reason": self.reason,
        }
        rates = [n.success_rate for n in self.nodes if n.ran]
        if rates:  # left out when no node ran: there is no rate to give
            data["lowest_success_rate"] = round(min(rates), 6)
        return data


class _Described(Protocol):
    """What a report needs of a pipeline (the local spec and the Beam spec both have it)."""

    @property
    def name(self) -> str: ...
    @property
    def pipe_file(self) -> str: ...
    @property
    def pipe_sha256(self) -> str: ...
    @property
    def pipec_version(self) -> str: ...
    @property
    def threshold(self) -> float: ...


class _Flags(Protocol):
    @property
    def dry_run(self) -> bool: ...
    @property
    def limit(self) -> int | None: ...
    @property
    def report(self) -> str | None: ...
    @property
    def quiet(self) -> bool: ...


def conclude(
    spec: _Described,
    options: _Flags,
    *,
    run_id: str,
    started_at: datetime,
    nodes: list[NodeCounts],
    aborted: bool,
    node_errors: dict[str, list[ErrorInfo]],
    run_errors: list[ErrorInfo],
    err: TextIO,
    target: str = "local",
    stopped_by: ErrorInfo | None = None,
) -> RunOutcome:
    """Decide the run's state (once, at the end), write the report and print the summary.

    `stopped_by` is the error that stopped the stream, when it is not among `run_errors` (a record
    under `on_error = "fail"`, a broken source): the reason a stopped run gives."""
    from pipec.runtime.status import EXIT_CODES, run_state, threshold_shortfall

    state = run_state(nodes, spec.threshold, aborted)
    reason = None
    if state == "failed":
        if aborted:
            first = stopped_by or (run_errors[0] if run_errors else None)
            reason = _stop_reason(first) if first is not None else "the run stopped"
        else:
            reason = threshold_shortfall(nodes, spec.threshold)
    outcome = RunOutcome(
        run_id=run_id,
        pipeline=spec.name,
        pipe_file=spec.pipe_file,
        pipe_sha256=spec.pipe_sha256,
        pipec_version=spec.pipec_version,
        started_at=started_at,
        ended_at=datetime.now(timezone.utc),
        state=state,
        exit_code=EXIT_CODES[state],
        dry_run=options.dry_run,
        limit=options.limit,
        threshold=spec.threshold,
        nodes=nodes,
        node_errors=node_errors,
        run_errors=run_errors,
        target=target,
        reason=reason,
    )
    report = options.report
    if report:
        try:
            write_report(outcome, report)
        except OSError as exc:  # checked before the run, but the disk can still fill up or vanish
            print(f"pipec: could not write the report to {report}: {exc}", file=err)
            report = None
    if not options.quiet or state == "failed":
        print(summary_text(outcome, report), file=err)
    return outcome


_PHASES = {
    "record": "on a record",
    "source": "while reading",
    "open": "while opening",
    "close": "while closing",
    "publish": "while publishing",
}


def _stop_reason(error: ErrorInfo) -> str:
    """Why a stopped run failed, in one line."""
    message = (error.message.strip().splitlines() or [""])[0]
    if error.node == "(run)":
        if error.type in ("KeyboardInterrupt", "Terminated"):
            return f"the run was {message}"
        return f"the run stopped: {error.type}: {message}"
    where = _PHASES.get(error.phase, f"during {error.phase}")
    if error.phase == "record":
        where += ' (on_error = "fail")'
    return f"node '{error.node}' ({error.location}) failed {where}: {error.type}: {message}"


def report_path_problem(path: str) -> str | None:
    """Why the report could not be written at `path`, or None. Checked before anything opens, so that a
    typo is not found only after the whole run (the folders it names are made when it is written)."""
    target = Path(path)
    if target.is_dir():
        return f"--report {path}: is a directory"
    if target.is_symlink() or (target.exists() and not target.is_file()):
        # The report replaces its file atomically: through a symlink or a device it would replace the
        # link or device node itself.
        return f"--report {path}: is a symlink or not a regular file; give a plain file path"
    folder = target.parent
    while not folder.exists() and folder != folder.parent:  # the nearest folder that exists
        folder = folder.parent
    if not folder.is_dir():
        return f"--report {path}: {folder} is not a directory"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"--report {path}: cannot write in {folder}"
    return None


def write_report(outcome: RunOutcome, path: str) -> None:
    """Write atomically: a reader never sees half a report."""
    target = Path(path)
    if target.parent != Path(""):
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    try:
        tmp.write_text(json.dumps(outcome.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)  # after a failure, no half-written leftover


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [cell.rjust(width) for cell, width in zip(row[2:], widths[2:])]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


def summary_text(outcome: RunOutcome, report_path: str | None = None) -> str:
    mode = " (dry run: sinks replaced by counting stand-ins)" if outcome.dry_run else ""
    if outcome.limit is not None:
        mode += f" (limited to {outcome.limit:,} records per source)"
    interrupted = any(e.type in ("KeyboardInterrupt", "Terminated") for e in outcome.run_errors)
    state = outcome.state.upper() + (" (interrupted)" if interrupted else "")
    head = (
        f"pipec: pipeline '{outcome.pipeline}' {state} in {outcome.seconds:.2f}s"
        f"{mode}, run {outcome.run_id}"
    )
    rows = [["node", "role", "in", "out", "filtered", "failed", "retried", "ok %"]]
    for n in outcome.nodes:
        rows.append(
            [
                n.name,
                n.role,
                f"{n.records_in:,}",
                f"{n.records_out:,}",
                f"{n.filtered:,}",
                f"{n.failed:,}",
                f"{n.retried:,}",
                f"{100 * n.success_rate:.1f}" if n.ran else "-",
            ]
        )
    lines = [head, *_table(rows)]
    for node in outcome.nodes:
        lines.extend(f"  note: {node.name}: {note}" for note in node.notes)
    errors = [e for errs in outcome.node_errors.values() for e in errs[:1]] + outcome.run_errors
    for error in errors[:10]:
        lines.append(f"  error: {error.one_line()}")
    if outcome.state == "partial":
        lines.append(
            f"  every node kept at least {100 * outcome.threshold:g}% of its records (threshold), so the run"
            " counts as partial success"
        )
    if outcome.state == "failed" and outcome.reason:
        lines.append(f"  FAILED: {outcome.reason}")
    if report_path:
        lines.append(f"  report: {report_path}")
    return "\n".join(lines)
