"""Fixtures shared by the suite.

kafka_bootstrap: the embedded Tansu broker on a free loopback port, or the cluster named by
KAFKA_BOOTSTRAP_SERVERS. mosquitto: a Mosquitto broker on a free loopback port. postgres: a
throw-away PostgreSQL cluster on a free loopback port; postgres_dsn: a fresh database in it.
state: the state-store configuration, once per backend (sqlite, postgres), so a test that
takes it runs against both. Every server fails the run loudly (pytest.fail, not skip) when it
cannot start.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from gateway.config import Config, StateSection
from gateway.embedded_broker import BrokerStartError
from gateway.iso20022.profiles import ProfileSet
from gateway.messages.registry import profile_set
from tests.servers import Mosquitto, Postgres, running

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
SHARED = ROOT.parent / "shared"
CONFORMANCE_TOOL = SHARED / "tools" / "iso20022-conformance"


@pytest.fixture(scope="session")
def kafka_bootstrap(connect_gateway_bootstrap: str) -> str:
    """The package's pytest plugin starts it (or takes KAFKA_BOOTSTRAP_SERVERS)."""
    return connect_gateway_bootstrap


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[Mosquitto]:
    yield from running(Mosquitto(), "Mosquitto")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    yield from running(
        Postgres(), "PostgreSQL", (BrokerStartError, OSError, subprocess.SubprocessError)
    )


async def new_database(server: Postgres) -> str:
    """The DSN of a new, empty database on `server`."""
    import asyncpg

    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server.dsn())
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return server.dsn(name)


@pytest.fixture
async def postgres_dsn(postgres: Postgres) -> str:
    """A new, empty database: tests never see each other's state."""
    return await new_database(postgres)


@pytest.fixture(params=["sqlite", "postgres"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> StateSection:
    if request.param == "postgres":
        dsn = request.getfixturevalue("postgres_dsn")
        return StateSection(backend="postgres", postgres_dsn=dsn)
    return StateSection(sqlite_path=str(tmp_path / "state.sqlite3"))


@pytest.fixture
def topic() -> str:
    """A fresh topic name, so tests never see each other's records (also on a real cluster)."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def config() -> Config:
    return Config()


@pytest.fixture(scope="session")
def profiles() -> dict[str, ProfileSet]:
    return {side: profile_set(side) for side in ("onshore", "offshore")}  # type: ignore[misc]


# --update-golden comes from the package's pytest plugin (gateway.replay.pytest_plugin).


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_state(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[], Awaitable[StateSection]]:
    """A factory of empty stores (a new SQLite file, or a new PostgreSQL database), for tests
    that need several: one per hypothesis example, one per delivery compared."""
    if request.param == "sqlite":

        async def sqlite() -> StateSection:
            return StateSection(sqlite_path=str(tmp_path / f"{uuid.uuid4().hex}.sqlite3"))

        return sqlite
    server: Postgres = request.getfixturevalue("postgres")

    async def postgres() -> StateSection:
        return StateSection(backend="postgres", postgres_dsn=await new_database(server))

    return postgres
