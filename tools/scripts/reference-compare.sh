#!/usr/bin/env bash
# The reference recipe, fma-train against a plain PyTorch loop (tools/scripts/reference_pytorch.py), seed for seed on one
# machine: ./build.sh reference-compare [SEEDS] (default 3). Both train on the whole train tree (fma-train with
# --calib-fraction 0, as the reference sets nothing aside) and report val top-1 per level. Needs Debian's
# python3-torch with OpenBLAS (build.sh installs them for this verb). Writes $OUT/{pytorch,fma-train}-seed*.json and summary.md.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DATA="${FMAEDGE_DATASET:-$ROOT/../shared/datasets/defects}"
OUT="${OUT:-$ROOT/artifacts/reference-compare}"
SEEDS="${1:-3}"
FMA_TRAIN="${FMA_TRAIN:-$ROOT/artifacts/bin/fma-train}"
THREADS="${THREADS:-$(nproc)}"
mkdir -p "$OUT"
for ((s = 0; s < SEEDS; s++)); do
  if [[ ! -f "$OUT/pytorch-seed$s.json" ]]; then
    echo "== PyTorch seed $s"
    /usr/bin/python3 "$ROOT/tools/scripts/reference_pytorch.py" --train "$DATA/train" --val "$DATA/val" --seed "$s" \
      --threads "$THREADS" --json "$OUT/pytorch-seed$s.json"
  fi
  if [[ ! -f "$OUT/fma-train-seed$s.json" ]]; then
    echo "== fma-train seed $s"
    rm -rf "$OUT/fma-train-seed$s"
    "$FMA_TRAIN" train --data "$DATA/train" --val "$DATA/val" --out "$OUT/fma-train-seed$s" --calib-fraction 0 \
      --model convnext_atto --head independent --loss ce --img-size 112 --epochs 8 --batch 64 --lr 1e-3 \
      --weight-decay 0.05 --seed "$s" --brightness 0 --contrast 0 --threads "$THREADS" > "$OUT/fma-train-seed$s.log" 2>&1
    cp "$OUT/fma-train-seed$s/report.json" "$OUT/fma-train-seed$s.json"
  fi
done
/usr/bin/python3 - "$OUT" "$SEEDS" <<'PY'
import json, sys, statistics as st
out, seeds = sys.argv[1], int(sys.argv[2])
rows = []
for side in ("pytorch", "fma-train"):
    accs = []
    for s in range(seeds):
        r = json.load(open(f"{out}/{side}-seed{s}.json"))
        if side == "pytorch":
            a = r["val_top1"]
        else:
            a = [lv["top1"] for lv in r["levels"]]
        accs.append(a)
        rows.append(f"| {side} | {s} | " + " | ".join(f"{x * 100:.1f} %" for x in a) + " |")
    mean = [st.mean(c) for c in zip(*accs)]
    sd = [st.stdev(c) if len(c) > 1 else 0 for c in zip(*accs)]
    rows.append(f"| **{side} mean (sd)** | | " + " | ".join(f"**{m * 100:.1f} %** ({d * 100:.1f})" for m, d in zip(mean, sd)) + " |")
text = "| side | seed | L1 | L2 | L3 |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
open(f"{out}/summary.md", "w").write(text)
print(text)
PY
