"""`http`: send records to a REST endpoint (a sink) or a stage's hand-off to a bulk API such as
Elasticsearch's or OpenSearch's `_bulk` (a bulk sink), with httpx.

Both retry 429 and 5xx answers (and connection errors) with bounded exponential backoff, honouring
`Retry-After`. Header values may be secrets: they never appear in messages, and neither does a URL's
password or the value of a query parameter that looks like a key or token.
"""

from __future__ import annotations

import email.utils
import json
import random
import re
import string
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipec.connectors._files import json_encode, open_handoff
from pipec.runtime import BulkSink, ComponentType, Sink

_SENSITIVE_QUERY = re.compile(r"key|token|secret|pass|sig|auth|credential", re.IGNORECASE)


class HttpError(RuntimeError):
    """An HTTP request failed for good (after any retries); the message holds no secrets."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def redact_http_url(url: str) -> str:
    """The URL without its password and without the values of key/token-like query parameters."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    query = "&".join(
        f"{name}=***"
        if _SENSITIVE_QUERY.search(name)
        else (f"{name}={value}" if value or "=" in pair else name)
        for pair in parts.query.split("&")
        if pair
        for name, _, value in [pair.partition("=")]
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _query_secrets(url: str) -> list[str]:
    """The values of `url`'s key/token-like query parameters, as sent and as a server may decode them
    (a server's error page often echoes the request line or its parameters)."""
    try:
        query = urllib.parse.urlsplit(url).query
    except ValueError:
        return []
    values: set[str] = set()
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if value and _SENSITIVE_QUERY.search(urllib.parse.unquote_plus(name)):
            values.update((value, urllib.parse.unquote(value), urllib.parse.unquote_plus(value)))
    return [value for value in values if value.strip()]


class _HttpConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="Endpoint URL.")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description='Request headers, e.g. { Authorization = secret("API_TOKEN") }. Values never appear in '
        "messages.",
    )
    timeout: float = Field(10.0, gt=0, description="Seconds to wait for each request (connect and read).")
    retries: int = Field(
        3, ge=0, le=20, description="Retries of a request answered 429 or 5xx, or that could not connect."
    )
    backoff: float = Field(
        0.5, ge=0, description="First retry delay in seconds; doubled on each retry (with jitter)."
    )
    max_backoff: float = Field(
        30.0, ge=0, description="Longest wait between retries, in seconds, including a server's Retry-After."
    )
    verify: bool = Field(True, description="Verify the server's TLS certificate.")


