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
# Answers (status, return, securities status/confirmation) are translated with the instruction
# they answer, which the other side sent: the gateway routes them back to its sender.
original_of() {  # <side> <message id> -> the other side's original instruction, if any
  local other=offshore; [[ $1 == offshore ]] && other=onshore
  case $2 in
    pacs.002.*|pacs.004.*) echo "--original samples/$other/pacs.008.001.08.xml" ;;
    sese.024.*|sese.025.*) echo "--original samples/$other/sese.023.001.09.xml" ;;
  esac
}
for f in samples/onshore/*.xml samples/offshore/*.xml; do
  side=$(basename "$(dirname "$f")")
  id=$(basename "$f" .xml)
  name="$side-$id.xml"
  # shellcheck disable=SC2046  # the option and its file are two words on purpose
  if connect-gateway translate --from "$side" $(original_of "$side" "$id") "$f" \
      >"$out/$name" 2>"$out/err"; then
    echo "  accepted  $side  $id  -> $out/$name"
  else
    echo "  REJECTED  $side  $id: $(grep -v '^note:' "$out/err")"
  fi
done
echo "  (refused as they should be: the admi.002 samples answer messages this run never sent,"
echo "   and a pacs.029 is only ever issued by the gateway)"
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
