#!/usr/bin/env bash
# Benchmarks (figures, not pass/fail). Today: training throughput and peak memory (fma-train bench).
# The daemon benchmarks of issue 5 (bare ONNX Runtime ceiling vs the folder -> MQTT pipeline, preprocessing
# cost, hot-swap stall) are not built yet.
#   FMAEDGE_DATASET  the defect set (default ../shared/datasets/defects beside the repository)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DATA=${FMAEDGE_DATASET:-$ROOT/../shared/datasets/defects}
[ -d "$DATA/train" ] || { echo "bench: no dataset at $DATA (set FMAEDGE_DATASET)" >&2; exit 1; }
echo "== training throughput, convnext_atto @ 112 (reference recipe), 20 timed batches of 64" >&2
"$ROOT/artifacts/bin/fma-train" bench --data "$DATA/train" --model convnext_atto --img-size 112 --batch 64 --batches 20
echo "== training throughput, convnext_tiny @ 224, 5 timed batches of 16" >&2
"$ROOT/artifacts/bin/fma-train" bench --data "$DATA/val" --model convnext_tiny --img-size 224 --batch 16 --batches 5
echo "daemon benchmarks (ceiling ratio, preprocessing, hot-swap) are not built yet (issue 5)" >&2
