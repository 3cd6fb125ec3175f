#!/usr/bin/env bash
# The test command of README.md: set up (including Mosquitto), lint, type-check, run the suite.
# Kafka tests use the embedded broker, or the cluster in KAFKA_BOOTSTRAP_SERVERS when set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-test-servers
.venv/bin/ruff check gateway tests bench scripts
.venv/bin/ruff format --check gateway tests bench scripts
.venv/bin/mypy
# Four workers: the suite spends most of its time waiting on servers (group joins, restarts,
# fetch waits), not on the CPU; each worker starts its own brokers and PostgreSQL on free
# ports. Serial it took ~9 minutes here, on four workers ~3. `-n 0` (or any -n) overrides.
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-4}" "$@"
