#!/usr/bin/env bash
# Makes the ConvNeXt-T@224 model the daemon benchmark needs (issue 5: the ceiling ratio target is for ConvNeXt-T at
# 224 on CPU). Speed does not depend on the weights, so fma-train trains one batch on two real images per leaf and
# exports the model through its verified exporter. Prints the model's path; reuses it when present.
#   FMAEDGE_DATASET  the defect set (default ../shared/datasets/defects beside the repository)
#   BENCH_MODEL_DIR  where to keep it (default artifacts/bench/models)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DATA=${FMAEDGE_DATASET:-$ROOT/../shared/datasets/defects}
OUT=${BENCH_MODEL_DIR:-$ROOT/artifacts/bench/models}
MODEL="$OUT/defects-convnext_tiny-224.onnx"
[ -f "$MODEL" ] && { echo "$MODEL"; exit 0; }
[ -d "$DATA/train" ] || { echo "bench-model: no dataset at $DATA (set FMAEDGE_DATASET)" >&2; exit 1; }
TRAIN=${FMA_TRAIN:-$ROOT/artifacts/bin/fma-train}
[ -x "$TRAIN" ] || { echo "bench-model: run ./build.sh first" >&2; exit 1; }
WORK="$OUT/tiny-run"
rm -rf "$WORK"; mkdir -p "$WORK/data"
# Two real images per leaf, same tree (the model's outputs cover every class).
while IFS= read -r leaf; do
  rel=${leaf#"$DATA/train/"}
  mkdir -p "$WORK/data/$rel"
  mapfile -t files < <(find "$leaf" -maxdepth 1 -type f -name '*.png' | sort)
  cp "${files[@]:0:2}" "$WORK/data/$rel/"
done < <(find "$DATA/train" -mindepth 3 -maxdepth 3 -type d | sort)
echo "bench-model: training convnext_tiny@224 for one batch (weights do not matter for speed)" >&2
"$TRAIN" train --data "$WORK/data" --out "$WORK/run" --model convnext_tiny --img-size 224 \
  --epochs 1 --max-batches 1 --batch 8 --seed 0 >&2
cp "$WORK/run/model.onnx" "$MODEL"
echo "$MODEL"
