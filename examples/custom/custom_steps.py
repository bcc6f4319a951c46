"""Your own components, next to the .pipe file: every role written the way docs/runtime.md teaches.

A component is a class with a nested pydantic `Config` (its fields, with descriptions, are what the
`.pipe` file's `{ ... }` block may set; `pipec check` validates them at compile time) and the method of
its role. `open()` and `close()` are optional; the runner calls `open()` before any record moves and
`close()` exactly once at the end, even when the run fails. A plain function is a processor too.
"""

from __future__ import annotations

import json
import os
import statistics
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field

from pipec.runtime import BulkSink, Processor, Sink, Source, Stage

Reading = dict[str, Any]
Measurement = dict[str, Any]

UNITS = {"temperature": "°C", "humidity": "%", "co2": "ppm", "battery": "%"}

# Which greenhouse each known device stands in (a real pipeline would look this up in an inventory).
SITES = {"gh-north-1": "greenhouse north", "gh-south-1": "greenhouse south"}


class SensorLog(Source):
    """Reads a sensor log: `TIME DEVICE metric=value ...` per line, `#` comments and blank lines skipped.

    Yields one reading per line: `{"time", "device", "values": {metric: float}, "line"}`. A line that
    does not fit (a bad timestamp, a value that is not a number, no values at all) is rejected with its
    line number, and reading goes on.
    """

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        path: str = Field(description="Log file to read, relative to the working directory.")
        encoding: str = Field("utf-8", description="Text encoding of the file.")

    config: Config

    def open(self) -> None:
        # Fail here, before any record moves, when the file is missing: the run stops with this message.
        self.file: IO[str] = open(self.config.path, encoding=self.config.encoding)  # noqa: SIM115

    def records(self) -> Iterator[Reading]:
        path = self.config.path
        for number, line in enumerate(self.file, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            try:
                yield self._parse(text, number)
            except ValueError as exc:
                # A bad line is data, not a crash: counted as failed at this node, handled by its on_error.
                self.context.reject(text, ValueError(f"{path}:{number}: {exc}"))

    @staticmethod
    def _parse(text: str, number: int) -> Reading:
        time, _, rest = text.partition(" ")
        device, _, pairs = rest.strip().partition(" ")
        try:
            datetime.fromisoformat(time.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"not an ISO 8601 timestamp: {time!r}") from None
        if not device:
            raise ValueError("no device name")
        values: dict[str, float] = {}
        for pair in pairs.split():
            metric, equals, value = pair.partition("=")
            if not equals:
                raise ValueError(f"expected metric=value, got {pair!r}")
            try:
                values[metric] = float(value)
            except ValueError:
                raise ValueError(f"{metric}: not a number: {value!r}") from None
        if not values:
            raise ValueError(f"device {device}: no measurements")
        return {"time": time, "device": device, "values": values, "line": number}

    def close(self) -> None:
        file = getattr(self, "file", None)  # open() may have failed before setting it
        if file is not None:
            file.close()


class Measurements(Processor):
    """Splits a reading into one record per metric: a flat-map (`emits_many = True`).

    `process` returns a list of zero or more records. A reading without any kept metric gives none and
    is counted as filtered.
    """

    emits_many = True

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        metrics: list[str] | None = Field(
            None, description="Metrics to keep (e.g. [\"temperature\", \"co2\"]); default: every metric."
        )

    config: Config

    def process(self, reading: Reading) -> list[Measurement]:
        keep = self.config.metrics
        return [
            {
                "time": reading["time"],
                "device": reading["device"],
                "metric": metric,
                "value": value,
                "unit": UNITS.get(metric, ""),
            }
            for metric, value in sorted(reading["values"].items())
            if keep is None or metric in keep
        ]


class Plausible(Processor):
    """Drops measurements outside their metric's physical range (a sensor glitch such as -99 °C).

    Returning None drops the record; the runner counts it as *filtered*, not failed.
    """

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        limits: dict[str, tuple[float, float]] = Field(
            description="Plausible range per metric: { temperature = [-20, 60] }; other metrics pass."
        )

    config: Config

    def process(self, measurement: Measurement) -> Measurement | None:
        limits = self.config.limits.get(measurement["metric"])
        if limits is not None and not limits[0] <= measurement["value"] <= limits[1]:
            return None
        return measurement


def locate(measurement: Measurement) -> Measurement:
    """A plain function is a processor too. It raises for a device nobody registered: that record fails
    (and, with `on_error = "deadletter"`, lands in the dead-letter sink with this message)."""
    site = SITES.get(measurement["device"])
    if site is None:
        raise LookupError(f"unknown device {measurement['device']!r}: not in the site inventory")
    return {**measurement, "site": site}


class AboveLimit(Processor):
    """Keeps the measurements above their metric's alert level; drops (filters) the rest."""

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        above: dict[str, float] = Field(description="Alert level per metric: { co2 = 1500 }.")

    config: Config

    def process(self, measurement: Measurement) -> Measurement | None:
        level = self.config.above.get(measurement["metric"])
        if level is None or measurement["value"] <= level:
            return None
        return {**measurement, "level": level}


class AlertLog(Sink):
    """Appends one human-readable line per alert to a text file (a sink with `write` and `write_batch`)."""

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        path: str = Field(description="Text file to write, relative to the working directory.")

    config: Config

    def open(self) -> None:
        Path(self.config.path).parent.mkdir(parents=True, exist_ok=True)
        self.file: IO[str] = open(self.config.path, "w", encoding="utf-8")  # noqa: SIM115

    def write(self, alert: Measurement) -> None:
        self.file.write(
            f"{alert['time']}  {alert['site']:<17} {alert['device']:<11} {alert['metric']:<12}"
            f"{alert['value']:>8g} {alert['unit']:<4} above {alert['level']:g}\n"
        )

    def write_batch(self, alerts: list[Measurement]) -> None:  # used with `with { batch = N }`
        for alert in alerts:
            self.write(alert)

    def close(self) -> None:
        file = getattr(self, "file", None)
        if file is not None:
            file.close()


class Spool(Stage):
    """Stages measurements as tab-separated lines; hands the file's path to the bulk sink."""

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        path: str = Field(description="Staging file, relative to the working directory.")

    config: Config

    def open(self) -> None:
        Path(self.config.path).parent.mkdir(parents=True, exist_ok=True)
        self.file: IO[str] = open(self.config.path, "w", encoding="utf-8")  # noqa: SIM115

    def stage(self, measurement: Measurement) -> None:
        fields = ("time", "site", "device", "metric", "value")
        self.file.write("\t".join(str(measurement[name]) for name in fields) + "\n")

    def close(self) -> None:
        file = getattr(self, "file", None)
        if file is not None:
            file.close()

    def handoff(self) -> str:  # called once, after close(): what the bulk sink's publish() receives
        return self.config.path


class HourlySummary(BulkSink):
    """Publishes hourly statistics per site, device and metric as one JSON file, all or nothing.

    `publish` runs once, after the stream ended, with the stage's hand-off (the spool file's path). The
    summary is written to a temporary file and renamed over the old one, so readers never see half of it.
    """

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        path: str = Field(description="JSON file to publish, relative to the working directory.")
        decimals: int = Field(2, ge=0, le=6, description="Decimals kept in the mean.")

    config: Config

    def publish(self, handoff: str) -> None:
        groups: dict[tuple[str, str, str, str], list[float]] = defaultdict(list)
        with open(handoff, encoding="utf-8") as spool:
            for line in spool:
                time, site, device, metric, value = line.rstrip("\n").split("\t")
                groups[(time[:13] + ":00", site, device, metric)].append(float(value))
        summary = [
            {
                "hour": hour,
                "site": site,
                "device": device,
                "metric": metric,
                "count": len(values),
                "min": min(values),
                "max": max(values),
                "mean": round(statistics.fmean(values), self.config.decimals),
            }
            for (hour, site, device, metric), values in sorted(groups.items())
        ]
        target = Path(self.config.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(target.name + ".tmp")
        temporary.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, target)
        self.context.logger.info("%s: %d hourly row(s) in %s", self.context.node, len(summary), target)
