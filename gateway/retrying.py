"""Transient faults retried in place: the broker or the database may be back in a moment."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka.errors import KafkaError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

T = TypeVar("T")


def broker_fault(exc: BaseException) -> bool:
    """Any error the Kafka client reports. A restarting broker answers in-flight requests
    with whatever it has (aiokafka's UnknownError, not marked retriable, was seen ending the
    service), so the class is no guide; and every retried step is safe to repeat (the relay
    republishes the same keys and bytes). A fault that does not pass still ends the service,
    after kafka.transient_retry_seconds."""
    return isinstance(exc, KafkaError)


async def retrying(
    make: Callable[[], Awaitable[T]], transient: Callable[[BaseException], bool], seconds: float
) -> T:
    """`make()` until it succeeds, retrying the faults `transient` names with exponential
    backoff and jitter for `seconds`; then the last fault is raised."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(transient),
        wait=wait_exponential_jitter(multiplier=0.1, max=5),
        stop=stop_after_delay(seconds),
        reraise=True,
    ):
        with attempt:
            return await make()
    raise AssertionError("unreachable")  # pragma: no cover
