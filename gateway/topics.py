"""Creating the gateway's topics, idempotently, on whatever cluster is configured."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

_ALREADY_EXISTS = 36


async def ensure_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int = 3,
    replication: int = 1,
    options: dict[str, Any] | None = None,
) -> None:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="connect-gateway-admin", **(options or {})
    )
    await admin.start()
    try:
        wanted = sorted(set(names))
        existing = set(await admin.list_topics())
        missing = [n for n in wanted if n not in existing]
        if not missing:
            return
        response = await admin.create_topics(
            [
                NewTopic(n, num_partitions=partitions, replication_factor=replication)
                for n in missing
            ]
        )
        for topic, code, message in (tuple(t)[:3] for t in response.topic_errors):
            if code not in (0, _ALREADY_EXISTS):
                raise RuntimeError(f"cannot create topic {topic}: error {code} {message}")
    finally:
        await admin.close()
