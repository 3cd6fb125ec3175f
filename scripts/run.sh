#!/usr/bin/env bash
# The main-job command of README.md, on the embedded default: `connect-gateway run` with the
# embedded Kafka-compatible broker and SQLite state, fed the bundled sample traffic by
# `connect-gateway publish` exactly as partners would publish it; the operator closes the
# settlement cycle (`connect-gateway cycle close`); then what came out on every topic is listed
# (and saved under run-output/), and the gateway stopped with SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate

out=run-output
rm -rf "$out" && mkdir -p "$out"
port=$(python -c 'from gateway.embedded_broker import free_port; print(free_port())')
export CONNECT_GATEWAY__KAFKA__EMBEDDED_PORT=$port
ops_port=$(python -c 'from gateway.embedded_broker import free_port; print(free_port())')
export CONNECT_GATEWAY__OPS__HTTP_PORT=$ops_port
export CONNECT_GATEWAY__STATE__SQLITE_PATH=$out/state.sqlite3
# Short retry delays, so the answers whose originals never come are refused within seconds.
export CONNECT_GATEWAY__KAFKA__RETRY_DELAYS_MS=500,1000
# Cycles close on the operator's command below, whatever the time of day.
export CONNECT_GATEWAY__SETTLEMENT__CUT_OFFS=
unset KAFKA_BOOTSTRAP_SERVERS

echo "== throw-away signing keys: one per sender, one for the gateway (signatures required)"
keys=$out/keys
mkdir -p "$keys"
cp data/participants.toml "$keys/participants.toml"
# Every sender the directory lists needs a certificate once signatures are required.
for bic in HPCBCNSHXXX JADBCNBJXXX VHBKHKHHXXX KLBKHKHHXXX CCDCCNBJXXX SHCHCNSHXXX CMUAHKHHXXX HKICHKHHXXX \
           SHHKHKHHSTL CIPSCNSHXXX \
           SHHKCNSHGWY; do
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
    -subj "/CN=$bic" -keyout "$keys/$bic.key" -out "$keys/$bic.pem" 2>/dev/null
  sed -i "s/^bic = \"$bic\"\$/bic = \"$bic\"\ncertificates = [\"$bic.pem\"]/" \
    "$keys/participants.toml"
done
export CONNECT_GATEWAY__TRANSLATION__DIRECTORY=$keys/participants.toml
export CONNECT_GATEWAY__SECURITY__REQUIRE_SIGNATURES=true
export CONNECT_GATEWAY__SECURITY__SIGNING_KEY_FILE=$keys/SHHKCNSHGWY.key
export CONNECT_GATEWAY__SECURITY__SIGNING_CERTIFICATE_FILE=$keys/SHHKCNSHGWY.pem
# A partner signs each message with its own key (AppHdr Fr) before publishing it.
publish() {
  local side=$2; shift 2
  local files=()
  for f in "$@"; do
    local sender
    sender=$(grep -m1 -A3 '<Fr>' "$f" | grep -o 'BICFI>[A-Z0-9]*' | head -1 | cut -d'>' -f2 || true)
    if [[ -n "$sender" && "$sender" != SHHKCNSHGWY && -f "$keys/$sender.key" ]]; then
      connect-gateway sign "$f" --key "$keys/$sender.key" --cert "$keys/$sender.pem" \
        >"$keys/signed-$(basename "$f")"
      files+=("$keys/signed-$(basename "$f")")
    else
      # Not XML, or in the gateway's own name (only the gateway holds its key): published as
      # it is, and refused.
      files+=("$f")
    fi
  done
  connect-gateway publish --side "$side" "${files[@]}"
}

echo "== connect-gateway run (embedded broker on 127.0.0.1:$port, state in $out/state.sqlite3)"
connect-gateway run >"$out/gateway.log" 2>&1 &
gateway=$!
trap 'kill $gateway 2>/dev/null || true' EXIT
for _ in $(seq 300); do
  grep -q "gateway ready" "$out/gateway.log" && break
  kill -0 $gateway 2>/dev/null || { cat "$out/gateway.log"; exit 1; }
  sleep 0.1
done
grep -E "embedded|gateway ready" "$out/gateway.log"

echo "== partners publish: instructions from both sides"
publish --side onshore samples/onshore/{pacs.008,pacs.009,sese.023}*.xml
publish --side offshore samples/offshore/{pacs.008,pacs.009,sese.023}*.xml
sleep 2
echo "== answers to those, from the other side; answers to nothing; a pacs.029 (gateway-only)"
publish --side offshore samples/offshore/{pacs.002,pacs.004,sese.024,sese.025}*.xml
publish --side onshore samples/onshore/{pacs.002,pacs.004,sese.024,sese.025}*.xml
publish --side onshore samples/onshore/{admi.002,pacs.029}*.xml
echo "== a copy of a processed message (no second effect), a hostile one, one for the wrong side"
publish --side onshore samples/onshore/pacs.008.001.08.xml
printf '<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><Document>&x;</Document>' \
  >"$out/hostile.xml"
publish --side onshore "$out/hostile.xml" samples/offshore/pacs.009.001.08.xml
echo "== one more payment, onshore to offshore only, so the cycle's net positions are not zero"
sed -e 's/ON-BIZ-P8-0001/ON-BIZ-P8-0002/; s/ON-MSG-P8-0001/ON-MSG-P8-0002/' \
    -e 's/0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01/6f1d2c3b-4a5e-4f60-8a71-92b3c4d5e6f7/' \
    -e 's/>1250000.00</>250000.00</' samples/onshore/pacs.008.001.08.xml >"$out/one-way.xml"
