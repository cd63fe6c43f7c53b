#!/usr/bin/env bash
# GPU check for any Linux machine with an NVIDIA GPU (a workstation, or the Jetson after tools/jetson/install.sh):
#   1. which execution providers load (TensorRT, CUDA), each with ONNX Runtime's whole reason when it does not;
#   2. `fma-edge bench` with the first provider that loads;
#   3. every level's probabilities on that provider against the CPU's on the same 50 real images (max |diff| per
#      level; fp16 TensorRT engines differ from fp32 CPU by design: this shows by how much).
# On a machine without an NVIDIA GPU it says so and exits 0.
#
#   tools/scripts/gpu-check.sh [--fma-edge PATH] [--model FILE] [--images DIR]
#     --fma-edge  the fma-edge to check (default: artifacts/bin/fma-edge, else fma-edge on PATH)
#     --model     default: models/defects-convnext_femto-128.onnx
#     --images    folder of real PNG images (default: tools/demo/images); the first 50 in name order are used
# Exit: 0 checked (or no GPU), 1 no GPU provider loads on a GPU machine or a step failed, 2 bad arguments.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
FMA=""
MODEL="$ROOT/models/defects-convnext_femto-128.onnx"
IMAGES="$ROOT/tools/demo/images"
COUNT=50
while [ $# -gt 0 ]; do
  case "$1" in
    --fma-edge) FMA=$2; shift 2 ;;
    --model) MODEL=$2; shift 2 ;;
    --images) IMAGES=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
say() { printf '\033[1;36m[gpu-check]\033[0m %s\n' "$*"; }

# An NVIDIA GPU: the driver's device node (desktop/server), the Jetson's integrated GPU node, or nvidia-smi seeing one.
gpu=""
if [ -e /dev/nvidia0 ]; then gpu="/dev/nvidia0";
elif [ -e /dev/nvhost-ctrl-gpu ]; then gpu="Jetson integrated GPU (/dev/nvhost-ctrl-gpu)";
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then gpu="nvidia-smi: $(nvidia-smi -L | head -1)"; fi
if [ -z "$gpu" ]; then
  say "no NVIDIA GPU on this machine (no /dev/nvidia0, no /dev/nvhost-ctrl-gpu, no working nvidia-smi): nothing to check"
  exit 0
fi
say "NVIDIA GPU: $gpu"

if [ -z "$FMA" ]; then
  if [ -x "$ROOT/artifacts/bin/fma-edge" ]; then FMA="$ROOT/artifacts/bin/fma-edge"; else FMA=$(command -v fma-edge || true); fi
fi
[ -n "$FMA" ] && [ -x "$FMA" ] || { echo "gpu-check: no fma-edge found (./build.sh, or --fma-edge PATH)" >&2; exit 2; }
[ -f "$MODEL" ] || { echo "gpu-check: model $MODEL not found" >&2; exit 2; }
command -v jq >/dev/null || { echo "gpu-check: jq is required (apt-get install jq)" >&2; exit 2; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mapfile -t PICKED < <(find "$IMAGES" -name '*.png' | LC_ALL=C sort | head -n "$COUNT")
[ "${#PICKED[@]}" -gt 0 ] || { echo "gpu-check: no PNG images under $IMAGES" >&2; exit 2; }
# Engine caches in the work folder: each run builds its own engines, and says how long that took.
export FMAEDGE__Paths__StateDir="$WORK/state"

classify() { # provider, output file, images...
  local provider=$1 out=$2; shift 2
  FMAEDGE__Inference__Providers="$provider" "$FMA" classify --model "$MODEL" --json "$@" > "$out" 2> "$out.err"
}

# ---- 1. which providers load (CPU is always appended as the fallback: the serving provider tells)
first=""
for p in tensorrt cuda; do
  t=$(date +%s)
  if ! classify "$p" "$WORK/probe-$p.json" "${PICKED[0]}"; then
    say "$p: classify failed: $(tail -1 "$WORK/probe-$p.json.err")"; continue
  fi
  served=$(jq -r '.model.provider' "$WORK/probe-$p.json")
  if [ "$served" = "$p" ]; then
    say "$p: loads (first session incl. engine build: $(( $(date +%s) - t )) s)"
    [ -n "$first" ] || first=$p
  else
    say "$p: does not load: $(jq -r '.model.providerNotes[0] // "no reason given"' "$WORK/probe-$p.json")"
  fi
done
[ -n "$first" ] || { say "no GPU execution provider loads: fma-edge serves on the CPU here"; exit 1; }

# ---- 2. bench with the first provider that loads
say "fma-edge bench --provider $first"
"$FMA" bench --provider "$first" --model "$MODEL" --images "$IMAGES" --count 300 --swap-seconds 0 --json "$WORK/bench.json"

# ---- 3. per-level outputs against the CPU on the same images
classify "$first" "$WORK/gpu.json" "${PICKED[@]}" || { cat "$WORK/gpu.json.err" >&2; exit 1; }
classify cpu "$WORK/cpu.json" "${PICKED[@]}" || { cat "$WORK/cpu.json.err" >&2; exit 1; }
say "$first vs cpu on ${#PICKED[@]} images, max |probability difference| per level (and images whose leaf answer differs):"
jq -r -n --slurpfile g "$WORK/gpu.json" --slurpfile c "$WORK/cpu.json" '
  ($g[0].results | map(.result.prediction)) as $gp | ($c[0].results | map(.result.prediction)) as $cp
  | range(0; $gp[0].probabilities | length) as $l
  | [range(0; $gp | length) as $i | range(0; $gp[$i].probabilities[$l] | length) as $k
      | (($gp[$i].probabilities[$l][$k] - $cp[$i].probabilities[$l][$k]) | fabs)] | max as $d
  | [range(0; $gp | length) as $i | select($gp[$i].levels[$l].index != $cp[$i].levels[$l].index)] | length as $n
  | "  level \($l + 1) (\($gp[0].levels[$l].levelName)): max |diff| \($d), argmax differs on \($n) images"'
