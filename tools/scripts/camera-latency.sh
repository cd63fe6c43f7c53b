#!/usr/bin/env bash
# Capture-to-result latency of a GigE Vision camera (issue 12; ./build.sh camera-latency): Aravis's camera simulator
# (arv-fake-gv-camera-0.8, 512x512 Mono8, free-running at 10 fps on loopback) -> fma-edge run (GenICam backend, CPU,
# the shipped model, embedded broker) -> mosquitto_sub. For every result it prints nothing; at the end, p50/p95/max
# of three intervals, in ms:
#   capture -> committed   enqueued_at - captured_at (frame complete on the host, decode, preprocess, inference, commit)
#   capture -> published   published_at - captured_at (plus the publisher's send)
#   capture -> received    the subscriber's receive time (mosquitto_sub %U) - captured_at (plus the broker hop)
# captured_at of a free-running GenICam frame is the host time its last packet arrived (the simulator's own exposure
# clock is not the host's), so the camera's exposure and transfer time are not included.
#
#   LAT_RESULTS=100   results measured (after LAT_WARMUP skipped)
#   LAT_WARMUP=10     first results not counted (model warm-up, first connect)
#   LAT_FPS=10        the camera's frame rate
#   LAT_PORT=18851    embedded broker port
#   LAT_DIR=artifacts/camera-latency
#   FMA_EDGE          the fma-edge executable (default artifacts/bin/fma-edge)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${FMA_EDGE:-$ROOT/artifacts/bin/fma-edge}
MODEL="$ROOT/models/defects-convnext_femto-128.onnx"
N=${LAT_RESULTS:-100}
WARMUP=${LAT_WARMUP:-10}
FPS=${LAT_FPS:-10}
PORT=${LAT_PORT:-18851}
OUT=${LAT_DIR:-$ROOT/artifacts/camera-latency}
say() { printf '\033[1;32m[camera-latency]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[camera-latency] error:\033[0m %s\n' "$*" >&2; exit 1; }

[ -x "$BIN" ] || die "run ./build.sh first"
for t in mosquitto_sub arv-fake-gv-camera-0.8 python3; do command -v "$t" >/dev/null || die "$t is missing (./build.sh camera-latency installs it)"; done
(echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && die "port $PORT is in use (set LAT_PORT)"
rm -rf "$OUT"; mkdir -p "$OUT"/{models,state,run}
cp "$MODEL" "$OUT/models/"

CAM="" DAEMON=""
cleanup() {
  [ -n "$DAEMON" ] && kill -TERM "$DAEMON" 2>/dev/null && timeout 60 tail --pid="$DAEMON" -f /dev/null || true
  [ -n "$CAM" ] && kill "$CAM" 2>/dev/null || true
}
trap cleanup EXIT

arv-fake-gv-camera-0.8 -i 127.0.0.1 -s LAT1 >"$OUT/camera.log" 2>&1 &
CAM=$!
cat > "$OUT/fma-edge.json" <<JSON
{
  "FmaEdge": {
    "NodeName": "latency",
    "Paths": { "StateDir": "$OUT/state", "ModelsDir": "$OUT/models", "RuntimeDir": "$OUT/run" },
    "Inference": { "Providers": "cpu" },
    "Sources": [ { "Id": "cam1", "Type": "camera", "Backend": "aravis", "Uri": "LAT1", "FpsLimit": 0,
                   "GenICam": { "PixelFormat": "Mono8", "FrameRate": $FPS } } ],
    "Output": { "Type": "mqtt" },
    "Mqtt": { "Host": "127.0.0.1", "Port": $PORT, "Embedded": { "Enabled": true, "Port": $PORT } },
    "Logging": { "Level": "Warning" }
  }
}
JSON
say "fma-edge run: fake GigE camera at $FPS fps -> CPU (femto@128, the shipped model) -> embedded broker on $PORT"
"$BIN" run --config "$OUT/fma-edge.json" >"$OUT/daemon.log" 2>&1 &
DAEMON=$!
for _ in $(seq 1 600); do (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
(echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || die "the daemon's broker did not come up (see $OUT/daemon.log)"

TOTAL=$((N + WARMUP))
say "receiving $TOTAL results (the first $WARMUP are not counted)"
timeout $((TOTAL / FPS + 120)) mosquitto_sub -h 127.0.0.1 -p "$PORT" -i fma-latency-sub -t "fma/latency/cam1/result" -q 1 -C "$TOTAL" -F '%U %p' \
  >"$OUT/results.txt" || die "fewer than $TOTAL results within the deadline (see $OUT/daemon.log)"

python3 - "$OUT/results.txt" "$WARMUP" "$FPS" <<'PY'
import json, sys, datetime
path, warmup, fps = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def t(s): return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
rows = []
for line in open(path):
    received, payload = line.split(" ", 1)
    r = json.loads(payload)
    c = t(r["captured_at"])
    rows.append(((t(r["enqueued_at"]) - c) * 1000, (t(r["published_at"]) - c) * 1000, (float(received) - c) * 1000,
                 r["camera"]["frame_id"], r["latency_ms"]["infer"]))
rows = rows[warmup:]
ids = [r[3] for r in rows]
# GigE Vision block ids run 1..65535 and wrap to 1 (0 is reserved): a frame not classified is a gap between neighbours.
missed = sum((b - a) % 65535 - 1 for a, b in zip(ids, ids[1:]))
def pct(v, p): v = sorted(v); return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
print(f"fake GigE camera at {fps} fps, {len(rows)} results, frame ids {ids[0]}..{ids[-1]} "
      f"({len(set(ids))} distinct, {missed} frames in between not classified)")
print(f"{'interval (ms)':24} {'p50':>8} {'p95':>8} {'max':>8}")
for i, name in enumerate(["capture -> committed", "capture -> published", "capture -> received", "", "inference alone"]):
    if name:
        v = [r[i] for r in rows]
        print(f"{name:24} {pct(v, 50):8.1f} {pct(v, 95):8.1f} {max(v):8.1f}")
PY