class _Client:
    """An httpx client plus the retry loop both roles use."""

    def __init__(self, config: _HttpConfig, what: str, pool: int) -> None:
        import httpx

        self._httpx = httpx
        self.config = config
        self.what = what
        # Header values and key/token-like query values: none may appear in a message (see `scrub`).
        self.secrets = [value for value in config.headers.values() if value] + _query_secrets(config.url)
        self.client = httpx.Client(
            headers=config.headers,
            timeout=config.timeout,
            verify=config.verify,
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
            follow_redirects=False,
        )
        self.sleep: Callable[[float], None] = time.sleep

    def scrub(self, text: str, url: str | None = None) -> str:
        """`text` without any secret value: header values, and query values of the config's URL and of
        `url` (a templated URL may take one from a record). Longest first, so no part of one survives."""
        secrets = self.secrets + _query_secrets(url) if url else self.secrets
        for secret in sorted(set(secrets), key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def _delay(self, attempt: int, response: Any) -> float:
        config = self.config
        delay = min(config.backoff * (2**attempt), config.max_backoff) * (0.5 + random.random() / 2)
        if response is not None:
            after = _retry_after(response.headers.get("retry-after"))
            if after is not None:
                delay = after
        return min(max(delay, 0.0), config.max_backoff)

    def send(self, method: str, url: str, content: bytes, content_type: str) -> Any:
        """Send one request, retrying 429/5xx and connection errors; returns the 2xx response."""
        httpx = self._httpx
        shown = redact_http_url(url)
        attempts = self.config.retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self.client.request(
                    method, url, content=content, headers={"content-type": content_type}
                )
            except httpx.TransportError as exc:
                if last:
                    raise HttpError(
                        self.scrub(
                            f"{self.what}: {method} {shown} failed after {attempts} attempt(s): "
                            f"{type(exc).__name__}: {exc}",
                            url,
                        )
                    ) from None
                self.sleep(self._delay(attempt, None))
                continue
            except (httpx.HTTPError, httpx.InvalidURL) as exc:  # not worth retrying; may quote the URL
                raise HttpError(
                    self.scrub(f"{self.what}: {method} {shown} failed: {type(exc).__name__}: {exc}", url)
                ) from None
            status = response.status_code
            if 200 <= status < 300:
                return response
            if (status == 429 or status >= 500) and not last:
                self.sleep(self._delay(attempt, response))
                continue
            # Scrubbed before it is shortened, so that no cut-off piece of a secret is left.
            body = " ".join(self.scrub(response.text, url).split())[:300]
            tried = f" after {attempts} attempt(s)" if status == 429 or status >= 500 else ""
            raise HttpError(
                self.scrub(
                    f"{self.what}: {method} {shown} answered HTTP {status} {response.reason_phrase}"
                    f"{tried}: {body}",
                    url,
                ),
                status,
            )
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.client.close()


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _template_fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


class HttpSink(Sink):
    """Sends records to an HTTP endpoint as JSON: one request per record, or batched.

    `batch_format = "single"` (default) sends each record as a JSON object and the URL may name record
    fields (`"https://api.example.com/items/{id}"`, values URL-encoded). `"array"` and `"ndjson"` send
    `batch_size` records per request, as a JSON array or as newline-delimited JSON. Answers 429 and 5xx
    are retried (honouring Retry-After); any other non-2xx answer fails the record (or the batch's
    records). With `max_concurrency` above 1, up to that many requests are in flight at once and a
    failed request's records are reported as failed when it completes.
    """

    class Config(_HttpConfig):
        url: str = Field(
            description="Endpoint URL; in single mode it may name record fields, e.g. 'https://h/items/{id}'."
        )
        method: Literal["POST", "PUT", "PATCH", "DELETE"] = Field("POST", description="HTTP method.")
        batch_format: Literal["single", "array", "ndjson"] = Field(
            "single",
            description="single: one JSON object per request; array: a JSON array of records; ndjson: one "
            "JSON object per line.",
        )
        batch_size: int = Field(100, ge=1, description="Records per request in array / ndjson mode.")
        max_concurrency: int = Field(1, ge=1, le=64, description="Requests in flight at once.")

        @model_validator(mode="after")
        def _template_fits(self) -> HttpSink.Config:
            try:
                fields = _template_fields(self.url)
            except ValueError as exc:
                raise ValueError(f"url is not a valid template: {exc}") from None
            if fields and self.batch_format != "single":
                raise ValueError("a url naming record fields works only with batch_format = 'single'")
            if any(not name or not name.isidentifier() for name in fields):
                raise ValueError("url placeholders must name record fields, e.g. {id}")
            return self

    config: Config

    def open(self) -> None:
        config = self.config
        self._http = _Client(config, "http sink", config.max_concurrency)
        self._encode = json_encode(ensure_ascii=False)
        self._fields = _template_fields(config.url)
        self._buffer: list[tuple[Any, str]] = []  # (record, its JSON)
        self._failures: list[tuple[Any, BaseException]] = []
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._slots: threading.BoundedSemaphore | None = None
        self._in_flight: set[Future[None]] = set()
        if config.max_concurrency > 1:
            self._pool = ThreadPoolExecutor(config.max_concurrency, thread_name_prefix="pipec-http")
            self._slots = threading.BoundedSemaphore(config.max_concurrency)

    def _url_for(self, record: Any) -> str:
        if not self._fields:
            return self.config.url
        values = {}
        for name in self._fields:
            if not isinstance(record, dict) or name not in record:
                raise KeyError(f"http sink: the url names field {name!r}, which the record lacks")
            values[name] = urllib.parse.quote(str(record[name]), safe="")
        return self.config.url.format_map(values)

    def write(self, record: Any) -> None:
        self._report_failures()
        # Encoded now, so that a record JSON cannot hold fails on its own, before it is buffered.
        encoded = self._encode(record)
        if self.config.batch_format == "single":
            self._dispatch([record], self._url_for(record), encoded.encode("utf-8"), "application/json")
            return
        self._buffer.append((record, encoded))
        if len(self._buffer) >= self.config.batch_size:
            self._send_buffer()

    # No write_batch of its own on purpose: the runner takes a sink's write_batch as all-or-nothing
    # (a failing batch is retried, then written record by record), and requests sent one by one are
    # not. Without it, `with { batch = N }` writes each record once through `write`; array/ndjson
    # requests are grouped by `batch_size` here, and a failed request's records are rejected.

    def _send_buffer(self) -> None:
        size = self.config.batch_size
        pending, self._buffer = self._buffer[:size], self._buffer[size:]
        if not pending:
            return
        records = [record for record, _ in pending]
        if self.config.batch_format == "array":
            body = ("[" + ",".join(encoded for _, encoded in pending) + "]").encode("utf-8")
            content_type = "application/json"
        else:
            body = "".join(encoded + "\n" for _, encoded in pending).encode("utf-8")
            content_type = "application/x-ndjson"
        self._dispatch(records, self.config.url, body, content_type)

    def _dispatch(self, records: list[Any], url: str, body: bytes, content_type: str) -> None:
        method = self.config.method
        if self._pool is None or self._slots is None:
            if self.config.batch_format == "single":
                self._http.send(method, url, body, content_type)  # raises: this record fails
                return
            try:
                self._http.send(method, url, body, content_type)
            except HttpError as exc:
                for record in records:
                    self.context.reject(record, exc)
            return
        self._slots.acquire()  # bounded: wait while max_concurrency requests are in flight
        future = self._pool.submit(self._http.send, method, url, body, content_type)
        with self._lock:
            self._in_flight.add(future)
        future.add_done_callback(lambda done: self._done(done, records))

    def _done(self, future: Future[Any], records: list[Any]) -> None:
        error = future.exception()
        with self._lock:
            self._in_flight.discard(future)
            if error is not None:
                self._failures.extend((record, error) for record in records)
        assert self._slots is not None
        self._slots.release()

    def _report_failures(self) -> None:
        """Report failed requests' records on the runner's thread (workers never call the runner)."""
        if not self._failures:
            return
        with self._lock:
            failures, self._failures = self._failures, []
        for record, error in failures:
            self.context.reject(record, error)

    def flush(self) -> None:
        """Send what is buffered, wait for every request in flight, then report failed requests' records."""
        if not hasattr(self, "_http"):
            return
        while self._buffer:
            self._send_buffer()
        slots = self._slots
        if slots is not None:  # holding every slot: no request is in flight and every `_done` has run
            for _ in range(self.config.max_concurrency):
                slots.acquire()
            for _ in range(self.config.max_concurrency):
                slots.release()
        self._report_failures()

    def close(self) -> None:
        try:
            if getattr(self, "_buffer", None):
                while self._buffer:
                    self._send_buffer()
        finally:
            pool = getattr(self, "_pool", None)
            if pool is not None:
                pool.shutdown(wait=True)
            http = getattr(self, "_http", None)
            if http is not None:
                http.close()
        if getattr(self, "_failures", None):
            self._report_failures()


class HttpBulkSink(BulkSink):
    """Posts a stage's hand-off (a JSON Lines file path) to a bulk endpoint in NDJSON chunks.

    `protocol = "elasticsearch"` (also OpenSearch) writes an action line before each document
    (`{"index": {"_index": ..., "_id": ...}}`) and checks the answer's `errors` / `items`: documents the
    server refused are summarized (counts by error type, the first few ids and reasons) in the error
    raised after every chunk was sent. `protocol = "ndjson"` posts the documents as they are and needs
    only a 2xx answer. Chunks are retried on 429/5xx like the sink's requests.
    """

    class Config(_HttpConfig):
        url: str = Field(description="Bulk endpoint, e.g. 'http://127.0.0.1:9200/_bulk'.")
        protocol: Literal["elasticsearch", "ndjson"] = Field(
            "elasticsearch",
            description="elasticsearch: _bulk action lines and per-item result checks (OpenSearch too); "
            "ndjson: documents only.",
        )
        index: str | None = Field(None, description="Target index for the action lines (else the URL's).")
        action: Literal["index", "create", "update"] = Field(
            "index", description="Bulk action per document; update sends {doc: ..., doc_as_upsert: true}."
        )
        id_field: str | None = Field(None, description="Record field used as the document _id.")
        chunk_size: int = Field(500, ge=1, description="Documents per request.")
        chunk_bytes: int = Field(
            5_000_000, ge=1024, description="Largest request body in bytes (approximately)."
        )

        @model_validator(mode="after")
        def _update_needs_id(self) -> HttpBulkSink.Config:
            if self.action == "update" and not self.id_field:
                raise ValueError("action 'update' needs `id_field`")
            return self

    config: Config

    def open(self) -> None:
        self._http = _Client(self.config, "http bulksink", 1)

    def publish(self, handoff: Any) -> None:
        path, file = open_handoff(handoff, "http bulksink")
        config = self.config
        encode = json_encode(ensure_ascii=False)
        self._sent = 0
        failures: list[dict[str, Any]] = []
        lines: list[str] = []
        ids: list[Any] = []
        size = 0
        with file:
            for number, line in enumerate(file, 1):
                if not line.strip():
                    continue
                try:
                    document = json.loads(line)
                except ValueError as exc:
                    raise ValueError(
                        f"{path}:{number}: malformed JSON in the stage's hand-off: {exc} "
                        f"({self._sent} document(s) were already sent)"
                    ) from None
                chunk = self._lines(document, number, path, encode)
                lines.extend(chunk)
                ids.append(
                    document.get(config.id_field) if config.id_field and isinstance(document, dict) else None
                )
                size += sum(len(item) for item in chunk)
                if len(ids) >= config.chunk_size or size >= config.chunk_bytes:
                    failures += self._post_chunk(lines, ids)
                    lines, ids, size = [], [], 0
        if ids:
            failures += self._post_chunk(lines, ids)
        sent = self._sent
        self.context.logger.info(
            "%s: sent %d document(s) to %s", self.context.node, sent, redact_http_url(config.url)
        )
        if failures:
            raise HttpError(self._http.scrub(_summary(failures, sent)))  # quotes the server's reasons

    def _lines(self, document: Any, number: int, path: str, encode: Callable[[Any], str]) -> list[str]:
        try:
            return self._encoded_lines(document, number, path, encode)
        except ValueError as exc:  # e.g. a NaN the hand-off holds (json.loads reads it): never sent
            message = str(exc)
            raise ValueError(message if message.startswith(path) else f"{path}:{number}: {message}") from None

    def _encoded_lines(
        self, document: Any, number: int, path: str, encode: Callable[[Any], str]
    ) -> list[str]:
        config = self.config
        if config.protocol == "ndjson":
            return [encode(document) + "\n"]
        if not isinstance(document, dict):
            raise ValueError(f"{path}:{number}: expected a JSON object, got {type(document).__name__}")
        meta: dict[str, Any] = {}
        if config.index:
            meta["_index"] = config.index
        if config.id_field:
            if document.get(config.id_field) is None:
                raise ValueError(f"{path}:{number}: no value for the id field {config.id_field!r}")
            meta["_id"] = str(document[config.id_field])
        body = {"doc": document, "doc_as_upsert": True} if config.action == "update" else document
        return [encode({config.action: meta}) + "\n", encode(body) + "\n"]

    def _post_chunk(self, lines: list[str], ids: list[Any]) -> list[dict[str, Any]]:
        try:
            return self._post(lines, ids)
        except HttpError as exc:
            raise HttpError(f"{exc} ({self._sent} document(s) had been sent before)", exc.status) from None

    def _post(self, lines: list[str], ids: list[Any]) -> list[dict[str, Any]]:
        """Send one chunk; the items the server refused."""
        body = "".join(lines).encode("utf-8")
        response = self._http.send("POST", self.config.url, body, "application/x-ndjson")
        self._sent += len(ids)
        if self.config.protocol != "elasticsearch":
            return []
        shown = redact_http_url(self.config.url)
        try:
            answer = response.json()
        except ValueError:
            raise HttpError(f"http bulksink: {shown} answered with something other than JSON") from None
        items = answer.get("items") if isinstance(answer, dict) else None
        if not isinstance(items, list):
            raise HttpError(f"http bulksink: {shown} answered without a bulk `items` list")
        if len(items) != len(ids):
            raise HttpError(
                f"http bulksink: sent {len(ids)} document(s) but {shown} answered {len(items)} item(s)"
            )
        if not answer.get("errors"):
            return []
        failed = []
        for item, sent_id in zip(items, ids):
            result: Any = next(iter(item.values()), {}) if isinstance(item, dict) and item else {}
            status = result.get("status", 0) if isinstance(result, dict) else 0
            error = result.get("error") if isinstance(result, dict) else None
            if error or not (200 <= int(status) < 300):
                failed.append({"id": result.get("_id", sent_id), "status": status, "error": error})
        return failed

    def close(self) -> None:
        http = getattr(self, "_http", None)
        if http is not None:
            http.close()


def _summary(failures: list[dict[str, Any]], sent: int) -> str:
    """`3 of 1000 document(s) failed: mapper_parsing_exception x2, version_conflict x1; e.g. ...`."""
    kinds: dict[str, int] = {}
    for failure in failures:
        error = failure["error"]
        kind = (
            error.get("type", "error")
            if isinstance(error, dict)
            else str(error or f"status {failure['status']}")
        )
        kinds[kind] = kinds.get(kind, 0) + 1
    counts = ", ".join(f"{kind} x{count}" for kind, count in sorted(kinds.items(), key=lambda kv: -kv[1]))
    examples = []
    for failure in failures[:3]:
        error = failure["error"]
        reason = error.get("reason", "") if isinstance(error, dict) else ""
        examples.append(f"id {failure['id']}: HTTP {failure['status']} {reason}".strip())
    return f"http bulksink: {len(failures)} of {sent} document(s) failed: {counts}; e.g. " + "; ".join(
        examples
    )


component = ComponentType(
    name="http",
    implementations={"sink": HttpSink, "bulksink": HttpBulkSink},
    summary="HTTP endpoints (httpx): JSON per record or batched, and bulk APIs like Elasticsearch _bulk",
)
