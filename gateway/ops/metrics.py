"""The gateway's Prometheus metrics, in a registry of their own (one per service instance)."""

from __future__ import annotations

import platform

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from gateway import __version__

# A `_created` series beside every counter doubles what is scraped and says nothing an
# operator uses (the process start time does).
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client


class Metrics:
    """Every series of the gateway's own is named connect_gateway_*, with its unit (seconds,
    records) in the name; the process and platform collectors keep their standard names."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        # The process (CPU, memory, open files, start time) and the interpreter, as every
        # Prometheus client exposes them; and which build is running.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        Info("connect_gateway_build", "The running build", registry=r).info(
            {"version": __version__, "python": platform.python_version()}
        )
        self.messages_in = Counter(
            "connect_gateway_messages_in",
            "Records read from the inbound and retry topics",
            ["side", "message_type"],
            registry=r,
        )
        self.processed = Counter(
            "connect_gateway_messages_processed",
            "Records decided: translated, rejected, retry, resend, duplicate, answered",
            ["side", "outcome"],
            registry=r,
        )
        self.rejected = Counter(
            "connect_gateway_messages_rejected",
            "Records rejected, by ISO reason code",
            ["side", "reason"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "connect_gateway_dead_lettered", "Records copied to the DLQ", ["side"], registry=r
        )
        self.retried = Counter(
            "connect_gateway_retried", "Records sent to a retry topic", ["side"], registry=r
        )
        self.published = Counter(
            "connect_gateway_records_published",
            "Records the relay published",
            ["topic"],
            registry=r,
        )
        self.latency = Histogram(
            "connect_gateway_processing_seconds",
            "From a record's broker timestamp to its batch being committed",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.lag = Gauge(
            "connect_gateway_consumer_lag_records",
            "Records behind the partition's high watermark",
            ["topic", "partition"],
            registry=r,
        )
        self.cycle_position = Gauge(
            "connect_gateway_cycle_position",
            "Net position (major units) of each participant in the last closed cycle",
            ["currency", "participant"],
            registry=r,
        )
        self.outbox_unsent = Gauge(
            "connect_gateway_outbox_unsent_records",
            "Outbox rows committed and not yet published (the relay's lag, all instances)",
            registry=r,
        )
        self.offset_runs = Gauge(
            "connect_gateway_offset_runs",
            "Offsetting runs that released held payments (all instances, since the store began)",
            registry=r,
        )
        self.offset_released = Gauge(
            "connect_gateway_offset_released_payments",
            "Held payments released by offsetting (all instances)",
            registry=r,
        )
        self.liquidity_saved = Gauge(
            "connect_gateway_liquidity_saved",
            "Gross released by offsetting minus the net change of positions it made "
            "(major units of the cap currency, all instances)",
            registry=r,
        )
        self.held_payments = Gauge(
            "connect_gateway_held_payments",
            "Payments queued for their payer's net debit cap (settlement.cap_policy = queue)",
            ["currency", "participant"],
            registry=r,
        )
        self.held_amount = Gauge(
            "connect_gateway_held_amount",
            "Their total (major units of the currency)",
            ["currency", "participant"],
            registry=r,
        )
        self.cycles_closed = Counter(
            "connect_gateway_cycles_closed",
            "Cycles closed, by outcome",
            ["currency", "status"],
            registry=r,
        )
        self.mqtt_connected = Gauge(
            "connect_gateway_mqtt_connected", "1 while the MQTT link is up", registry=r
        )
        self.mqtt_dropped = Counter(
            "connect_gateway_mqtt_events_dropped", "Events dropped: the buffer was full", registry=r
        )
        self.mqtt_refused = Counter(
            "connect_gateway_control_commands_refused",
            "Commands from clients not allowed",
            registry=r,
        )
        self.ready = Gauge("connect_gateway_ready", "1 while /readyz answers 200", registry=r)
        self.directory_version = Gauge(
            "connect_gateway_directory_version_info",
            "1 for the participant directory version in force",
            ["version"],
            registry=r,
        )
        self.directory_refused = Gauge(
            "connect_gateway_directory_versions_refused",
            "Directory versions refused since start (the previous one stays in force)",
            registry=r,
        )
        self.certificate_expiry = Gauge(
            "connect_gateway_certificate_expiry_seconds",
            "Seconds until each enrolled signing certificate expires (certificate: the first 16 "
            "hex digits of its SHA-256 fingerprint)",
            ["participant", "certificate"],
            registry=r,
        )

        self.signing_certificate_expiry = Gauge(
            "connect_gateway_signing_certificate_expiry_seconds",
            "Seconds until the gateway's own signing certificate expires",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
