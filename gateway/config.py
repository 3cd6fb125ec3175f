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


@dataclass(frozen=True)
class KafkaSection:
    bootstrap_servers: str = ""  # empty: start the embedded broker
    embedded_port: int = 9092  # the embedded broker's port on 127.0.0.1 (0: any free port)
    client_id: str = "connect-gateway"
    group_id: str = "connect-gateway"
    batch_max_records: int = 500
    # Real Kafka: an idempotent producer (the embedded broker does not support it).
    idempotent_producer: bool = False
    dlq_topic: str = "gateway.dlq"


@dataclass(frozen=True)
class StateSection:
    backend: str = "sqlite"
    sqlite_path: str = "gateway-state.sqlite3"


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

    def side(self, side: Side) -> SideSection:
        return self.onshore if side == "onshore" else self.offshore

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
        elif expected is int:
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{name}.{key} must be an integer, got {value!r}") from None
        elif expected is str and not isinstance(value, str):
            raise ConfigError(f"{name}.{key} must be a string, got {value!r}")
        changes[key] = value
    return dataclasses.replace(current, **changes)


def _check(config: Config) -> None:
    bics = [("gateway.bic", config.gateway.bic)] + [
        (f"{s}.system_bic", config.side(s).system_bic) for s in SIDES
    ]
    for name, bic in bics:
        if not _BIC.fullmatch(bic):
            raise ConfigError(f"{name} must be a BIC (8 or 11 characters), got {bic!r}")
    if config.state.backend != "sqlite":
        # PostgreSQL (several instances sharing state) comes with the rest of the pipeline
        # issue; refusing it here beats accepting a setting that does nothing.
        raise ConfigError(
            f"state.backend must be sqlite (PostgreSQL is not built yet), got "
            f"{config.state.backend!r}"
        )
    if not 1 <= config.kafka.batch_max_records <= 10_000:
        raise ConfigError("kafka.batch_max_records must be between 1 and 10000")
    if config.translation.settlement_date_policy not in ("reject", "roll"):
        raise ConfigError(
            "translation.settlement_date_policy must be reject or roll, got "
            f"{config.translation.settlement_date_policy!r}"
        )
    if not 1024 <= config.gateway.max_message_bytes <= 64 * 1024 * 1024:
        raise ConfigError("gateway.max_message_bytes must be between 1 KiB and 64 MiB")
    topics = [config.side(s).inbound_topic for s in SIDES] + [
        config.side(s).outbound_topic for s in SIDES
    ]
    if len(set(topics)) != len(topics):
        raise ConfigError(f"inbound and outbound topics must all differ, got {topics}")
