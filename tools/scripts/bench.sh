#!/usr/bin/env bash
# Benchmarks (figures, not pass/fail; ./build.sh bench). Figures and how to read them: docs/performance.md.
#   1. fma-edge bench on ConvNeXt-T@224 (made once by bench-model.sh) and on the shipped femto@128 model: the bare ONNX
#      Runtime ceiling, the daemon's folder -> MQTT throughput as a ratio to it, per-stage latency, decode+preprocess
#      cost of 200x200 and 2448x2048 images, and the hot-swap stall. JSON reports in artifacts/bench/.
#   2. fma-train bench: training throughput and peak memory.
#   FMAEDGE_DATASET  the defect set (default ../shared/datasets/defects beside the repository)
#   BENCH_ONLY=edge|train   run one half only
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DATA=${FMAEDGE_DATASET:-$ROOT/../shared/datasets/defects}
OUT="$ROOT/artifacts/bench"
[ -d "$DATA/train" ] || { echo "bench: no dataset at $DATA (set FMAEDGE_DATASET)" >&2; exit 1; }
mkdir -p "$OUT"
echo "== load before: $(uptime)" >&2

if [ "${BENCH_ONLY:-}" != train ]; then
  TINY=$("$ROOT/tools/scripts/bench-model.sh")
  echo "== fma-edge bench, ConvNeXt-T @ 224 (the issue's target: ratio >= 0.9 on CPU)" >&2
  "$ROOT/artifacts/bin/fma-edge" bench --model "$TINY" --images "$DATA/val" --count 300 --ceiling-seconds 20 \
    --swap-seconds 30 --json "$OUT/edge-convnext_tiny-224.json"
  echo "== fma-edge bench, the shipped convnext_femto @ 128" >&2
  "$ROOT/artifacts/bin/fma-edge" bench --model "$ROOT/models/defects-convnext_femto-128.onnx" --images "$DATA/val" --count 1000 \
    --ceiling-seconds 10 --swap-seconds 20 --json "$OUT/edge-convnext_femto-128.json"
fi

if [ "${BENCH_ONLY:-}" != edge ]; then
  echo "== training throughput, convnext_atto @ 112 (reference recipe), 20 timed batches of 64" >&2
  "$ROOT/artifacts/bin/fma-train" bench --data "$DATA/train" --model convnext_atto --img-size 112 --batch 64 --batches 20
  echo "== training throughput, convnext_tiny @ 224, 5 timed batches of 16" >&2
  "$ROOT/artifacts/bin/fma-train" bench --data "$DATA/val" --model convnext_tiny --img-size 224 --batch 16 --batches 5
fi
echo "== load after: $(uptime)" >&2
