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
        ('[state]\nbackend = "mysql"\n', {}, "state.backend must be sqlite or postgres"),
        ('[state]\nbackend = "postgres"\n', {}, "needs state.postgres_dsn"),
        ("[kafka]\nretry_delays_ms = []\n", {}, "retry_delays_ms must list"),
        ("", {"CONNECT_GATEWAY__KAFKA__RETRY_DELAYS_MS": "1s,2s"}, "list of integers"),
        ('[kafka]\nsecurity_protocol = "TLS"\n', {}, "kafka.security_protocol must be"),
        (
            '[kafka]\nsecurity_protocol = "SASL_SSL"\nsasl_mechanism = "PLAIN"\n',
            {},
            "needs sasl_username",
        ),
        ('[kafka]\nssl_cafile = "/nonexistent/ca.pem"\n', {}, "no such file"),
        ('[kafka]\ntransactional_id = "gw-1"\n', {}, "needs kafka.idempotent_producer"),
        ("[kafka]\nsession_timeout_ms = 6000\nheartbeat_interval_ms = 3000\n", {}, "a third"),
        ("[kafka]\nfetch_max_wait_ms = 0\n", {}, "kafka.fetch_max_wait_ms must be between"),
        (
            '[kafka]\nretry_topic_prefix = "onshore"\ndlq_topic = "onshore.1"\n',
            {},
            "must all differ",
        ),
        ('[settlement]\ncut_offs = ["25:00"]\n', {}, "settlement.cut_offs: cut-off '25:00'"),
        ('[settlement]\ncut_offs = ["14:00", "10:00"]\n', {}, "strictly increasing"),
        ("", {"CONNECT_GATEWAY__SETTLEMENT__CUT_OFFS": "10:00,9h"}, "is not HH:MM"),
        ('[settlement]\ncap_policy = "ignore"\n', {}, "cap_policy must be queue or reject"),
        ('[settlement]\nrtgs_side = "moon"\n', {}, "rtgs_side must be onshore or offshore"),
        ('[settlement]\ncap_currency = "yuan"\n', {}, "must be an ISO 4217 code"),
        ('[settlement]\nreports_topic = "gateway.dlq"\n', {}, "must all differ"),
        ('[settlement]\ninstruction = "pacs.008"\n', {}, "must be pacs.029 or pacs.009"),
        ('[settlement]\nagent_bic = "clearing"\n', {}, "settlement.agent_bic must be a BIC"),
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


def test_lists_from_file_or_environment_and_secrets_kept_out_of_repr(tmp_path: Path) -> None:
    f = tmp_path / "gw.toml"
    f.write_text(
        '[kafka]\nretry_delays_ms = [500, 5000]\nsecurity_protocol = "SASL_PLAINTEXT"\n'
        'sasl_mechanism = "SCRAM-SHA-512"\nsasl_username = "gw"\n'
        '[state]\nbackend = "postgres"\npostgres_dsn = "postgresql://gw:s3cret@db/gw"\n'
    )
    config = load(f, environ={"CONNECT_GATEWAY__KAFKA__SASL_PASSWORD": "hunter2-secret"})
    assert config.kafka.retry_delays_ms == (500, 5000)
    assert config.kafka.retry_topics == ["gateway.retry.1", "gateway.retry.2"]
    assert "gateway.retry.2" in config.topics()
    env = {"CONNECT_GATEWAY__KAFKA__RETRY_DELAYS_MS": "100, 200,300"}
    assert load(None, environ=env).kafka.retry_delays_ms == (100, 200, 300)
    shown = repr(config)
    assert "hunter2-secret" not in shown and "s3cret" not in shown


def test_the_log_levels_are_set_by_configuration(tmp_path: Path) -> None:
    """ops.log_level for the gateway's own messages, ops.kafka_client_log_level for
    aiokafka's (quiet by default: it logs every failed attempt during an outage)."""
    import logging

    from gateway.ops import logs

    config = load(None, environ={"CONNECT_GATEWAY__OPS__LOG_LEVEL": "WARNING"})
    assert (config.ops.log_level, config.ops.kafka_client_log_level) == ("WARNING", "CRITICAL")
    root, client = logging.getLogger(), logging.getLogger("aiokafka")
    saved = (root.handlers[:], root.level, client.level)
    try:
        logs.configure("text", config.ops.log_level, "ERROR")
        assert root.level == logging.WARNING and client.level == logging.ERROR
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        client.setLevel(saved[2])
    with pytest.raises(ConfigError, match=r"ops\.log_level must be one of"):
        load(None, environ={"CONNECT_GATEWAY__OPS__LOG_LEVEL": "LOUD"})
