#!/usr/bin/env bash
# The main-job command of README.md, on the embedded default. Until the Kafka pipeline lands,
# the main job is the offline gateway core: every bundled sample through `translate` (accepted
# messages go to the other side, refused ones come back as rejects), then the same samples
# published through the embedded broker exactly as a partner would publish them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate

out=run-output
rm -rf "$out" && mkdir -p "$out"
echo "== translate: every bundled sample from its own side (outputs in $out/)"
for f in samples/onshore/*.xml samples/offshore/*.xml; do
  side=$(basename "$(dirname "$f")")
  name="$side-$(basename "$f")"
  if connect-gateway translate --from "$side" "$f" >"$out/$name" 2>"$out/err"; then
    echo "  accepted  $side  $(basename "$f")  -> $out/$name"
  else
    echo "  REJECTED  $side  $(basename "$f"): $(cat "$out/err")"
  fi
done
echo "== translate: a message sent to the wrong side, and a hostile one"
connect-gateway translate --from offshore samples/onshore/pacs.008.001.08.xml \
  >"$out/reject-wrong-side.xml" || echo "  (exit $?: admi.002 in $out/reject-wrong-side.xml)"
printf '<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><Document>&x;</Document>' |
  connect-gateway translate --from onshore - >"$out/reject-xxe.xml" ||
  echo "  (exit $?: admi.002 in $out/reject-xxe.xml)"

echo "== embedded broker: publish the onshore samples to onshore.inbound"
port=$(python -c 'from gateway.embedded_broker import free_port; print(free_port())')
connect-gateway broker --port "$port" >"$out/broker.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null; wait $broker 2>/dev/null' EXIT
python -c "from gateway.embedded_broker import wait_for_port; wait_for_port('127.0.0.1', $port, 20, None)"
connect-gateway publish --side onshore --bootstrap "127.0.0.1:$port" samples/onshore/*.xml
echo "done: translations and rejects are in $out/"
