#!/usr/bin/env bash
# The FmaEdge demo (./build.sh demo): the real daemon with a folder source, the embedded MQTT broker and the
# shipped model (models/, trained by fma-train on the defect set). It feeds the shipped real defect images
# (tools/demo/images, licences there) into the watched folder and prints every result as it arrives over
# MQTT, then the daemon's own status. Everything lives in artifacts/demo; nothing outside the repo is used.
#   DEMO_PORT=18830  broker port (1883 is often taken by a system mosquitto)
#   DEMO_DELAY=0.2   seconds between images
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN="$ROOT/artifacts/bin"
DEMO="$ROOT/artifacts/demo"
PORT=${DEMO_PORT:-18830}
DELAY=${DEMO_DELAY:-0.2}
MODEL="$ROOT/models/defects-convnext_femto-128.onnx"
say() { printf '\033[1;32m[demo]\033[0m %s\n' "$*" >&2; }

[ -x "$BIN/fma-edge" ] || { echo "run ./build.sh first" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "missing $MODEL" >&2; exit 1; }
rm -rf "$DEMO"; mkdir -p "$DEMO"/{inbox,models,state,run}
cp "$MODEL" "$DEMO/models/"
cat > "$DEMO/fma-edge.json" <<JSON
{
  "FmaEdge": {
    "NodeName": "demo",
    "Paths": { "StateDir": "$DEMO/state", "ModelsDir": "$DEMO/models", "RuntimeDir": "$DEMO/run" },
    "Sources": [ { "Id": "inbox", "Type": "folder", "Path": "$DEMO/inbox", "Completion": "rename", "After": "move" } ],
    "Output": { "Type": "mqtt" },
    "Mqtt": { "Host": "127.0.0.1", "Port": $PORT, "Embedded": { "Enabled": true, "BindAddress": "127.0.0.1", "Port": $PORT } }
  }
}
JSON

say "starting fma-edge (folder source $DEMO/inbox, embedded broker 127.0.0.1:$PORT, model $(basename "$MODEL"))"
"$BIN/fma-edge" run --config "$DEMO/fma-edge.json" > "$DEMO/daemon.log" 2>&1 &
DAEMON=$!
WATCH=""
cleanup() {
  [ -n "$WATCH" ] && kill "$WATCH" 2>/dev/null || true
  kill -TERM "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null || true
}
trap cleanup EXIT

for _ in $(seq 1 120); do
  "$BIN/fma-edge" status --config "$DEMO/fma-edge.json" --json >/dev/null 2>&1 && break
  kill -0 "$DAEMON" 2>/dev/null || { echo "fma-edge exited; its log:" >&2; cat "$DEMO/daemon.log" >&2; exit 1; }
  sleep 0.5
done
say "daemon is up"

mapfile -t IMAGES < <(cd "$ROOT/tools/demo/images" && find . -name '*.png' | sort)
"$BIN/fma-edge" watch --port "$PORT" --topic "fma/demo/#" --count "${#IMAGES[@]}" --timeout 60 &
WATCH=$!
sleep 1

say "feeding ${#IMAGES[@]} real defect images (file name = true class, then the original name)"
for rel in "${IMAGES[@]}"; do
  rel=${rel#./}
  name=$(echo "$rel" | tr '/' '~')
  # Writers should rename complete files in: copy to a temporary name the source ignores, then rename.
  cp "$ROOT/tools/demo/images/$rel" "$DEMO/inbox/$name.part"
  mv "$DEMO/inbox/$name.part" "$DEMO/inbox/$name"
  sleep "$DELAY"
done

wait "$WATCH" && WATCH="" || { WATCH=""; say "not every result arrived; see $DEMO/daemon.log"; }
say "the daemon's own view (fma-edge status):"
"$BIN/fma-edge" status --config "$DEMO/fma-edge.json" || true
say "processed files are in $DEMO/inbox/done; results stay in the outbox until delivered ($DEMO/state)"