publish --side onshore "$out/one-way.xml"
echo "== a payment sent by mistake: its payer asks to cancel it, the receiver accepts (camt.056, camt.029 CNCL)"
mistake=7a3e5c1d-9b2f-4e8a-b6c4-1d2e3f4a5b6c
sed -e 's/ON-BIZ-P8-0001/ON-BIZ-P8-0003/; s/ON-MSG-P8-0001/ON-MSG-P8-0003/' \
    -e "s/0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01/$mistake/" \
    -e 's/>1250000.00</>80000.00</' samples/onshore/pacs.008.001.08.xml >"$out/mistake.xml"
sed -e 's/ON-MSG-P8-0001/ON-MSG-P8-0003/' -e "s/0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01/$mistake/" \
    -e 's/>1250000.00</>80000.00</' samples/onshore/camt.056.001.08.xml >"$out/cancel.xml"
sed -e 's/ON-MSG-P8-0001/ON-MSG-P8-0003/' -e "s/0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01/$mistake/" \
    samples/offshore/camt.029.001.09.xml >"$out/cancelled.xml"
publish --side onshore "$out/mistake.xml"
sleep 1
publish --side onshore "$out/cancel.xml"
sleep 1
publish --side offshore "$out/cancelled.xml"
sleep 6  # the uncorrelated answers use their retries (0.5 s, 1 s), then are refused

echo "== the operator closes the CNY settlement cycle (net positions -> pacs.029 to the RTGS)"
connect-gateway cycle close --currency CNY
connect-gateway cycle report CNY-000001 --format csv
connect-gateway cycle report CNY-000001 --format json | python -c \
  'import json, sys; print("voided before the close:", json.load(sys.stdin)["voided"])'
sleep 2  # the service's relay publishes what the close queued
echo "== the RTGS confirms the pacs.029 (ACSC): the cycle is settled"
publish --side offshore samples/offshore/rtgs/pacs.002.001.10-settles-CNY-000001.xml
sleep 2
echo "== the payer asks where its payment is (pacs.028) and for its account's report (camt.060);"
echo "   the receiver asks for the settled cycle's statement (camt.060)"
publish --side onshore samples/onshore/{pacs.028,camt.060}*.xml
publish --side offshore samples/offshore/camt.060*.xml
sleep 2
echo "== one payment's story across both sides (connect-gateway trace)"
connect-gateway trace 0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01

echo "== what the gateway published (values saved under $out/<topic>/)"
python scripts/show_topics.py "127.0.0.1:$port" "$out" \
  offshore.outbound onshore.outbound gateway.dlq gateway.reports
echo "== what an operator's probes and Prometheus see (http://127.0.0.1:$ops_port)"
python - "$ops_port" <<'PY'
import sys, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
print("readyz:", urllib.request.urlopen(base + "/readyz", timeout=5).read().decode().strip())
for line in urllib.request.urlopen(base + "/metrics", timeout=5).read().decode().splitlines():
    if line.startswith(("connect_gateway_messages_processed_total",
                        "connect_gateway_messages_rejected_total",
                        "connect_gateway_cycles_closed_total")):
        print(" ", line)
PY
echo "== stop (SIGTERM): finish the batch, commit, leave the group"
kill -TERM $gateway
wait $gateway
trap - EXIT
tail -n 1 "$out/gateway.log"
python - "$out/state.sqlite3" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
q = lambda sql: db.execute(sql).fetchone()[0]
print(f"state: {q('SELECT count(*) FROM claims')} claims, "
      f"{q('SELECT count(*) FROM obligations')} obligations, "
      f"{q('SELECT count(*) FROM outbox WHERE sent_at IS NULL')} outbox rows unsent")
for row in db.execute("SELECT id, status, cut_off FROM cycles ORDER BY id"):
    print("cycle %s: %s (cut-off %s)" % row)
PY
cat <<EOF
done: outputs in $out/ (each topic's values under $out/<topic>/, the service's log in
$out/gateway.log). What the listing shows:
  attempt 2, 3    an answer that came before its original waited on a retry topic
  NARR            an answer to nothing the gateway sent: refused once its retries ran out
  FF01            a message that is not valid ISO 20022 (or not of this side's dialect)
  camt.056/029    the payment sent by mistake: cancelled across before the close, so the
                  cycle report lists it under "voided" and nets without it
  camt.054        each participant whose position moved, once the RTGS settled the cycle
  pacs.002 (last) the gateway's answer to the payer's pacs.028: returned by its receiver
  camt.052/053    the reports asked for: the payer's open cycle, the receiver's settled one
  DS21            an unsigned message (the pacs.029 in the gateway's own name: no sender holds
                  its key); every partner message here is signed by its sender (keys in
                  $out/keys, made above), and everything the gateway published carries its own
                  signature (AppHdr Sgntr)
Try next (. .venv/bin/activate first):
  connect-gateway verify $out/keys/signed-pacs.008.001.08.xml --directory $out/keys/participants.toml
  connect-gateway translate --from onshore samples/onshore/pacs.008.001.08.xml
  connect-gateway translate --from offshore samples/onshore/pacs.008.001.08.xml   # exit 3
  connect-gateway run                      # then, in another shell:
  connect-gateway publish --side onshore samples/onshore/pacs.008.001.08.xml
  connect-gateway read offshore.outbound --from-beginning --idle 3
  connect-gateway cycle close --currency CNY && connect-gateway cycle list
  connect-gateway trace 0b7c3f2e-6d1a-4c55-9e8b-2f4a6c1d9e01 --format json
  connect-gateway publish --side offshore samples/offshore/rtgs/pacs.002.001.10-settles-CNY-000001.xml
EOF
