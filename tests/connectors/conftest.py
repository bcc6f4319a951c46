"""Fixtures for the connector tests: a `Context` that collects rejects, and database URLs.

The PostgreSQL and MariaDB servers come from `PIPEC_TEST_POSTGRES_URL` / `PIPEC_TEST_MYSQL_URL`
(defaults: the servers every machine of this project runs). An unreachable server skips its tests
with the reason, except under `CI=true`, where it fails them: a silent skip must never turn CI green.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from pipec.runtime import Component, Context

POSTGRES_URL = os.environ.get("PIPEC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("PIPEC_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


@dataclass
class Rejects:
    """Collects what a component passes to `context.reject`."""

    items: list[tuple[Any, BaseException]] = field(default_factory=list)

    def __call__(self, record: Any, error: BaseException) -> None:
        self.items.append((record, error))

    @property
    def messages(self) -> list[str]:
        return [str(error) for _, error in self.items]


@pytest.fixture
def rejects() -> Rejects:
    return Rejects()


@pytest.fixture
def make() -> Iterator[Callable[..., Any]]:
    """`make(Cls, rejects=None, **config)`: build a component the way the runner does (not opened)."""

    def build(cls: type[Component], rejects: Rejects | None = None, **config: Any) -> Any:
        context = Context(
            run_id="t", pipeline="p", node="n", location="t.pipe:1", reject=rejects or Rejects()
        )
        return cls(cls.Config(**config), context)

    yield build


def _reachable(url: str) -> str | None:
    """None when the server answers, otherwise why not."""
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url, connect_args=_timeout_args(url))
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        from pipec.connectors._sql import reason, redact_url

        return f"{redact_url(url)} is not reachable: {reason(exc, sqlalchemy.make_url(url))}"
    return None


def _timeout_args(url: str) -> dict[str, Any]:
    if url.startswith("postgresql"):
        return {"connect_timeout": 3}
    if url.startswith("mysql"):
        return {"connect_timeout": 3}
    return {}


_SERVER_STATUS: dict[str, str | None] = {}


def _server(url: str) -> str:
    if url not in _SERVER_STATUS:
        _SERVER_STATUS[url] = _reachable(url)
    problem = _SERVER_STATUS[url]
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and the test database server is required: {problem}")
        pytest.skip(problem)
    return url


@pytest.fixture
def postgres_url() -> str:
    return _server(POSTGRES_URL)


@pytest.fixture
def mysql_url() -> str:
    return _server(MYSQL_URL)


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.servers),
        pytest.param("mysql", marks=pytest.mark.servers),
    ]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """The same test on SQLite, PostgreSQL and MariaDB."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    if request.param == "postgres":
        return _server(POSTGRES_URL)
    return _server(MYSQL_URL)


@pytest.fixture
def table_name(db_url: str) -> Iterator[str]:
    """A unique table name, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    drop_tables(db_url, name)


def drop_tables(url: str, *names: str) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as connection:
            for name in names:
                connection.execute(sqlalchemy.text(f"DROP TABLE IF EXISTS {name}"))
    finally:
        engine.dispose()
