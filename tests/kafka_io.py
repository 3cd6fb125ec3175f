"""Plain Kafka clients for the tests (shipped with the package for the pytest plugin)."""

from gateway.replay.clients import publish, read_topic

__all__ = ["publish", "read_topic"]
