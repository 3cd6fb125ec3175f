"""Fixtures shared by the suite.

kafka_bootstrap: the embedded Tansu broker on a free loopback port, or the cluster named by
KAFKA_BOOTSTRAP_SERVERS. mosquitto: a Mosquitto broker on a free loopback port. Both fail the
run loudly (pytest.fail, not skip) when the server cannot start.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import Config
from gateway.embedded_broker import BrokerStartError, EmbeddedBroker
from gateway.iso20022.profiles import ProfileSet
from tests.servers import Mosquitto, external_kafka

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
SHARED = ROOT.parent / "shared"
CONFORMANCE_TOOL = SHARED / "tools" / "iso20022-conformance"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = external_kafka()
    if external:
        yield external
        return
    broker = EmbeddedBroker()
    try:
        broker.start()
    except BrokerStartError as exc:
        pytest.fail(f"cannot start the embedded Kafka broker: {exc}", pytrace=False)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[Mosquitto]:
    server = Mosquitto()
    try:
        server.start()
    except BrokerStartError as exc:
        pytest.fail(f"cannot start Mosquitto: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def topic() -> str:
    """A fresh topic name, so tests never see each other's records (also on a real cluster)."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def config() -> Config:
    return Config()


@pytest.fixture(scope="session")
def profiles() -> dict[str, ProfileSet]:
    return {side: ProfileSet(side) for side in ("onshore", "offshore")}  # type: ignore[misc]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the expected outputs of the golden tests (review the diff)",
    )
