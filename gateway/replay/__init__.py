"""Capture and replay of Kafka traffic (docs/capture-format.md), and the pytest plugin."""
