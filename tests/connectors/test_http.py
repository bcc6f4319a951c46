from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pipec.connectors.http import HttpBulkSink, HttpError, HttpSink, component, redact_http_url

Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Server:
    """A loopback HTTP server that answers from a script and records every request."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    replies: deque[Reply | Callable[[dict[str, Any]], Reply]] = field(default_factory=deque)
    default: Reply = (200, {}, b"{}")
    lock: threading.Lock = field(default_factory=threading.Lock)
    delay: float = 0.0
    concurrent: int = 0
    max_concurrent: int = 0

    def reply(self, *replies: Reply | Callable[[dict[str, Any]], Reply]) -> None:
        self.replies.extend(replies)


@pytest.fixture
def server() -> Iterator[Server]:
    state: Server

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            request = {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": self.rfile.read(length),
            }
            with state.lock:
                state.requests.append(request)
                state.concurrent += 1
                state.max_concurrent = max(state.max_concurrent, state.concurrent)
                reply = state.replies.popleft() if state.replies else state.default
            if state.delay:
                time.sleep(state.delay)
            status, headers, body = reply(request) if callable(reply) else reply
            with state.lock:
                state.concurrent -= 1
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state = Server(url=f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def run(sink: Any, records: list[Any]) -> None:
    sink.open()
    try:
        for record in records:
            sink.write(record)
    finally:
        sink.close()


def test_component_roles() -> None:
    assert component.roles == ("sink", "bulksink")


def test_single_records_with_url_template_and_headers(server: Server, make: Any) -> None:
    sink = make(
        HttpSink, url=server.url + "/items/{id}", method="PUT", headers={"Authorization": "Bearer t0ken"}
    )
    run(sink, [{"id": "a/b", "n": 1}, {"id": 2, "n": 2}])
    assert [(r["method"], r["path"]) for r in server.requests] == [
        ("PUT", "/items/a%2Fb"),
        ("PUT", "/items/2"),
    ]
    assert json.loads(server.requests[0]["body"]) == {"id": "a/b", "n": 1}
    assert server.requests[0]["headers"]["authorization"] == "Bearer t0ken"
    assert server.requests[0]["headers"]["content-type"] == "application/json"


def test_missing_template_field_fails_the_record(server: Server, make: Any) -> None:
    sink = make(HttpSink, url=server.url + "/items/{id}")
    sink.open()
    with pytest.raises(KeyError, match="'id'"):
        sink.write({"n": 1})
    sink.close()
    assert server.requests == []


def test_batches_as_array_and_ndjson(server: Server, make: Any) -> None:
    run(
        make(HttpSink, url=server.url + "/a", batch_format="array", batch_size=2),
        [{"i": i} for i in range(5)],
    )
    assert [json.loads(r["body"]) for r in server.requests] == [
        [{"i": 0}, {"i": 1}],
        [{"i": 2}, {"i": 3}],
        [{"i": 4}],
    ]
    server.requests.clear()
    sink = make(HttpSink, url=server.url + "/n", batch_format="ndjson", batch_size=3)
    sink.open()
    sink.write_batch([{"i": i} for i in range(4)])
    sink.close()
    bodies = [r["body"].decode() for r in server.requests]
    assert bodies == ['{"i": 0}\n{"i": 1}\n{"i": 2}\n', '{"i": 3}\n']
    assert server.requests[0]["headers"]["content-type"] == "application/x-ndjson"


def test_429_then_200_honours_retry_after(server: Server, make: Any) -> None:
    server.reply((429, {"Retry-After": "0.3"}, b"slow down"), (200, {}, b"{}"))
    sink = make(HttpSink, url=server.url + "/x", backoff=0)
    sink.open()
    started = time.monotonic()
    sink.write({"a": 1})
    elapsed = time.monotonic() - started
    sink.close()
    assert len(server.requests) == 2
    assert elapsed >= 0.3  # a lower bound only: the sink must have waited


def test_500s_until_retries_run_out(server: Server, make: Any) -> None:
    server.default = (503, {}, b"unavailable")
    sink = make(HttpSink, url=server.url + "/x", retries=2, backoff=0.01, headers={"X-Api-Key": "k3y-s3cret"})
    sink.open()
    with pytest.raises(
        HttpError, match=r"HTTP 503 Service Unavailable after 3 attempt\(s\): unavailable"
    ) as caught:
        sink.write({"a": 1})
    sink.close()
    assert len(server.requests) == 3
    assert caught.value.status == 503


def test_client_errors_are_not_retried_and_secrets_never_shown(server: Server, make: Any) -> None:
    server.reply((401, {}, b"bad token Bearer s3cret-token"))
    sink = make(
        HttpSink,
        url=server.url.replace("http://", "http://me:pw@") + "/x?api_key=abc&q=1",
        headers={"Authorization": "Bearer s3cret-token"},
    )
    sink.open()
    with pytest.raises(HttpError) as caught:
        sink.write({"a": 1})
    sink.close()
    message = str(caught.value)
    assert "HTTP 401" in message and len(server.requests) == 1
    assert "s3cret-token" not in message and ":pw@" not in message and "abc" not in message
    assert "api_key=***" in message and "q=1" in message


def test_refused_connection(make: Any) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = make(HttpSink, url=f"http://127.0.0.1:{port}/x", retries=1, backoff=0.01)
    sink.open()
    with pytest.raises(HttpError, match=rf"127.0.0.1:{port}/x failed after 2 attempt\(s\): ConnectError"):
        sink.write({"a": 1})
    sink.close()


def test_failed_batch_rejects_its_records(server: Server, make: Any, rejects: Any) -> None:
    server.reply((400, {}, b"no"))
    run(
        make(HttpSink, rejects, url=server.url + "/a", batch_format="array", batch_size=2),
        [{"i": i} for i in range(3)],
    )
    assert [record for record, _ in rejects.items] == [{"i": 0}, {"i": 1}]
    assert len(server.requests) == 2


def test_bounded_concurrency(server: Server, make: Any, rejects: Any) -> None:
    server.delay = 0.05
    server.reply(*[(200, {}, b"{}")] * 5, (400, {}, b"bad"))
    sink = make(HttpSink, rejects, url=server.url + "/c/{i}", max_concurrency=4)
    run(sink, [{"i": i} for i in range(20)])
    assert len(server.requests) == 20
    assert 2 <= server.max_concurrent <= 4  # overlapping requests, never more than the bound
    assert len(rejects.items) == 1 and "HTTP 400" in rejects.messages[0]


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="only with batch_format = 'single'"):
        HttpSink.Config(url="http://h/{id}", batch_format="array")
    with pytest.raises(ValueError, match="needs `id_field`"):
        HttpBulkSink.Config(url="http://h/_bulk", action="update")


def test_redact_http_url() -> None:
    assert (
        redact_http_url("https://u:p@h:1/x?token=abc&page=2&sig=z")
        == "https://u:***@h:1/x?token=***&page=2&sig=***"
    )


# ------------------------------------------------------------------------------------------ bulk sink
def handoff(tmp_path: Path, documents: list[Any]) -> str:
    path = tmp_path / "stage.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in documents))
    return str(path)


def bulk_ok(request: dict[str, Any]) -> Reply:
    lines = request["body"].decode().splitlines()
    items = [{"index": {"_id": json.loads(a)["index"].get("_id"), "status": 201}} for a in lines[0::2]]
    return 200, {"content-type": "application/json"}, json.dumps({"errors": False, "items": items}).encode()


def publish(bulk: Any, path: str) -> None:
    bulk.open()
    try:
        bulk.publish(path)
    finally:
        bulk.close()


def test_bulk_posts_action_lines_in_chunks(server: Server, make: Any, tmp_path: Path) -> None:
    server.default = None  # type: ignore[assignment]
    server.reply(*[bulk_ok] * 3)
    documents = [{"id": i, "name": f"t{i}"} for i in range(5)]
    publish(
        make(HttpBulkSink, url=server.url + "/_bulk", index="catalog", id_field="id", chunk_size=2),
        handoff(tmp_path, documents),
    )
    assert len(server.requests) == 3
    first = server.requests[0]["body"].decode().splitlines()
    assert [json.loads(line) for line in first] == [
        {"index": {"_index": "catalog", "_id": "0"}},
        {"id": 0, "name": "t0"},
        {"index": {"_index": "catalog", "_id": "1"}},
        {"id": 1, "name": "t1"},
    ]
    assert server.requests[0]["body"].endswith(b"\n")
    assert server.requests[0]["headers"]["content-type"] == "application/x-ndjson"


def test_bulk_item_errors_are_summarized(server: Server, make: Any, tmp_path: Path) -> None:
    answer = {
        "errors": True,
        "items": [
            {"index": {"_id": "0", "status": 201}},
            {
                "index": {
                    "_id": "1",
                    "status": 400,
                    "error": {"type": "mapper_parsing_exception", "reason": "bad field [x]"},
                }
            },
            {
                "index": {
                    "_id": "2",
                    "status": 409,
                    "error": {"type": "version_conflict_engine_exception", "reason": "conflict"},
                }
            },
        ],
    }
    server.reply((200, {}, json.dumps(answer).encode()), bulk_ok)
    documents = [{"id": i} for i in range(4)]
    with pytest.raises(HttpError) as caught:
        publish(
            make(HttpBulkSink, url=server.url + "/_bulk", id_field="id", chunk_size=3),
            handoff(tmp_path, documents),
        )
    message = str(caught.value)
    assert message.startswith("http bulksink: 2 of 4 document(s) failed: ")
    assert "mapper_parsing_exception x1" in message and "version_conflict_engine_exception x1" in message
    assert "id 1: HTTP 400 bad field [x]" in message
    assert len(server.requests) == 2  # every chunk was still sent


def test_bulk_item_count_mismatch_and_non_json(server: Server, make: Any, tmp_path: Path) -> None:
    server.reply((200, {}, b'{"errors": false, "items": []}'), (200, {}, b"<html>"))
    path = handoff(tmp_path, [{"a": 1}])
    with pytest.raises(HttpError, match=r"sent 1 document\(s\) but .* answered 0 item\(s\)"):
        publish(make(HttpBulkSink, url=server.url + "/_bulk"), path)
    with pytest.raises(HttpError, match="other than JSON"):
        publish(make(HttpBulkSink, url=server.url + "/_bulk"), path)


def test_bulk_retries_429_and_plain_ndjson(server: Server, make: Any, tmp_path: Path) -> None:
    server.reply((429, {"Retry-After": "0"}, b""), (200, {}, b"ok"))
    publish(
        make(HttpBulkSink, url=server.url + "/ingest", protocol="ndjson"),
        handoff(tmp_path, [{"a": 1}, {"a": 2}]),
    )
    assert len(server.requests) == 2
    assert server.requests[1]["body"] == b'{"a": 1}\n{"a": 2}\n'


def test_bulk_server_error_names_progress(server: Server, make: Any, tmp_path: Path) -> None:
    server.reply(bulk_ok)
    server.default = (500, {}, b"boom")
    bulk = make(HttpBulkSink, url=server.url + "/_bulk", chunk_size=1, retries=1, backoff=0.01)
    with pytest.raises(HttpError, match=r"HTTP 500 .* \(1 document\(s\) had been sent before\)"):
        publish(bulk, handoff(tmp_path, [{"a": 1}, {"a": 2}]))


def test_bulk_bad_handoff(server: Server, make: Any, tmp_path: Path) -> None:
    bulk = make(HttpBulkSink, url=server.url + "/_bulk")
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        publish(bulk, str(tmp_path / "nope.jsonl"))
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(ValueError, match=rf"{path}:2: malformed JSON"):
        publish(make(HttpBulkSink, url=server.url + "/_bulk"), str(path))
    assert server.requests == []


# ------------------------------------------------------------------------------------- in a real run
def _ids_posted(server: Server) -> list[int]:
    return sorted(json.loads(r["body"])["id"] for r in server.requests)


def test_batched_node_sends_each_good_record_once(server: Server, tmp_path: Path) -> None:
    from e2e.harness import run_pipe

    # The runner retries a failing write_batch and then writes record by record: a batch write that
    # had already sent records 1 and 2 before record 3 failed would send them twice.
    server.default = lambda r: (  # type: ignore[assignment]
        (400, {}, b"bad id 3") if json.loads(r["body"])["id"] == 3 else (200, {}, b"{}")
    )
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in range(1, 6)))
    result = run_pipe(tmp_path, f"""pipeline t {{
    source items : jsonl {{ path = "in.jsonl" }}
    sink out : http {{ url = "{server.url}/items", retries = 0 }} with {{ batch = 5, on_error = "skip" }}
    items -> out
}}
""")
    assert _ids_posted(server) == [1, 2, 3, 4, 5]  # each record sent exactly once, the bad one too
    out = result.node("out")
    assert (out["in"], out["failed"]) == (5, 1)
    assert "HTTP 400" in out["errors"][0]["message"]


def test_records_json_cannot_hold_fail_alone_and_decimals_keep_their_digits(
    server: Server, make: Any
) -> None:
    import decimal

    sink = make(HttpSink, url=server.url + "/a", batch_format="array", batch_size=3)
    sink.open()
    sink.write({"i": 0, "d": decimal.Decimal("12345678901234567890123.5")})
    with pytest.raises(ValueError, match="field 'x' is nan, which cannot be written as JSON"):
        sink.write({"i": 1, "x": float("nan")})
    sink.write({"i": 2, "d": decimal.Decimal("12345678901234567890123")})
    sink.close()
    assert len(server.requests) == 1
    assert server.requests[0]["body"] == (
        b'[{"i": 0, "d": "12345678901234567890123.5"},{"i": 2, "d": 12345678901234567890123}]'
    )


def test_bulk_refuses_a_nan_in_the_handoff(server: Server, make: Any, tmp_path: Path) -> None:
    path = tmp_path / "stage.jsonl"
    path.write_text('{"a": 1}\n{"a": NaN}\n')  # Python's json reads NaN; it must never be sent on
    with pytest.raises(ValueError, match=rf"{path}:2: field 'a' is nan, which cannot be written as JSON"):
        publish(make(HttpBulkSink, url=server.url + "/_bulk"), str(path))
    assert server.requests == []


def test_a_query_key_echoed_by_the_server_never_reaches_the_report(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from e2e.harness import run_pipe

    server.default = lambda r: (400, {}, f"no such route: {r['path']}".encode())  # type: ignore[assignment]
    (tmp_path / "in.jsonl").write_text('{"id": 1}\n')
    result = run_pipe(tmp_path, f"""pipeline t {{
    source items : jsonl {{ path = "in.jsonl" }}
    sink out : http {{ url = "{server.url}/items?api_key=KEY_abc123&page=2" }}
    items -> out
}}
""", capsys=capsys)
    assert server.requests[0]["path"] == "/items?api_key=KEY_abc123&page=2"  # the key was sent
    message = result.node("out")["errors"][0]["message"]
    assert "HTTP 400" in message and "api_key=***" in message
    report = (tmp_path / "report.json").read_text()
    assert "KEY_abc123" not in report and "KEY_abc123" not in result.stderr


def test_query_secrets_are_scrubbed_raw_and_decoded(server: Server, make: Any, tmp_path: Path) -> None:
    # A server may echo the query as sent (percent-encoded) or as it parsed it (decoded).
    server.reply((403, {}, b"token 'k/ey+1 x' and k%2Fey%2B1+x refused"))
    sink = make(HttpSink, url=server.url + "/x?access_token=k%2Fey%2B1+x")
    sink.open()
    with pytest.raises(HttpError) as caught:
        sink.write({"a": 1})
    sink.close()
    assert str(caught.value).endswith("HTTP 403 Forbidden: token '***' and *** refused")
    # the bulk sink's summary of refused documents quotes the server's reasons: scrubbed as well
    answer = {"errors": True, "items": [{"index": {"_id": "0", "status": 400,
              "error": {"type": "bad", "reason": "sig=S1gn4ture-xyz rejected"}}}]}
    server.reply((200, {}, json.dumps(answer).encode()))
    with pytest.raises(HttpError) as caught:
        publish(make(HttpBulkSink, url=server.url + "/_bulk?sig=S1gn4ture-xyz"), handoff(tmp_path, [{"a": 1}]))
    assert "S1gn4ture-xyz" not in str(caught.value) and "sig=*** rejected" in str(caught.value)
