#!/usr/bin/env bash
# The size of the tree (issue 15; ./build.sh scale-check): synthetic 5-level trees of 18, 147 and 1,000 leaves (two real
# val images per leaf, copied), for each: fma-train trains one step at 32 px and exports (the exporter checks ONNX
# Runtime against TorchSharp), fma-edge run serves the model (folder source, embedded broker) and publishes a result per
# image, mosquitto_sub receives them. Prints per tree: leaves, model size, result payload bytes (mean/max), per-image
# inference (ONNX Runtime + the hierarchical decision) and end-to-end p50, and each as a ratio to the 18-leaf tree, so
# growth faster than the number of classes would show. Figures, not pass/fail; docs/performance.md.
#   SCALE_IMAGES=60    images published per tree
#   SCALE_PORT=18861   embedded broker port
#   SCALE_DIR=artifacts/scale
#   FMAEDGE_DATASET    the defect set (default ../shared/datasets/defects)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
EDGE=${FMA_EDGE:-$ROOT/artifacts/bin/fma-edge}
TRAIN=${FMA_TRAIN:-$ROOT/artifacts/bin/fma-train}
N_IMG=${SCALE_IMAGES:-60}
PORT=${SCALE_PORT:-18861}
OUT=${SCALE_DIR:-$ROOT/artifacts/scale}
DATA=${FMAEDGE_DATASET:-$ROOT/../shared/datasets/defects}
say() { printf '\033[1;32m[scale-check]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[scale-check] error:\033[0m %s\n' "$*" >&2; exit 1; }
[ -x "$EDGE" ] && [ -x "$TRAIN" ] || die "run ./build.sh first"
[ -d "$DATA/val" ] || die "no dataset at $DATA (set FMAEDGE_DATASET)"
for t in mosquitto_sub python3; do command -v "$t" >/dev/null || die "$t is missing (./build.sh scale-check installs it)"; done
rm -rf "$OUT"; mkdir -p "$OUT"

DAEMON=""
cleanup() { [ -n "$DAEMON" ] && kill -TERM "$DAEMON" 2>/dev/null && timeout 60 tail --pid="$DAEMON" -f /dev/null || true; }
trap cleanup EXIT

# leaves  mixed radix of the 5 levels (the first LEAVES combinations are the leaves)
for spec in "18 3 2 1 1 3" "147 3 3 3 3 2" "1000 4 5 5 5 2"; do
  read -r LEAVES R1 R2 R3 R4 R5 <<<"$spec"
  T="$OUT/t$LEAVES"
  say "tree of $LEAVES leaves (radix $R1 $R2 $R3 $R4 $R5): two real images per leaf"
  python3 - "$DATA/val" "$T/data" "$LEAVES" "$R1" "$R2" "$R3" "$R4" "$R5" <<'PY'
import glob, itertools, os, shutil, sys
src = sorted(glob.glob(os.path.join(sys.argv[1], "*", "*", "*", "*.png")))
root, n, radix = sys.argv[2], int(sys.argv[3]), [int(r) for r in sys.argv[4:9]]
k = 0
for c in itertools.islice(itertools.product(*[range(r) for r in radix]), n):
    d = os.path.join(root, *["l%d_%s" % (lvl + 1, "_".join(map(str, c[:lvl + 1]))) for lvl in range(len(c))])
    os.makedirs(d)
    for j in range(2):
        shutil.copy(src[k % len(src)], os.path.join(d, "img%d.png" % j)); k += 1
PY
  "$TRAIN" train --data "$T/data" --out "$T/run" --img-size 32 --epochs 1 --batch 64 --max-batches 1 --calib-fraction 0 >"$T/train.log" 2>&1 \
    || die "fma-train failed for $LEAVES leaves (see $T/train.log)"
  mkdir -p "$T"/{models,state,run,inbox}
  cp "$T/run/model.onnx" "$T/models/"
  cat > "$T/fma-edge.json" <<JSON
{ "FmaEdge": { "NodeName": "scale", "Paths": { "StateDir": "$T/state", "ModelsDir": "$T/models", "RuntimeDir": "$T/run" },
  "Inference": { "Providers": "cpu" },
  "Sources": [ { "Id": "inbox", "Type": "folder", "Path": "$T/inbox", "Completion": "rename", "After": "move" } ],
  "Output": { "Type": "mqtt" }, "Mqtt": { "Host": "127.0.0.1", "Port": $PORT, "Embedded": { "Enabled": true, "Port": $PORT } },
  "Logging": { "Level": "Warning" } } }
JSON
  "$EDGE" run --config "$T/fma-edge.json" >"$T/daemon.log" 2>&1 &
  DAEMON=$!
  for _ in $(seq 1 600); do
    kill -0 "$DAEMON" 2>/dev/null || die "fma-edge run exited for $LEAVES leaves (see $T/daemon.log)"
    (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1
  done
  N=$(( N_IMG < 2 * LEAVES ? N_IMG : 2 * LEAVES ))
  timeout 300 mosquitto_sub -h 127.0.0.1 -p "$PORT" -i scale-sub -t "fma/scale/inbox/result" -q 1 -C "$N" >"$T/results.jsonl" &
  SUB=$!
  sleep 1
  mapfile -t FILES < <(find "$T/data" -name "img*.png" | sort)
  for f in "${FILES[@]:0:$N}"; do
    name="$(echo "${f#"$T/data/"}" | tr '/' '-')"; cp "$f" "$T/inbox/.$name.tmp"; mv "$T/inbox/.$name.tmp" "$T/inbox/$name"
  done
  wait "$SUB" || die "fewer than $N results for $LEAVES leaves (see $T/daemon.log)"
  kill -TERM "$DAEMON"; timeout 60 tail --pid="$DAEMON" -f /dev/null || true; DAEMON=""
  printf '%s %s\n' "$LEAVES" "$(stat -c %s "$T/run/model.onnx")" >>"$OUT/models.txt"
done

python3 - "$OUT" <<'PY'
import json, os, statistics, sys
out = sys.argv[1]
sizes = dict(line.split() for line in open(os.path.join(out, "models.txt")))
rows = []
for leaves in ["18", "147", "1000"]:
    res = [json.loads(l) for l in open(os.path.join(out, "t" + leaves, "results.jsonl"))]
    b = [len(json.dumps(r, separators=(",", ":")).encode()) for r in res]
    rows.append((int(leaves), int(sizes[leaves]) / 1e6, statistics.mean(b), max(b),
                 statistics.median(r["latency_ms"]["infer"] for r in res), statistics.median(r["latency_ms"]["total"] for r in res),
                 len(res[0]["levels"])))
base = rows[0]
print("leaves  levels  model MB  payload bytes mean/max  infer p50 ms  end-to-end p50 ms  | x classes  x payload  x infer")
for r in rows:
    print(f"{r[0]:6d}  {r[6]:6d}  {r[1]:8.1f}  {r[2]:10.0f} / {r[3]:5d}  {r[4]:12.2f}  {r[5]:17.1f}  | {r[0]/base[0]:9.1f}  {r[2]/base[2]:9.2f}  {r[4]/base[4]:7.2f}")
PY
