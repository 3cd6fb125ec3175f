#!/usr/bin/env bash
# The test command of README.md: set up (including Mosquitto), lint, type-check, run the suite.
# Kafka tests use the embedded broker, or the cluster in KAFKA_BOOTSTRAP_SERVERS when set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-test-servers
.venv/bin/ruff check gateway tests bench scripts
.venv/bin/ruff format --check gateway tests bench scripts
.venv/bin/mypy
# Up to four workers (two per CPU): the suite spends most of its time waiting on servers
# (group joins, restarts, fetch waits), not on the CPU; each worker starts its own brokers and
# PostgreSQL on free ports. On 2 vCPUs: ~9 minutes in one process, ~3 on four workers.
# PYTEST_WORKERS=0 runs it in one process; a -n among the arguments overrides both.
cpus=$(nproc 2>/dev/null || echo 1)
workers=${PYTEST_WORKERS:-$((cpus * 2 < 4 ? cpus * 2 : 4))}
.venv/bin/python -m pytest -n "$workers" "$@"
