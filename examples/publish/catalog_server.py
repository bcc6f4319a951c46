"""A small catalog server for the publish example (standard library only), on 127.0.0.1.

    CATALOG_TOKEN=demo-token python catalog_server.py [--port 8585] [--store out/catalog_store.json]

Every request but `GET /health` must carry the header `X-Catalog-Token: <CATALOG_TOKEN>` (401 otherwise).

- `POST /`: create or replace one table entity (a JSON object with `fullyQualifiedName` and a non-empty
  `columns` list, each column with `name` and `dataType`); answers 201 (created) or 200 (replaced),
  400 with the reason for anything else.
- `POST /_bulk` or `POST /INDEX/_bulk`: an Elasticsearch-style bulk request (NDJSON: an action line
  `{"index": {"_index": ..., "_id": ...}}` before each document); answers `{"errors": ..., "items": [...]}`
  with a result per document. A document without an `_id`, or an action other than index/create,
  is refused in its item (status 400), the others are stored.
- `GET /`: the stored table names; `GET /tables/FQN`: one table entity; `GET /health`: `ok`.

Everything received is kept in the JSON store file (`{"tables": {fqn: entity}, "indexes": {index:
{id: document}}, "requests": {...}}`), rewritten atomically after each change. `--port 0` picks a free
port; the first line printed is always `catalog server listening on http://127.0.0.1:PORT`.
SIGTERM and Ctrl-C stop it cleanly.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import unquote


class Store:
    """The server's state, saved to a JSON file after every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.data: dict[str, Any] = {"tables": {}, "indexes": {}, "requests": {"tables": 0, "bulk": 0}}
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(self.data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(temporary, self.path)


def table_problem(entity: Any) -> str | None:
    """Why `entity` is not a table entity this server accepts, or None."""
    if not isinstance(entity, dict):
        return f"expected a JSON object, got {type(entity).__name__}"
    fqn = entity.get("fullyQualifiedName")
    if not isinstance(fqn, str) or not fqn:
        return "missing 'fullyQualifiedName'"
    columns = entity.get("columns")
    if not isinstance(columns, list) or not columns:
        return f"table {fqn}: 'columns' must be a non-empty list"
    for number, column in enumerate(columns, 1):
        if not isinstance(column, dict) or not column.get("name") or not column.get("dataType"):
            return f"table {fqn}: column {number} needs a 'name' and a 'dataType'"
    return None


class Handler(BaseHTTPRequestHandler):
    server_version = "CatalogServer/1.0"
    store: Store
    token: str
    quiet: bool

    # ------------------------------------------------------------------------------------ helpers
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        if not self.quiet:
            sys.stderr.write(f"catalog server: {format % args}\n")

    def _answer(self, status: int, body: Any) -> None:
        payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _authorized(self) -> bool:
        if self.headers.get("X-Catalog-Token") == self.token:
            return True
        self._answer(HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong X-Catalog-Token header"})
        return False

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    # ------------------------------------------------------------------------------------ routes
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/health":
            self._answer(HTTPStatus.OK, "ok")
            return
        if not self._authorized():
            return
        tables = self.store.data["tables"]
        if self.path == "/":
            self._answer(HTTPStatus.OK, sorted(tables))
        elif self.path.startswith("/tables/") and unquote(self.path[len("/tables/") :]) in tables:
            self._answer(HTTPStatus.OK, tables[unquote(self.path[len("/tables/") :])])
        else:
            self._answer(HTTPStatus.NOT_FOUND, {"error": f"no such resource: {self.path}"})

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        if not self._authorized():
            return
        body = self._body()
        if self.path == "/":
            self._table(body)
        elif self.path == "/_bulk" or (self.path.endswith("/_bulk") and self.path.count("/") == 2):
            index = self.path[1 : -len("/_bulk")] or None
            self._bulk(body, index)
        else:
            self._answer(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: POST {self.path}"})

    def _table(self, body: bytes) -> None:
        try:
            entity = json.loads(body)
        except ValueError as exc:
            self._answer(HTTPStatus.BAD_REQUEST, {"error": f"malformed JSON: {exc}"})
            return
        problem = table_problem(entity)
        if problem:
            self._answer(HTTPStatus.BAD_REQUEST, {"error": problem})
            return
        fqn = entity["fullyQualifiedName"]
        with self.store.lock:
            tables = self.store.data["tables"]
            created = fqn not in tables
            tables[fqn] = entity
            self.store.data["requests"]["tables"] += 1
            self.store.save()
        status = HTTPStatus.CREATED if created else HTTPStatus.OK
        self._answer(status, {"fullyQualifiedName": fqn, "result": "created" if created else "updated"})

    def _bulk(self, body: bytes, default_index: str | None) -> None:
        lines = [line for line in body.decode("utf-8").split("\n") if line.strip()]
        if len(lines) % 2:
            problem = "bulk body must alternate action and document lines"
            self._answer(HTTPStatus.BAD_REQUEST, {"error": problem})
            return
        items: list[dict[str, Any]] = []
        with self.store.lock:
            indexes = self.store.data["indexes"]
            for action_line, document_line in zip(lines[0::2], lines[1::2]):
                try:
                    action = json.loads(action_line)
                    document = json.loads(document_line)
                except ValueError as exc:
                    self._answer(HTTPStatus.BAD_REQUEST, {"error": f"malformed bulk line: {exc}"})
                    return
                verb, meta = next(iter(action.items())) if isinstance(action, dict) and action else ("?", {})
                meta = meta if isinstance(meta, dict) else {}
                index = meta.get("_index") or default_index
                doc_id = meta.get("_id")
                if verb not in ("index", "create") or not index or not doc_id:
                    if verb not in ("index", "create"):
                        reason = f"unsupported action {verb!r}"
                    else:
                        reason = "no index given" if not index else "no _id given"
                    error = {"type": "illegal_argument_exception", "reason": reason}
                    items.append({verb: {"_index": index, "_id": doc_id, "status": 400, "error": error}})
                    continue
                documents = indexes.setdefault(index, {})
                result = "updated" if doc_id in documents else "created"
                documents[doc_id] = document
                status = 200 if result == "updated" else 201
                items.append({verb: {"_index": index, "_id": doc_id, "status": status, "result": result}})
            self.store.data["requests"]["bulk"] += 1
            self.store.save()
        errors = any("error" in next(iter(item.values())) for item in items)
        self._answer(HTTPStatus.OK, {"took": 1, "errors": errors, "items": items})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The publish example's catalog server (loopback only).")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("CATALOG_PORT", "8585")),
        help="port on 127.0.0.1 (0: any free port); default $CATALOG_PORT or 8585",
    )
    parser.add_argument(
        "--store", default="out/catalog_store.json", help="JSON file keeping what the server received"
    )
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    args = parser.parse_args(argv)
    token = os.environ.get("CATALOG_TOKEN")
    if not token:
        print("catalog server: set CATALOG_TOKEN to the token clients must send", file=sys.stderr)
        return 2

    Handler.store = Store(Path(args.store))
    Handler.token = token
    Handler.quiet = args.quiet
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"catalog server listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
