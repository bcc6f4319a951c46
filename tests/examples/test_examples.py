"""Every example, run as its README says and checked by its outputs.

Each test copies an example folder (without its `out/`) to a temporary folder, runs the `pipec`
commands of its README's code blocks exactly as written, from that folder, in a subprocess (the way a
user runs them), and then checks what the run produced: the report's per-node counts, rows and values
in the SQLite tables, PII tags, usage counts, what the catalog server received.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"
REPORT_SCHEMA = json.loads((REPO_ROOT / "pipec/runtime/report.schema.json").read_text(encoding="utf-8"))
# Variables the examples read: unset them so that every run uses the defaults the READMEs describe.
EXAMPLE_VARIABLES = ("QUICKSTART_DB", "CATALOG_DB", "CATALOG_URL", "CATALOG_BULK_URL", "CATALOG_TOKEN")

Counts = tuple[int, int, int, int]  # in, out, filtered, failed


# ------------------------------------------------------------------------------------------ helpers
def clean_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in EXAMPLE_VARIABLES}
    return {**env, **extra}


def pipec(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from pipec.cli import main; main()", *args]
    return subprocess.run(
        command, cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=120
    )


def copy_example(name: str, tmp_path: Path) -> Path:
    folder = tmp_path / name
    shutil.copytree(EXAMPLES / name, folder, ignore=shutil.ignore_patterns("out", "__pycache__"))
    return folder


def readme_commands(folder: Path) -> list[list[str]]:
    """The `pipec ...` lines of the README's fenced code blocks, as argument lists (without `pipec`)."""
    text = (folder / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
        for line in block.splitlines():
            if line.startswith("pipec "):
                commands.append(shlex.split(line, comments=True)[1:])
    return commands


def run_as_readme_says(folder: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the README's commands in order; each must exit 0. Returns the run report the README asks for."""
    commands = readme_commands(folder)
    kinds = [command[0] for command in commands]
    assert kinds == ["check", "run"], f"{folder.name}/README.md: expected `pipec check` then `pipec run`"
    report_path: Path | None = None
    for command in commands:
        result = pipec(command, folder, env)
        assert result.returncode == 0, f"pipec {shlex.join(command)}:\n{result.stdout}{result.stderr}"
        if command[0] == "check":
            # a clean file, no warnings either: exactly the one "ok" line
            assert re.fullmatch(r"\S+\.pipe: ok \(\d+ pipelines?, \d+ nodes\)", result.stdout.strip()), result.stdout
        if "--report" in command:
            report_path = folder / command[command.index("--report") + 1]
    assert report_path is not None, f"{folder.name}/README.md: `pipec run` writes no --report"
    return load_report(report_path)


def load_report(path: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(report, REPORT_SCHEMA)
    return report


def counts(report: dict[str, Any]) -> dict[str, Counts]:
    return {n["name"]: (n["in"], n["out"], n["filtered"], n["failed"]) for n in report["nodes"]}


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def query(database: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(database)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


# ---------------------------------------------------------------------------------------- examples
def check_quickstart(tmp_path: Path) -> None:
    folder = copy_example("quickstart", tmp_path)
    report = run_as_readme_says(folder)
    assert report["state"] == "partial" and report["exit_code"] == 0
    assert counts(report) == {
        "orders": (41, 39, 0, 2),
        "clean": (39, 37, 0, 2),
        "mask": (37, 37, 0, 0),
        "paid": (37, 24, 13, 0),
        "database": (24, 24, 0, 0),
        "rejects": (4, 4, 0, 0),
    }
    database = folder / "out/orders.sqlite"
    assert query(database, "SELECT count(*), min(status), max(status) FROM orders") == [(24, "paid", "paid")]
    assert query(database, "SELECT DISTINCT email, phone FROM orders") == [("***", "***")]
    assert query(database, "SELECT id, amount, country FROM orders WHERE id = 1") == [(1, 159.5, "US")]
    rejects = jsonl(folder / "out/rejects.jsonl")
    assert sorted(r["node"] for r in rejects) == ["clean", "clean", "orders", "orders"]
    assert any("orders.csv:28" in r["error"]["message"] for r in rejects)


def check_catalog(tmp_path: Path) -> None:
    folder = copy_example("catalog", tmp_path)
    report = run_as_readme_says(folder)
    assert report["state"] == "success"
    assert counts(report) == {
        "tables": (10, 10, 0, 0),
        "tag": (10, 10, 0, 0),
        "entry": (10, 10, 0, 0),
        "columns": (10, 56, 0, 0),
        "catalog": (10, 10, 0, 0),
        "tables_db": (10, 10, 0, 0),
        "staged": (56, 56, 0, 0),
        "columns_db": (56, 56, 0, 0),
    }

    # The JSON Lines catalog: one record per table and view of the three schemas, columns tagged.
    records = {r["fqn"]: r for r in jsonl(folder / "out/catalog.jsonl")}
    assert sorted(records) == [
        f"webshop.shop.{name}"
        for name in (
            "main.addresses", "main.customer_contacts", "main.customers",
            "sales.daily_revenue", "sales.order_items", "sales.orders", "sales.payments", "sales.products",
            "support.agents", "support.tickets",
        )
    ]  # fmt: skip
    customers = records["webshop.shop.main.customers"]
    pii = {c["name"]: c["pii"] for c in customers["columns"]}
    assert pii == {
        "id": [], "first_name": ["person_name"], "last_name": ["person_name"], "email": ["email"],
        "email_verified": [], "phone": ["phone"], "birth_date": ["birth_date"], "loyalty_tier": [],
        "created_at": [],
    }  # fmt: skip
    assert customers["row_count"] == 8 and customers["primary_key"] == ["id"]
    assert records["webshop.shop.sales.daily_revenue"]["kind"] == "view"
    order_items = records["webshop.shop.sales.order_items"]
    assert order_items["primary_key"] == ["order_id", "sku"]
    assert sorted(fk["referred_table"] for fk in order_items["foreign_keys"]) == ["orders", "products"]

    # The SQL catalog: a row per table (sink, upsert) and a row per column (stage => bulk load).
    database = folder / "out/catalog.sqlite"
    tables = {
        row[0]: row[1:]
        for row in query(
            database, "SELECT fqn, kind, row_count, pii_columns, pii_kinds, contains_pii FROM catalog_tables"
        )
    }
    assert len(tables) == 10
    assert tables["webshop.shop.main.customers"] == (
        "table", 8, "birth_date,email,first_name,last_name,phone", "birth_date,email,person_name,phone", 1
    )
    assert tables["webshop.shop.sales.payments"] == ("table", 5, "card_number,iban", "bank_account,card", 1)
    assert tables["webshop.shop.sales.orders"] == ("table", 6, "client_ip", "ip_address", 1)
    assert tables["webshop.shop.support.agents"][2:4] == ("full_name,password_hash,work_email",
                                                        "credential,email,person_name")  # fmt: skip
    assert tables["webshop.shop.sales.products"] == ("table", 5, "", "", 0)  # `name` is not PII
    assert tables["webshop.shop.sales.daily_revenue"][0] == "view"
    assert query(database, "SELECT count(*), count(DISTINCT table_fqn) FROM catalog_columns") == [(56, 10)]
    assert query(
        database, "SELECT column, pii FROM catalog_columns WHERE table_fqn = ? ORDER BY position",
        "webshop.shop.sales.payments",
    ) == [("id", ""), ("order_id", ""), ("card_number", "card"), ("iban", "bank_account"), ("amount", ""),
          ("paid_at", "")]  # fmt: skip
    assert query(database, "SELECT count(*) FROM catalog_columns WHERE pii != ''") == [(17,)]

    # The publish example ships this very catalog as its input: it must not drift.
    assert (folder / "out/catalog.jsonl").read_bytes() == (EXAMPLES / "publish/catalog.jsonl").read_bytes()

    # Running again gives the same catalog (upsert, and a bulk load that replaces).
    again = pipec(["run", "catalog.pipe", "--quiet"], folder)
    assert again.returncode == 0, again.stderr
    assert query(database, "SELECT (SELECT count(*) FROM catalog_tables), count(*) FROM catalog_columns") == [
        (10, 56)
    ]

    # A dry run reads the catalog but writes nothing.
    shutil.rmtree(folder / "out")
    dry = pipec(["run", "catalog.pipe", "--dry-run", "--report", "dry.json"], folder)
    assert dry.returncode == 0, dry.stderr
    assert counts(load_report(folder / "dry.json"))["columns_db"] == (56, 56, 0, 0)
    assert not (folder / "out").exists()

    # make_db.py rebuilds the committed databases: the same catalog comes out.
    original = (EXAMPLES / "publish/catalog.jsonl").read_bytes()
    for database_file in folder.glob("*.sqlite"):
        database_file.unlink()
    built = subprocess.run(
        [sys.executable, "make_db.py"], cwd=folder, capture_output=True, text=True, timeout=60
    )
    assert built.returncode == 0, built.stderr
    rebuilt = pipec(["run", "catalog.pipe", "--quiet"], folder)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert (folder / "out/catalog.jsonl").read_bytes() == original


def check_usage(tmp_path: Path) -> None:
    folder = copy_example("usage", tmp_path)
    report = run_as_readme_says(folder)
    assert report["state"] == "partial" and report["exit_code"] == 0
    assert counts(report) == {
        "log": (52, 50, 0, 2),
        "parsed": (50, 46, 0, 4),
        "accesses": (46, 62, 0, 0),
        "statements": (46, 46, 0, 0),
        "staged": (62, 62, 0, 0),
        "load": (62, 62, 0, 0),
        "rejects": (6, 6, 0, 0),
    }
    database = folder / "out/usage.sqlite"
    totals = {
        row[0]: row[1:]
        for row in query(
            database,
            "SELECT table_name, sum(reads), sum(writes), sum(queries) FROM table_usage GROUP BY table_name",
        )
    }
    assert totals["sales.orders"] == (12, 4, 16)
    assert totals["main.customers"] == (8, 2, 10)
    assert totals["support.tickets"] == (5, 4, 9)
    assert totals["sales.daily_revenue"] == (6, 0, 6)
    assert totals["sales.orders_archive"] == (0, 3, 3)
    assert len(totals) == 12 and sum(t[2] for t in totals.values()) == 62
    assert query(
        database,
        "SELECT reads, writes, users, user_names FROM table_usage WHERE day = ? AND table_name = ?",
        "2024-05-06", "sales.orders",
    ) == [(5, 3, 3, "ana,bi_service,etl")]  # fmt: skip

    statements = jsonl(folder / "out/statements.jsonl")
    assert len(statements) == 46
    archive = next(s for s in statements if s["query"].startswith("CREATE TABLE sales.orders_archive"))
    assert archive["tables"] == ["sales.orders"] and archive["written_tables"] == ["sales.orders_archive"]

    rejects = jsonl(folder / "out/rejects.jsonl")
    by_node: dict[str, list[str]] = {}
    for entry in rejects:
        by_node.setdefault(entry["node"], []).append(entry["error"]["message"])
    assert len(by_node["parsed"]) == 4 and all(m.startswith("cannot parse SQL") for m in by_node["parsed"])
    assert sorted(m.split(":")[1] for m in by_node["log"]) == ["30", "41"]

    again = pipec(["run", "usage.pipe", "--quiet"], folder)  # the bulk sink replaces the days it loads
    assert again.returncode == 0, again.stderr
    assert query(database, "SELECT count(*), sum(queries) FROM table_usage") == [(28, 62)]


@pytest.fixture
def catalog_server(tmp_path: Path) -> Iterator[Callable[[Path], str]]:
    """`start(folder)`: start the publish example's server on a free port; returns its base URL."""
    servers: list[subprocess.Popen[str]] = []

    def start(folder: Path) -> str:
        server = subprocess.Popen(
            [sys.executable, "catalog_server.py", "--port", "0", "--quiet"],
            cwd=folder,
            env=clean_env(CATALOG_TOKEN="demo-token"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        servers.append(server)
        assert server.stdout is not None
        line = server.stdout.readline()  # printed once the socket listens
        match = re.fullmatch(r"catalog server listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, f"catalog server did not start: {line!r} {server.stderr.read() if server.stderr else ''}"
        return match.group(1)

    yield start
    for server in servers:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        assert server.returncode == 0, "the catalog server did not stop cleanly on SIGTERM"


def check_publish(tmp_path: Path, start_server: Callable[[Path], str]) -> None:
    folder = copy_example("publish", tmp_path)
    url = start_server(folder)
    env = clean_env(CATALOG_TOKEN="demo-token", CATALOG_URL=url, CATALOG_BULK_URL=f"{url}/_bulk")
    report = run_as_readme_says(folder, env)
    assert report["state"] == "success"
    assert counts(report) == {
        "catalog": (10, 10, 0, 0),
        "entity": (10, 10, 0, 0),
        "document": (10, 10, 0, 0),
        "tables": (10, 10, 0, 0),
        "search": (10, 10, 0, 0),
        "index": (10, 10, 0, 0),
    }
    store = json.loads((folder / "out/catalog_store.json").read_text(encoding="utf-8"))
    assert store["requests"] == {"tables": 10, "bulk": 1}
    assert len(store["tables"]) == 10
    payments = store["tables"]["webshop.shop.sales.payments"]
    assert payments["tableType"] == "Regular" and payments["tags"] == [{"tagFQN": "PII.Sensitive"}]
    assert payments["profile"] == {"rowCount": 5}
    columns = {c["name"]: c for c in payments["columns"]}
    assert columns["card_number"]["tags"] == [{"tagFQN": "PII.Sensitive"}, {"tagFQN": "PersonalData.card"}]
    assert columns["iban"]["tags"][1] == {"tagFQN": "PersonalData.bank_account"}
    assert columns["id"]["constraint"] == "PRIMARY_KEY" and columns["amount"]["tags"] == []
    assert payments["tableConstraints"] == [
        {
            "constraintType": "FOREIGN_KEY",
            "columns": ["order_id"],
            "referredColumns": ["webshop.shop.sales.orders.id"],
        }
    ]
    assert store["tables"]["webshop.shop.sales.products"]["tags"] == []
    assert store["tables"]["webshop.shop.main.customer_contacts"]["tableType"] == "View"
    index = store["indexes"]["catalog_search"]
    assert sorted(index) == sorted(store["tables"])
    assert index["webshop.shop.main.customers"]["pii_kinds"] == ["birth_date", "email", "person_name", "phone"]

    # A wrong token: the server answers 401, every table fails, and the token appears nowhere.
    wrong = clean_env(CATALOG_TOKEN="not-the-token-42", CATALOG_URL=url, CATALOG_BULK_URL=f"{url}/_bulk")
    refused = pipec(["run", "publish.pipe", "--report", "out/refused.json"], folder, wrong)
    assert refused.returncode == 1
    refused_report = load_report(folder / "out/refused.json")
    assert refused_report["state"] == "failed"
    assert counts(refused_report)["tables"] == (10, 0, 0, 10)
    assert "401 Unauthorized" in refused.stderr
    assert "not-the-token-42" not in refused.stdout + refused.stderr
    assert "not-the-token-42" not in (folder / "out/refused.json").read_text(encoding="utf-8")
    assert "demo-token" not in (folder / "out/report.json").read_text(encoding="utf-8")

    # No token at all: the run does not start, and names both nodes that need it.
    missing = pipec(["run", "publish.pipe"], folder, clean_env(CATALOG_URL=url))
    assert missing.returncode == 2
    assert "node 'tables'" in missing.stderr and "node 'index'" in missing.stderr
    assert "CATALOG_TOKEN is not set" in missing.stderr


def check_custom(tmp_path: Path) -> None:
    folder = copy_example("custom", tmp_path)
    report = run_as_readme_says(folder)
    assert report["state"] == "partial"
    assert counts(report) == {
        "readings": (20, 17, 0, 3),
        "measurements": (17, 51, 0, 0),
        "plausible": (51, 50, 1, 0),
        "located": (50, 47, 0, 3),
        "alerting": (47, 6, 41, 0),
        "alerts": (6, 6, 0, 0),
        "spool": (47, 47, 0, 0),
        "summary": (47, 47, 0, 0),
        "rejects": (6, 6, 0, 0),
    }
    alerts = (folder / "out/alerts.txt").read_text(encoding="utf-8").splitlines()
    assert len(alerts) == 6 and all("gh-south-1" in line for line in alerts)
    assert sum("temperature" in line for line in alerts) == 3 and sum("co2" in line for line in alerts) == 3

    summary = json.loads((folder / "out/hourly_summary.json").read_text(encoding="utf-8"))
    assert len(summary) == 12  # 2 hours x 2 devices x 3 metrics; the battery level was not kept
    south_noon = next(
        row for row in summary
        if (row["hour"], row["device"], row["metric"]) == ("2024-06-01T12:00", "gh-south-1", "temperature")
    )  # fmt: skip
    assert south_noon == {
        "hour": "2024-06-01T12:00", "site": "greenhouse south", "device": "gh-south-1",
        "metric": "temperature", "count": 3, "min": 30.4, "max": 32.0, "mean": 31.2,
    }  # fmt: skip  (the -99 °C glitch was filtered out)

    rejects = jsonl(folder / "out/rejects.jsonl")
    source = sorted(r["error"]["message"] for r in rejects if r["node"] == "readings")
    assert [m.split(":")[1] for m in source] == ["11", "18", "8"]
    assert "not a number: 'forty-five'" in source[2]
    located = [r for r in rejects if r["node"] == "located"]
    assert len(located) == 3 and {r["record"]["device"] for r in located} == {"gh-west-7"}
    assert all(r["error"]["type"] == "LookupError" and r["location"] == "custom.pipe:15" for r in located)


CHECKS: dict[str, Callable[..., None]] = {
    "quickstart": check_quickstart,
    "catalog": check_catalog,
    "usage": check_usage,
    "publish": check_publish,
    "custom": check_custom,
}


def test_every_example_is_tested_and_indexed() -> None:
    folders = sorted(path.name for path in EXAMPLES.iterdir() if path.is_dir() and path.name != "__pycache__")
    assert folders == sorted(CHECKS)
    index = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    for name in folders:
        assert (EXAMPLES / name / "README.md").is_file(), name
        assert [p.name for p in (EXAMPLES / name).glob("*.pipe")] == [f"{name}.pipe"]
        assert f"[{name}]({name}/)" in index, f"examples/README.md does not list {name}"


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_example(name: str, tmp_path: Path, catalog_server: Callable[[Path], str]) -> None:
    if name == "publish":
        check_publish(tmp_path, catalog_server)
    else:
        CHECKS[name](tmp_path)
