#!/usr/bin/env bash
# Shared set-up for the two README commands: system packages (when root and missing), then a
# virtual environment with the project and its test tools. Idempotent; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
# The demo makes throw-away signing keys with openssl.
command -v openssl >/dev/null || need_apt+=(openssl)
if [[ "${1:-}" == "--with-test-servers" ]]; then
  command -v mosquitto >/dev/null || [[ -x /usr/sbin/mosquitto ]] || need_apt+=(mosquitto)
  # The PostgreSQL state-store tests start their own cluster with initdb/pg_ctl.
  command -v initdb >/dev/null || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
    || need_apt+=(postgresql)
  # promtool runs the alert rules' unit tests (deploy/prometheus/alerts.test.yaml).
  command -v promtool >/dev/null || need_apt+=(prometheus)
fi
if ((${#need_apt[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing system packages: ${need_apt[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "setup: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# Debian may ship mosquitto, postgresql and prometheus enabled as services; the tests start
# their own servers on free ports (and need only prometheus' promtool), and never use these.
for service in mosquitto postgresql prometheus; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$service" 2>/dev/null; then
    systemctl stop "$service" || true
  fi
done

python3 - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"setup: Python 3.11 or newer is needed, found {sys.version.split()[0]}")
PY
[[ -x .venv/bin/python ]] || python3 -m venv .venv
# The demo needs the package alone; the tests also need the test tools. Each is installed once
# per version of pyproject.toml (the package is editable: code changes need no reinstall), and
# an install for the tests serves the demo too.
version=$(sha256sum pyproject.toml | cut -c1-16)
if [[ "${1:-}" == "--with-test-servers" ]]; then
  target='.[test]'; serves=(test)
else
  target='.[embedded]'; serves=(run test)
fi
installed=false
for kind in "${serves[@]}"; do [[ -f ".venv/.installed-$kind-$version" ]] && installed=true; done
if ! $installed; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e "$target"
  touch ".venv/.installed-${serves[0]}-$version"
fi
