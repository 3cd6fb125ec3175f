"""Connection settings shared by every Kafka client the gateway makes (TLS, SASL).

One place, so the consumer, the relay's producer, the admin client and `publish` all reach a
secured cluster the same way. The SASL password goes to the client only, never to a log.
"""

from __future__ import annotations

import ssl
from typing import Any

from gateway.config import KafkaSection


def connection_options(kafka: KafkaSection) -> dict[str, Any]:
    options: dict[str, Any] = {"security_protocol": kafka.security_protocol}
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=kafka.ssl_cafile or None)
        if kafka.ssl_certfile:
            context.load_cert_chain(kafka.ssl_certfile, kafka.ssl_keyfile or None)
        options["ssl_context"] = context
    if kafka.security_protocol.startswith("SASL"):
        options.update(
            sasl_mechanism=kafka.sasl_mechanism,
            sasl_plain_username=kafka.sasl_username,
            sasl_plain_password=kafka.sasl_password,
        )
    return options
