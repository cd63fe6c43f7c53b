#!/usr/bin/env bash
# MQTT conformance (issue 13; ./build.sh conformance): the Eclipse Paho interoperability suites (paho.mqtt.testing,
# client_test.py for MQTT 3.1.1 and client_test5.py for MQTT 5) against the embedded broker (`fma-edge broker serve`)
# and against mosquitto on this machine, one after the other on loopback. Prints a markdown table of passed/ran per
# suite and broker and the names of the failed tests (figures, not pass/fail; docs/mqtt.md records them).
#
#   PAHO_TESTING_SRC=DIR   a checkout of https://github.com/eclipse/paho.mqtt.testing (measured at commit 9d7bb80);
#                          without it the script clones that repository into artifacts/paho.mqtt.testing
#   CONFORMANCE_PORT=18851 first of two ports (embedded, mosquitto)
#   FMA_EDGE               the fma-edge executable (default artifacts/bin/fma-edge)
# Exit: 0 the suites ran (whatever they found), 2 a prerequisite is missing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${FMA_EDGE:-$ROOT/artifacts/bin/fma-edge}
PORT=${CONFORMANCE_PORT:-18851}
OUT="$ROOT/artifacts/conformance"
PAHO_COMMIT=9d7bb80
say() { printf '\033[1;32m[conformance]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[conformance] error:\033[0m %s\n' "$*" >&2; exit 2; }

[ -x "$BIN" ] || die "run ./build.sh first"
[ -x /usr/sbin/mosquitto ] || die "mosquitto is missing (./build.sh conformance installs it)"
command -v python3 >/dev/null || die "python3 is missing"
SRC=${PAHO_TESTING_SRC:-$ROOT/artifacts/paho.mqtt.testing}
if [ ! -f "$SRC/interoperability/client_test5.py" ]; then
  [ -n "${PAHO_TESTING_SRC:-}" ] && die "PAHO_TESTING_SRC=$SRC has no interoperability/client_test5.py"
  say "cloning paho.mqtt.testing into $SRC"
  git clone -q https://github.com/eclipse/paho.mqtt.testing "$SRC" \
    || die "could not clone paho.mqtt.testing (no network?); set PAHO_TESTING_SRC to a checkout"
  git -C "$SRC" checkout -q "$PAHO_COMMIT" || say "commit $PAHO_COMMIT not found; running the clone's HEAD"
fi
say "paho.mqtt.testing at $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo 'unknown commit')"
for p in "$PORT" $((PORT + 1)); do
  (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null && die "port $p is in use (set CONFORMANCE_PORT)"
done
rm -rf "$OUT"; mkdir -p "$OUT"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_port() { # port seconds
  local deadline=$((SECONDS + $2))
  until (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || die "nothing listens on port $1 after $2 s (see $OUT/*.log)"
    sleep 0.2
  done
}

"$BIN" broker serve --bind 127.0.0.1 --port "$PORT" >"$OUT/embedded.log" 2>&1 &
pids+=($!)
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' $((PORT + 1)) >"$OUT/mosquitto.conf"
/usr/sbin/mosquitto -c "$OUT/mosquitto.conf" >"$OUT/mosquitto.log" 2>&1 &
pids+=($!)
wait_port "$PORT" 30
wait_port $((PORT + 1)) 10

rows=()
for suite in client_test client_test5; do
  for broker in embedded mosquitto; do
    port=$PORT; [ "$broker" = mosquitto ] && port=$((PORT + 1))
    say "$suite against $broker (port $port)"
    # Each test has 60 s (paho_suite.py), a whole suite 20 minutes.
    line=$(cd "$SRC/interoperability" && timeout 1200 python3 "$ROOT/tools/scripts/paho_suite.py" . "$suite" 127.0.0.1 "$port" \
      2>"$OUT/$suite-$broker.txt" | grep '^{"suite"' | tail -1) || true
    [ -n "$line" ] || line='{"suite":"'$suite'","ran":0,"failed":["(no result: see '$OUT/$suite-$broker.txt')"],"errors":[]}'
    echo "$line" >"$OUT/$suite-$broker.json"
    rows+=("$(python3 -c '
import json, sys
r = json.loads(sys.argv[1]); bad = r["failed"] + r["errors"]
print("| %s | %s | %d/%d | %s |" % (r["suite"], sys.argv[2], r["ran"] - len(bad), r["ran"], ", ".join(bad) or "-"))
' "$line" "$broker")")
  done
done

echo
echo "| suite | broker | passed | failed or errored |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
say "logs and per-suite JSON in $OUT"
