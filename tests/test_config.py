"""Configuration: file, environment, precedence, and a clear error for every wrong value."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load


def test_defaults_without_file_or_environment() -> None:
    config = load(None, environ={})
    assert config.gateway.bic == "SHHKCNSHGWY"
    assert config.onshore.inbound_topic == "onshore.inbound"
    assert config.gateway.max_message_bytes == 2 * 1024 * 1024
    assert config.kafka.bootstrap_servers == ""


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    f = tmp_path / "gw.toml"
    f.write_text('[gateway]\nmax_message_bytes = 4096\n[offshore]\nsystem_bic = "HKICHKHH"\n')
    env = {
        "CONNECT_GATEWAY__GATEWAY__MAX_MESSAGE_BYTES": "8192",
        "KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9092",
    }
    config = load(f, environ=env)
    assert config.gateway.max_message_bytes == 8192
    assert config.offshore.system_bic == "HKICHKHH"
    assert config.kafka.bootstrap_servers == "kafka-1:9092"
    assert load(None, environ={"CONNECT_GATEWAY_CONFIG": str(f)}).gateway.max_message_bytes == 4096


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ('[gateway]\nbic = "gw"\n', {}, "gateway.bic must be a BIC"),
        ("[gateway]\nmax_message_bytes = 10\n", {}, "between 1 KiB and 64 MiB"),
        ("", {"CONNECT_GATEWAY__GATEWAY__MAX_MESSAGE_BYTES": "lots"}, "must be an integer"),
        ("[gatway]\n", {}, "unknown configuration section [gatway]"),
        ("[onshore]\ninbound = 'x'\n", {}, "unknown setting onshore.inbound"),
        ('[onshore]\noutbound_topic = "offshore.outbound"\n', {}, "must all differ"),
        ("[gateway\n", {}, "not valid TOML"),
        ("", {"CONNECT_GATEWAY__BIC": "X"}, "expected CONNECT_GATEWAY__<SECTION>__<KEY>"),
    ],
)
def test_every_wrong_value_is_named(
    tmp_path: Path, toml: str, env: dict[str, str], message: str
) -> None:
    f = tmp_path / "gw.toml"
    f.write_text(toml)
    with pytest.raises(ConfigError, match=None) as caught:
        load(f, environ=env)
    assert message in str(caught.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load(tmp_path / "absent.toml", environ={})
