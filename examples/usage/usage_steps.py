"""The usage example's own steps: a flat-mapping processor that turns one analysed statement into one
record per table it touched, and a bulk sink that aggregates the staged accesses into daily usage
counts per table in SQLite (OpenMetadata's TableUsage: reads, writes and users per table and day)."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pipec.runtime import BulkSink, emits_many


@emits_many
def table_accesses(statement: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per (statement, table, access): a statement joining three tables gives three reads.

    A statement that touches no table (`SELECT 1`) gives none and is counted as filtered.
    """
    common = {
        "user": statement["user"],
        "day": (statement["start_time"] or "")[:10],
        "start_time": statement["start_time"],
        "statement_type": statement["statement_type"],
    }
    reads = [{"table": table, "access": "read", **common} for table in statement["tables"]]
    writes = [{"table": table, "access": "write", **common} for table in statement["written_tables"]]
    return reads + writes


@dataclass
class _Usage:
    reads: int = 0
    writes: int = 0
    users: set[str] = field(default_factory=set)
    first_used: str = ""
    last_used: str = ""

    def add(self, access: dict[str, Any]) -> None:
        if access["access"] == "write":
            self.writes += 1
        else:
            self.reads += 1
        if access["user"]:
            self.users.add(access["user"])
        when = access["start_time"] or ""
        self.first_used = min(self.first_used or when, when)
        self.last_used = max(self.last_used, when)


class DailyTableUsage(BulkSink):
    """Aggregates staged table accesses into one row per (day, table) and loads them into SQLite.

    The whole load is one transaction that first deletes the rows of the days it loads, so running
    the pipeline twice on the same log gives the same table, and a failed load changes nothing.
    """

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        database: str = Field(description="SQLite database file to load, relative to the working directory.")
        table: str = Field("table_usage", description="Table of daily usage counts (created if missing).")

    config: Config

    def publish(self, handoff: str) -> None:
        usage: dict[tuple[str, str], _Usage] = defaultdict(_Usage)
        with open(handoff, encoding="utf-8") as staged:
            for line in staged:
                access = json.loads(line)
                usage[(access["day"], access["table"])].add(access)
        rows = [
            (day, table, u.reads, u.writes, u.reads + u.writes, len(u.users), ",".join(sorted(u.users)),
             u.first_used, u.last_used)
            for (day, table), u in sorted(usage.items())
        ]
        Path(self.config.database).parent.mkdir(parents=True, exist_ok=True)
        name = '"' + self.config.table.replace('"', '""') + '"'
        connection = sqlite3.connect(self.config.database)
        try:
            with connection:  # one transaction: committed on success, rolled back on any error
                connection.execute(
                    f"CREATE TABLE IF NOT EXISTS {name} (day TEXT NOT NULL, table_name TEXT NOT NULL, "
                    "reads INTEGER NOT NULL, writes INTEGER NOT NULL, queries INTEGER NOT NULL, "
                    "users INTEGER NOT NULL, user_names TEXT NOT NULL, first_used TEXT, last_used TEXT, "
                    "PRIMARY KEY (day, table_name))"
                )
                days = sorted({row[0] for row in rows})
                connection.executemany(f"DELETE FROM {name} WHERE day = ?", [(day,) for day in days])
                connection.executemany(f"INSERT INTO {name} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        finally:
            connection.close()
        self.context.logger.info("%s: loaded %d usage row(s) into %s", self.context.node, len(rows), name)
