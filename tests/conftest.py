"""Test harness: every test gets its own database (SQLite file or a truncated PostgreSQL database),
its own data directory and a real runtime. ``SWARMDESK_TEST_DB=postgres`` runs the same suite on
PostgreSQL; ``.ci/run`` runs both."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import swarmdesk.registrations  # noqa: F401
from swarmdesk.config import Settings
from swarmdesk.core.clock import clock
from swarmdesk.core.migrate import upgrade
from swarmdesk.core.models import Base
from swarmdesk.main import create_app
from swarmdesk.realtime.server_protocol import WebSocketProtocol
from swarmdesk.runtime import Runtime, create_runtime
from tests.support import Harness

BACKEND = os.environ.get("SWARMDESK_TEST_DB", "sqlite")
PG_ADMIN_URL = os.environ.get("SWARMDESK_TEST_PG_ADMIN", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SWARMDESK_TEST_REDIS", "redis://127.0.0.1:6379/15")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def database_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database, made once per test session. PostgreSQL databases are named per
    process, so concurrent sessions on one server never share (or drop) each other's."""
    if BACKEND == "sqlite":
        path = tmp_path_factory.mktemp("template") / "template.db"
        upgrade(f"sqlite+aiosqlite:///{path}")
        yield str(path)
        return
    name = f"swarmdesk_test_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"

    async def admin(*statements: str) -> None:
        engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement))
        await engine.dispose()

    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'))
    upgrade(_pg_url(name))
    yield _pg_url(name)
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _truncate_pg(url: str) -> None:
    engine = create_async_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.fixture
async def settings(tmp_path: Path, database_template: str) -> Settings:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if BACKEND == "sqlite":
        shutil.copy(database_template, data_dir / "swarmdesk.db")
        database_url = ""
    else:
        await _truncate_pg(database_template)
        database_url = database_template
    return Settings(env="test", data_dir=data_dir, database_url=database_url, secret_key="t" * 40,
                    argon2_time_cost=1, argon2_memory_cost=8192, run_worker=False, log_json=False,
                    job_backoff_base=0.01, job_backoff_max=0.05, worker_poll_interval=0.05)


@pytest.fixture(autouse=True)
def _reset_clock() -> None:
    clock.reset()
    yield
    clock.reset()


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = create_runtime(settings)
    await rt.start(with_worker=False)
    yield rt
    await rt.stop()


@pytest.fixture
async def app(runtime: Runtime):  # noqa: ANN201
    application = create_app(runtime.settings, runtime=runtime, with_worker=False)
    application.state.runtime = runtime
    return application


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # noqa: ANN001
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def h(runtime: Runtime, client: httpx.AsyncClient) -> Harness:
    return Harness(runtime, client)


class LiveServer:
    def __init__(self, app, port: int) -> None:  # noqa: ANN001
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                                   lifespan="off", ws=WebSocketProtocol))
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task:
            await self.task


@pytest.fixture
async def live(app) -> AsyncIterator[LiveServer]:  # noqa: ANN001
    """The app served over real TCP (for WebSocket and SSE clients)."""
    server = LiveServer(app, free_port())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(autouse=True)
def _never_500(request: pytest.FixtureRequest) -> Iterator[None]:
    """Any 5xx a test provokes through the API client is a bug, whatever that test asserts."""
    if "client" not in request.fixturenames:  # a test without the application
        yield
        return
    client: httpx.AsyncClient = request.getfixturevalue("client")
    seen: list[str] = []

    async def hook(response: httpx.Response) -> None:
        if response.status_code >= 500:
            await response.aread()
            seen.append(f"{response.request.method} {response.request.url.path}: {response.status_code} "
                        f"{response.text[:300]}")

    client.event_hooks["response"].append(hook)
    yield
    client.event_hooks["response"].remove(hook)
    assert not seen, seen


@pytest.fixture
async def browser_client(app) -> AsyncIterator[httpx.AsyncClient]:  # noqa: ANN001
    """A client that keeps cookies, like a browser (the harness client uses bearer tokens)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        yield c
