"""pytest plugin (entry point `pytest11`): replay a capture into a real gateway, compare what
comes out with a golden capture.

    def test_our_payments(connect_gateway):
        outputs = connect_gateway.run_capture("captures/payments.jsonl")
        connect_gateway.assert_golden(outputs, "captures/payments.golden.jsonl")
        settled = connect_gateway.close_cycle("CNY")   # the pacs.029, the camt.053s, the report

Install it with `pip install 'connect-gateway[partner]'` (pytest and the embedded broker);
`connect-gateway samples DIR` copies the shipped sample messages to start from.

The fixture and what it does are in gateway/replay/golden.py (`GatewayUnderTest`, the rule for
what varies: `Variable`, `VARIES`). This module holds only the hooks and the fixtures, and
imports the gateway when a test asks for one: pytest loads every installed plugin in every run
of the environment, and the gateway's imports cost a third of a second.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from gateway.config import Config
    from gateway.replay.golden import GatewayUnderTest

# Partners' tests import these from here (they were defined here before golden.py).
_GOLDEN = ("GatewayUnderTest", "Variable", "VARIES", "blanked", "stable", "normalise", "explain")


def __getattr__(name: str) -> Any:
    if name in _GOLDEN:
        from gateway.replay import golden

        return getattr(golden, name)
    raise AttributeError(name)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "connect_gateway: the test replays captures into a real gateway (the connect_gateway "
        "fixture)",
    )


# The partner's own settings for the fixture's gateway: ini keys (pytest.ini, pyproject's
# [tool.pytest.ini_options]), paths relative to the ini file. Topics, group, state and ports
# are always the fixture's own.
SETTINGS = {
    "connect_gateway_config": "TOML configuration whose translation and settlement settings "
    "the connect_gateway fixture runs with",
    "connect_gateway_directory": "participant directory (translation.directory)",
    "connect_gateway_calendars": "holiday calendars folder (translation.calendars)",
    "connect_gateway_charset_policy": "character-set policy (translation.charset_policy)",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite golden files and captures instead of comparing (review the diff)",
    )
    parser.addoption(
        "--connect-gateway-config",
        metavar="FILE",
        help="as the ini key connect_gateway_config (this option wins)",
    )
    for name, text in SETTINGS.items():
        parser.addini(name, text, default="")


def partner_config(pytest_config: pytest.Config) -> Config | None:
    """The configuration the partner gave the fixture, or None for the built-in one. A bad
    configuration fails the run with its one-line reason."""
    from gateway.config import ConfigError, check, load

    root = Path(str(pytest_config.inipath.parent)) if pytest_config.inipath else Path.cwd()

    def setting(name: str) -> str:
        value = str(pytest_config.getini(name) or "")
        return str(root / value) if value else ""

    option = pytest_config.getoption("--connect-gateway-config")
    path = str(Path(option).resolve()) if option else setting("connect_gateway_config")
    overrides = {
        key: value
        for key, name in (
            ("directory", "connect_gateway_directory"),
            ("calendars", "connect_gateway_calendars"),
            ("charset_policy", "connect_gateway_charset_policy"),
        )
        if (value := setting(name))
    }
    if not path and not overrides:
        return None
    try:
        base = load(path or None, environ={})
        if overrides:
            translation = dataclasses.replace(base.translation, **overrides)
            base = check(dataclasses.replace(base, translation=translation))
    except ConfigError as exc:
        pytest.fail(f"connect_gateway configuration: {exc}", pytrace=False)
    return base


@pytest.fixture(scope="session")
def connect_gateway_bootstrap() -> Iterator[str]:
    """KAFKA_BOOTSTRAP_SERVERS, or an embedded broker for the session."""
    import os

    from gateway.embedded_broker import EmbeddedBroker

    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    broker = EmbeddedBroker()
    try:
        broker.start()
    except Exception as exc:
        pytest.fail(f"cannot start the embedded Kafka broker: {exc}", pytrace=False)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def connect_gateway(
    connect_gateway_bootstrap: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[GatewayUnderTest]:
    """A gateway running in this test's process, on fresh topics and its own SQLite state, with
    the partner's configuration (ini `connect_gateway_config` and friends, or
    `--connect-gateway-config`): `replay` or `run_capture` a capture into it, read its
    `outputs`, compare them with `assert_golden` (`pytest --update-golden` rewrites the file).
    Messages it sends a side are checked to be signed with its key when one is configured."""
    from gateway.config import StateSection
    from gateway.replay.golden import GatewayUnderTest
    from gateway.replay.local import local_config

    base = partner_config(request.config)
    config = None
    if base is not None:
        prefix = f"pt{uuid.uuid4().hex[:10]}"
        state = StateSection(sqlite_path=str(tmp_path / "gateway-state.sqlite3"))
        config = local_config(prefix, state, base=base)
    gateway = GatewayUnderTest(connect_gateway_bootstrap, tmp_path, config)
    gateway.update_golden = bool(request.config.getoption("--update-golden"))
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()
