#!/usr/bin/env bash
# int8 against fp32, measured by fma-edge bench in one session: ./build.sh int8-bench [RUNS] (default 2).
# Quantizes ConvNeXt-T@224 (the bench model, tools/scripts/bench-model.sh) and the shipped femto@128 with fma-train quantize
# (activation ranges on 256 training images; uint8 activations, which ONNX Runtime's x86 CPU provider fuses completely,
# and, for the shipped model, the int8-symmetric file TensorRT takes), prints their accuracy against the float model on val, then
# benches float and int8 alternately RUNS times each and prints best-ceiling and pipeline images/s with the ratio.
#   FMAEDGE_DATASET  the defect set (default ../shared/datasets/defects beside the repository)
#   OUT              where the models and JSON reports go (default artifacts/bench/int8)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DATA=${FMAEDGE_DATASET:-$ROOT/../shared/datasets/defects}
OUT=${OUT:-$ROOT/artifacts/bench/int8}
RUNS=${1:-2}
EDGE="$ROOT/artifacts/bin/fma-edge"
TRAIN="$ROOT/artifacts/bin/fma-train"
[ -d "$DATA/val" ] || { echo "int8-bench: no dataset at $DATA (set FMAEDGE_DATASET)" >&2; exit 1; }
mkdir -p "$OUT"
TINY=$("$ROOT/tools/scripts/bench-model.sh")
SHIPPED="$ROOT/models/defects-convnext_femto-128.onnx"
quantize() { # float-model out activations [--val DIR]
  local model=$1 out=$2 act=$3; shift 3
  [ -f "$out" ] && return 0
  echo "== fma-train quantize $(basename "$model") -> $(basename "$out") ($act)"
  "$TRAIN" quantize --model "$model" --data "$DATA/train" --out "$out" --activations "$act" "$@" | grep -v '^calibrating'
}
quantize "$TINY" "$OUT/tiny-uint8.onnx" uint8
quantize "$SHIPPED" "$OUT/shipped-uint8.onnx" uint8 --val "$DATA/val"
quantize "$SHIPPED" "$OUT/shipped-int8.onnx" int8 --val "$DATA/val"

COMMON=(--images "$DATA/val" --search-seconds 3 --ceiling-seconds 5 --swap-seconds 0 --preprocess-repeats 0)
bench() { # name model count run
  echo "== bench $1 run $4" >&2
  "$EDGE" bench --model "$2" --count "$3" "${COMMON[@]}" --json "$OUT/$1-run$4.json" > "$OUT/$1-run$4.log" 2>&1
}
for ((r = 1; r <= RUNS; r++)); do
  bench tiny-fp32 "$TINY" 400 "$r"; bench tiny-uint8 "$OUT/tiny-uint8.onnx" 400 "$r"
  bench shipped-fp32 "$SHIPPED" 1500 "$r"; bench shipped-uint8 "$OUT/shipped-uint8.onnx" 1500 "$r"; bench shipped-int8 "$OUT/shipped-int8.onnx" 1500 "$r"
done
python3 - "$OUT" "$RUNS" <<'PY'
import json, sys
out, runs = sys.argv[1], int(sys.argv[2])
def load(name, r):
    j = json.load(open(f"{out}/{name}-run{r}.json"))
    return j["best_ceiling"]["images_per_second"], j["pipeline"]["images_per_second"]
print("| model | run | fp32 best ceiling | int8 best ceiling | ratio | fp32 pipeline | int8 pipeline | ratio |")
print("|---|---|---|---|---|---|---|---|")
for model, pairs in (("ConvNeXt-T@224", [("tiny-fp32", "tiny-uint8")]), ("femto@128 (shipped)", [("shipped-fp32", "shipped-uint8"), ("shipped-fp32", "shipped-int8")])):
    for f, q in pairs:
        for r in range(1, runs + 1):
            (fc, fp), (qc, qp) = load(f, r), load(q, r)
            print(f"| {model} {q.split('-')[1]} | {r} | {fc:.1f} | {qc:.1f} | **{qc / fc:.2f}x** | {fp:.1f} | {qp:.1f} | **{qp / fp:.2f}x** |")
PY
