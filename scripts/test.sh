#!/usr/bin/env bash
# The test command of README.md: set up (including Mosquitto), lint, type-check, run the suite.
# Kafka tests use the embedded broker, or the cluster in KAFKA_BOOTSTRAP_SERVERS when set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-test-servers
.venv/bin/ruff check gateway tests bench scripts
.venv/bin/ruff format --check gateway tests bench scripts
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
