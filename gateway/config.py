"""The gateway's configuration: one typed place, from a TOML file and the environment.

Precedence: defaults < file (`--config FILE` or $CONNECT_GATEWAY_CONFIG) < environment.
Every setting can be overridden as CONNECT_GATEWAY__<SECTION>__<KEY> (e.g.
CONNECT_GATEWAY__GATEWAY__MAX_MESSAGE_BYTES=1048576); KAFKA_BOOTSTRAP_SERVERS is honoured too.
Wrong values fail at start with a message naming the setting.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.settlement.schedule import ScheduleError, parse_cut_offs
from gateway.sides import SIDES, Side

_BIC = re.compile(r"[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?")
_ENV_PREFIX = "CONNECT_GATEWAY__"


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class GatewaySection:
    bic: str = "SHHKCNSHGWY"
    max_message_bytes: int = 2 * 1024 * 1024
    schemas_dir: str = ""  # empty: the schemas/ folder of this source tree
    # Processes that read, validate and translate (0: a thread of the service). The
    # service's own process still runs Kafka, the state store and the decisions.
    workers: int = 0


@dataclass(frozen=True)
class SideSection:
    system_bic: str
    biz_svc: str
    inbound_topic: str
    outbound_topic: str


@dataclass(frozen=True)
class TranslationSection:
    directory: str = ""  # empty: data/participants.toml of this source tree
    calendars: str = ""  # empty: data/calendars/
    charset_policy: str = ""  # empty: data/charset-policy.toml
    # A settlement date that is not a business day on both sides: "reject" (TM01) or "roll"
    # to the next common business day (recorded in the outcome's notes).
    settlement_date_policy: str = "reject"
    # A postal address given only as address lines (no town, no country): "accept" (carried as
    # it is) or "refuse" (pacs.002 RJCT). CBPR+ refuses them since November 2026.
    unstructured_address: str = "accept"
    # An element the target dialect's profile cannot carry (the shipped profiles carry the
    # same elements on both sides; an operator's own may not): "refuse" (pacs.002 RJCT naming
    # it) or "supplementary" (moved into SplmtryData, with its path, and noted).
    uncarried: str = "refuse"


@dataclass(frozen=True)
class KafkaSection:
    bootstrap_servers: str = ""  # empty: start the embedded broker
    embedded_port: int = 9092  # the embedded broker's port on 127.0.0.1 (0: any free port)
    client_id: str = "connect-gateway"
    group_id: str = "connect-gateway"
    batch_max_records: int = 500
    # The longest a fetch waits at the broker when nothing is there. Apache Kafka answers as
    # soon as a record arrives, so this only paces idle polls; the embedded broker holds
    # every fetch this long, which at low load was the whole latency (p50 120 ms at 200 msg/s
    # with the client's default of 500 ms, 15 ms with 20 ms: bench/pipeline.py).
    fetch_max_wait_ms: int = 20
    # Real Kafka: an idempotent producer (the embedded broker does not support it).
    idempotent_producer: bool = False
    dlq_topic: str = "gateway.dlq"
    # A member that dies without leaving keeps its partitions this long: the time to take
    # over after a crash. Brokers allow 6 s at least by default.
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    # Records that fail for a reason that may pass (a status report that overtook its
    # original) wait on <retry_topic_prefix>.<n> for the n-th delay, then go to the DLQ.
    retry_topic_prefix: str = "gateway.retry"
    retry_delays_ms: tuple[int, ...] = (1_000, 10_000, 60_000)
    # How long a failing state store or broker is retried before the service gives up and
    # exits non-zero (its supervisor restarts it; nothing uncommitted is lost).
    transient_retry_seconds: int = 120
    # Real clusters: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    security_protocol: str = "PLAINTEXT"
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    sasl_mechanism: str = ""  # PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)  # secret: never logged
    # Real clusters only: publish each relay pass in one Kafka transaction (empty: off).
    transactional_id: str = ""
    # Topics the gateway creates when they are missing (operators may create them instead).
    topic_partitions: int = 3
    topic_replication: int = 1  # 3 on a production cluster
    # How often the gateway checks its topics exist (creating what is missing), while it
    # runs: a broker that lost them (a memory broker restarted, an operator's mistake) would
    # otherwise acknowledge writes to topics that no longer exist. 0: only at start.
    topic_check_seconds: int = 30
    # How often clients refresh cluster metadata: how soon partitions added to an inbound
    # topic are consumed (the group rebalances onto them). aiokafka's default is 300 000.
    metadata_max_age_ms: int = 30_000

    def retry_topic(self, attempt: int) -> str:
        """The topic a record waits on before its attempt number `attempt` (2, 3, ...)."""
        return f"{self.retry_topic_prefix}.{attempt - 1}"

    @property
    def retry_topics(self) -> list[str]:
        return [self.retry_topic(n + 2) for n in range(len(self.retry_delays_ms))]


@dataclass(frozen=True)
class StateSection:
    backend: str = "sqlite"  # "sqlite" (one instance) or "postgres" (instances share state)
    sqlite_path: str = "gateway-state.sqlite3"
    # libpq DSN, e.g. postgresql://gateway@db:5432/gateway; the password is best given as
    # PGPASSWORD or a ~/.pgpass file. Hidden from repr: it may carry the password.
    postgres_dsn: str = field(default="", repr=False)
    postgres_pool_size: int = 4


@dataclass(frozen=True)
class SettlementSection:
    # Scheduled cut-offs, "HH:MM" in UTC+8, on days both calendars open; empty: cycles close
    # only on command (`connect-gateway cycle close`).
    cut_offs: tuple[str, ...] = ("10:00", "13:00", "16:30")
    # A capped payment that would take its payer's net debit in the open cycle over its cap:
    # "queue" (held, released in order when credits make room) or "reject" (pacs.002 AM04).
    cap_policy: str = "queue"
    # Liquidity saving: "multilateral" releases together the held payments that fit only
    # together (a prefix of each payer's queue, the largest such set), after every record and
    # on every tick; "off": a held payment waits for room of its own (docs/domain.md).
    offsetting: str = "multilateral"
    # The currency the directory's net_debit_cap is in; other currencies are not capped.
    cap_currency: str = "CNY"
    # Where the settlement instruction goes and its confirmation comes from.
    rtgs_side: Side = "offshore"
    # "pacs.029": one MultilateralSettlementRequest per cycle; "pacs.009": one transfer per
    # net position, between the participant and `agent_bic` (a directory participant: the
    # clearing's own settlement account at the RTGS). A cycle settles when every one of its
    # instructions is confirmed (ACSC); any rejection fails it.
    instruction: str = "pacs.029"
    agent_bic: str = "SHHKHKHHSTL"
    # Per-participant cycle reports (JSON summary records) are published here.
    reports_topic: str = "gateway.reports"
    # A closing instance holds the cycle this long; if it dies, another may take over after.
    close_lease_seconds: int = 60
    # How often the scheduler looks for due cycles and unfinished closes.
    tick_ms: int = 1000


@dataclass(frozen=True)
class NotificationsSection:
    """camt.054 debit and credit notifications, sent to each participant whose position moves
    when its cycle settles."""

    # "net": the net settlement entry alone; "payments": with every obligation behind it
    # (NtryDtls/TxDtls), for reconciliation payment by payment (a large cycle, a large message).
    detail: str = "net"


@dataclass(frozen=True)
class MqttSection:
    """Events to MQTT (a notification channel: Kafka stays the system of record)."""

    host: str = ""  # empty: no MQTT
    port: int = 1883
    client_id: str = "connect-gateway"
    username: str = ""
    password: str = field(default="", repr=False)  # secret: never logged
    prefix: str = "connect-gateway"
    # Operators publish commands on <prefix>/control/<their client id>; the broker's ACL must
    # let each client write only its own (Mosquitto: pattern write <prefix>/control/%c). The
    # gateway obeys the client ids listed here and refuses (and logs) the rest.
    control_clients: tuple[str, ...] = ()
    # Events kept while MQTT is unreachable; past this the oldest are dropped and counted.
    buffer_limit: int = 10_000


@dataclass(frozen=True)
class OpsSection:
    # /metrics (Prometheus), /healthz (alive), /readyz (broker, store and MQTT reachable).
    http_host: str = "127.0.0.1"
    http_port: int = 9400  # 0: any free port
    log_format: str = "json"  # or "text"
    # The gateway's own messages at this level and up: DEBUG, INFO, WARNING, ERROR.
    log_level: str = "INFO"
    # The Kafka client's own (aiokafka): during a broker outage it logs every failed
    # connection attempt, dozens a second; the gateway logs the outage once (its start and
    # its end) and the metrics count it, so its client is quieter by default.
    kafka_client_log_level: str = "CRITICAL"


@dataclass(frozen=True)
class SecuritySection:
    """Signed business messages (gateway/signatures.py)."""

    # Every inbound business message must carry its sender's signature (AppHdr Sgntr),
    # checked against the participant directory's certificates. Off: a signature, when
    # present, is still checked.
    require_signatures: bool = False
    # The gateway's own key (PEM) signs everything it emits: from this file, or from the
    # environment (CONNECT_GATEWAY__SECURITY__SIGNING_KEY, a secret: never logged).
    signing_key_file: str = ""
    signing_key: str = field(default="", repr=False)
    signing_certificate_file: str = ""  # its certificate (PEM), published to the sides
    # An encrypted key's pass phrase (CONNECT_GATEWAY__SECURITY__SIGNING_KEY_PASSPHRASE, a
    # secret); empty for a key stored unencrypted (a mounted Secret, usually).
    signing_key_passphrase: str = field(default="", repr=False)


def _side(side: Side, system_bic: str, biz_svc: str) -> SideSection:
    return SideSection(system_bic, biz_svc, f"{side}.inbound", f"{side}.outbound")


@dataclass(frozen=True)
class Config:
    gateway: GatewaySection = field(default_factory=GatewaySection)
    onshore: SideSection = field(
        default_factory=lambda: _side("onshore", "CIPSCNSHXXX", "cips.connect.01")
    )
    offshore: SideSection = field(
        default_factory=lambda: _side("offshore", "HKICHKHHXXX", "rmbchats.connect.01")
    )
    translation: TranslationSection = field(default_factory=TranslationSection)
    kafka: KafkaSection = field(default_factory=KafkaSection)
    state: StateSection = field(default_factory=StateSection)
    settlement: SettlementSection = field(default_factory=SettlementSection)
    notifications: NotificationsSection = field(default_factory=NotificationsSection)
    mqtt: MqttSection = field(default_factory=MqttSection)
    ops: OpsSection = field(default_factory=OpsSection)
    security: SecuritySection = field(default_factory=SecuritySection)

    def side(self, side: Side) -> SideSection:
        return self.onshore if side == "onshore" else self.offshore

    def topics(self) -> list[str]:
        """Every topic the gateway reads or writes."""
        sides = [self.side(s) for s in SIDES]
        return [
            *(s.inbound_topic for s in sides),
            *(s.outbound_topic for s in sides),
            *self.kafka.retry_topics,
            self.kafka.dlq_topic,
            self.settlement.reports_topic,
        ]

    @property
    def schemas_path(self) -> Path | None:
        return Path(self.gateway.schemas_dir) if self.gateway.schemas_dir else None


def load(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    env = os.environ if environ is None else environ
    raw: dict[str, dict[str, Any]] = {}
    path = path or env.get("CONNECT_GATEWAY_CONFIG") or None
    if path:
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None
    for name, value in env.items():
        if name.startswith(_ENV_PREFIX):
            parts = name[len(_ENV_PREFIX) :].lower().split("__")
            if len(parts) != 2:
                raise ConfigError(f"{name}: expected {_ENV_PREFIX}<SECTION>__<KEY>")
            raw.setdefault(parts[0], {})[parts[1]] = value
    if env.get("KAFKA_BOOTSTRAP_SERVERS"):
        raw.setdefault("kafka", {})["bootstrap_servers"] = env["KAFKA_BOOTSTRAP_SERVERS"]
    return _build(raw)


def _build(raw: dict[str, dict[str, Any]]) -> Config:
    defaults = Config()
    sections: dict[str, Any] = {}
    known = {f.name for f in dataclasses.fields(Config)}
    for name in raw:
        if name not in known:
            raise ConfigError(f"unknown configuration section [{name}]; known: {sorted(known)}")
    for f in dataclasses.fields(Config):
        current = getattr(defaults, f.name)
        values = raw.get(f.name, {})
        if not isinstance(values, dict):
            raise ConfigError(f"[{f.name}] must be a table")
        sections[f.name] = _section(f.name, current, values)
    config = Config(**sections)
    _check(config)
    return config


def _section(name: str, current: Any, values: dict[str, Any]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(current)}
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"unknown setting {name}.{key}; known: {sorted(fields)}")
        expected = type(getattr(current, key))
        if expected is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
                value = value.lower() in ("true", "1")
            elif not isinstance(value, bool):
                raise ConfigError(f"{name}.{key} must be true or false, got {value!r}")
        elif expected is tuple:
            if isinstance(value, str):  # from the environment: "1000,10000"
                value = [v.strip() for v in value.split(",") if v.strip()]
            of_text = "str" in str(fields[key].type)
            try:
                value = tuple(str(v) if of_text else int(v) for v in value)
            except (TypeError, ValueError):
                kind = "strings" if of_text else "integers"
                raise ConfigError(f"{name}.{key} must be a list of {kind}, got {value!r}") from None
        elif expected is int:
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{name}.{key} must be an integer, got {value!r}") from None
        elif expected is str and not isinstance(value, str):
            raise ConfigError(f"{name}.{key} must be a string, got {value!r}")
        changes[key] = value
    return dataclasses.replace(current, **changes)


def check(config: Config) -> Config:
    """`config` validated as a loaded one is (ConfigError if not); the same config."""
    _check(config)
    return config


def _check(config: Config) -> None:
    bics = [("gateway.bic", config.gateway.bic)] + [
        (f"{s}.system_bic", config.side(s).system_bic) for s in SIDES
    ]
    for name, bic in bics:
        if not _BIC.fullmatch(bic):
            raise ConfigError(f"{name} must be a BIC (8 or 11 characters), got {bic!r}")
    # The files a setting names must be there: said here, by `config check` as by `run`,
    # not as a traceback once the service starts.
    t = config.translation
    for name, value, kind in (
        ("translation.directory", t.directory, "file"),
        ("translation.charset_policy", t.charset_policy, "file"),
        ("translation.calendars", t.calendars, "folder"),
        ("gateway.schemas_dir", config.gateway.schemas_dir, "folder"),
    ):
        where = Path(value) if value else None
        if where is not None and not (where.is_file() if kind == "file" else where.is_dir()):
            raise ConfigError(f"{name}: no such {kind}: {value}")
    if config.state.backend not in ("sqlite", "postgres"):
        raise ConfigError(f"state.backend must be sqlite or postgres, got {config.state.backend!r}")
    if config.state.backend == "postgres" and not config.state.postgres_dsn:
        raise ConfigError("state.backend = postgres needs state.postgres_dsn")
    if not 0 <= config.gateway.workers <= 64:
        raise ConfigError("gateway.workers must be between 0 and 64")
    if not 1 <= config.state.postgres_pool_size <= 100:
        raise ConfigError("state.postgres_pool_size must be between 1 and 100")
    if not 3 * config.kafka.heartbeat_interval_ms <= config.kafka.session_timeout_ms:
        raise ConfigError(
            "kafka.heartbeat_interval_ms must be at most a third of kafka.session_timeout_ms"
        )
    kafka = config.kafka
    if not kafka.retry_delays_ms or any(not 0 <= d <= 86_400_000 for d in kafka.retry_delays_ms):
        raise ConfigError("kafka.retry_delays_ms must list 1 or more delays of 0 ms to 1 day")
    if kafka.security_protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        raise ConfigError(
            "kafka.security_protocol must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, got "
            f"{kafka.security_protocol!r}"
        )
    if kafka.security_protocol.startswith("SASL"):
        if kafka.sasl_mechanism not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            raise ConfigError(
                "kafka.sasl_mechanism must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 with "
                f"{kafka.security_protocol}, got {kafka.sasl_mechanism!r}"
            )
        if not kafka.sasl_username or not kafka.sasl_password:
            raise ConfigError(f"{kafka.security_protocol} needs sasl_username and sasl_password")
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(kafka, name)
        if path and not Path(path).is_file():
            raise ConfigError(f"kafka.{name}: no such file {path}")
    if kafka.transactional_id and not kafka.idempotent_producer:
        raise ConfigError("kafka.transactional_id needs kafka.idempotent_producer = true")
    if not 0 <= kafka.topic_check_seconds <= 86_400:
        raise ConfigError("kafka.topic_check_seconds must be between 0 and 86400")
    if not 500 <= kafka.metadata_max_age_ms <= 3_600_000:
        raise ConfigError("kafka.metadata_max_age_ms must be between 500 and 3600000")
    if not 1 <= kafka.topic_partitions <= 1000 or not 1 <= kafka.topic_replication <= 10:
        raise ConfigError("kafka.topic_partitions must be 1-1000, kafka.topic_replication 1-10")
    if kafka.transient_retry_seconds < 1:
        raise ConfigError("kafka.transient_retry_seconds must be at least 1")
    if not 1 <= config.kafka.fetch_max_wait_ms <= 10_000:
        raise ConfigError("kafka.fetch_max_wait_ms must be between 1 and 10000")
    if not 1 <= config.kafka.batch_max_records <= 10_000:
        raise ConfigError("kafka.batch_max_records must be between 1 and 10000")
    if config.settlement.offsetting not in ("off", "multilateral"):
        raise ConfigError(
            "settlement.offsetting must be off or multilateral, got "
            f"{config.settlement.offsetting!r}"
        )
    if config.translation.settlement_date_policy not in ("reject", "roll"):
        raise ConfigError(
            "translation.settlement_date_policy must be reject or roll, got "
            f"{config.translation.settlement_date_policy!r}"
        )
    security = config.security
    if (security.signing_key_file or security.signing_key) != "" and not (
        security.signing_certificate_file
    ):
        raise ConfigError("security.signing_key needs security.signing_certificate_file")
    if security.require_signatures and not (security.signing_key_file or security.signing_key):
        # Partners would have to sign, and be answered unsigned: refused rather than warned.
        raise ConfigError(
            "security.require_signatures needs the gateway's own key to sign what it emits "
            "(security.signing_key_file or CONNECT_GATEWAY__SECURITY__SIGNING_KEY)"
        )
    for name in ("signing_key_file", "signing_certificate_file"):
        value = getattr(security, name)
        if value and not Path(value).is_file():
            raise ConfigError(f"security.{name}: no such file {value}")
    if config.translation.uncarried not in ("refuse", "supplementary"):
        raise ConfigError(
            "translation.uncarried must be refuse or supplementary, got "
            f"{config.translation.uncarried!r}"
        )
    if config.translation.unstructured_address not in ("accept", "refuse"):
        raise ConfigError(
            "translation.unstructured_address must be accept or refuse, got "
            f"{config.translation.unstructured_address!r}"
        )
    if not 1024 <= config.gateway.max_message_bytes <= 64 * 1024 * 1024:
        raise ConfigError("gateway.max_message_bytes must be between 1 KiB and 64 MiB")
    settlement = config.settlement
    try:
        parse_cut_offs(settlement.cut_offs)
    except ScheduleError as exc:
        raise ConfigError(f"settlement.cut_offs: {exc}") from None
    if settlement.cap_policy not in ("queue", "reject"):
        raise ConfigError(
            f"settlement.cap_policy must be queue or reject, got {settlement.cap_policy!r}"
        )
    if config.notifications.detail not in ("net", "payments"):
        raise ConfigError(
            f"notifications.detail must be net or payments, got {config.notifications.detail!r}"
        )
    if settlement.instruction not in ("pacs.029", "pacs.009"):
        raise ConfigError(
            f"settlement.instruction must be pacs.029 or pacs.009, got {settlement.instruction!r}"
        )
    if not _BIC.fullmatch(settlement.agent_bic):
        raise ConfigError(f"settlement.agent_bic must be a BIC, got {settlement.agent_bic!r}")
    if settlement.rtgs_side not in SIDES:
        raise ConfigError(
            f"settlement.rtgs_side must be onshore or offshore, got {settlement.rtgs_side!r}"
        )
    if not re.fullmatch(r"[A-Z]{3}", settlement.cap_currency):
        raise ConfigError(
            f"settlement.cap_currency must be an ISO 4217 code, got {settlement.cap_currency!r}"
        )
    if not 5 <= settlement.close_lease_seconds <= 3600:
        raise ConfigError("settlement.close_lease_seconds must be between 5 and 3600")
    if not 50 <= settlement.tick_ms <= 60_000:
        raise ConfigError("settlement.tick_ms must be between 50 and 60000")
    mqtt = config.mqtt
    if not 1 <= mqtt.port <= 65535:
        raise ConfigError(f"mqtt.port must be between 1 and 65535, got {mqtt.port}")
    if not re.fullmatch(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*", mqtt.prefix):
        raise ConfigError(
            f"mqtt.prefix must be topic levels without wildcards, got {mqtt.prefix!r}"
        )
    if any(not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", c) for c in mqtt.control_clients):
        raise ConfigError("mqtt.control_clients must be client ids (letters, digits, . _ -)")
    if not 0 <= mqtt.buffer_limit <= 1_000_000:
        raise ConfigError("mqtt.buffer_limit must be between 0 and 1000000")
    if bool(mqtt.username) != bool(mqtt.password):
        raise ConfigError("mqtt.username and mqtt.password go together")
    if not 0 <= config.ops.http_port <= 65535:
        raise ConfigError(f"ops.http_port must be between 0 and 65535, got {config.ops.http_port}")
    if config.ops.log_format not in ("json", "text"):
        raise ConfigError(f"ops.log_format must be json or text, got {config.ops.log_format!r}")
    levels = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    for name in ("log_level", "kafka_client_log_level"):
        if getattr(config.ops, name) not in levels:
            raise ConfigError(
                f"ops.{name} must be one of {', '.join(levels)}, got {getattr(config.ops, name)!r}"
            )
    topics = config.topics()
    if len(set(topics)) != len(topics):
        raise ConfigError(f"the gateway's topics must all differ, got {topics}")
