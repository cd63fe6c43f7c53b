#!/usr/bin/env bash
# The suite under load (./build.sh test-stress): clone the current commit into a private folder (mode 0700, as a user's
# home is), then run the README's test command there N times with a CPU hog on every core beside it. Prints one line
# per run (passed / failed / wall time) and, at the end, the failures and the slowest tests over all runs, read from
# the TRX files. Exit 0 only when every run passed.
#
#   STRESS_RUNS=5        how many full runs
#   STRESS_HOG=1         0: no CPU hog (a plain repeat)
#   STRESS_DIR           where the clone goes (default: a fresh mktemp -d folder, mode 0700)
#   FMAEDGE_DATASET      the defect set (default ../shared/datasets/defects beside this repository)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUNS=${STRESS_RUNS:-5}
HOG=${STRESS_HOG:-1}
say() { printf '\033[1;32m[stress]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[stress] error:\033[0m %s\n' "$*" >&2; exit 1; }

export FMAEDGE_DATASET=${FMAEDGE_DATASET:-$(cd "$ROOT/.." && pwd)/shared/datasets/defects}
[ -d "$FMAEDGE_DATASET" ] || die "dataset not found at $FMAEDGE_DATASET (set FMAEDGE_DATASET)"
[ "$HOG" = 0 ] || command -v stress-ng >/dev/null || die "stress-ng is missing (./build.sh test-stress installs it)"

DIR=${STRESS_DIR:-$(mktemp -d)}
chmod 700 "$DIR"
say "cloning $(git -C "$ROOT" rev-parse --short HEAD) into $DIR/repo (mode 0700 parent)"
rm -rf "$DIR/repo"
git clone -q "$ROOT" "$DIR/repo"
git -C "$DIR/repo" checkout -q "$(git -C "$ROOT" rev-parse HEAD)"

hog_pid=""
stop_hog() { [ -n "$hog_pid" ] && kill "$hog_pid" 2>/dev/null && wait "$hog_pid" 2>/dev/null; hog_pid=""; }
trap stop_hog EXIT

summary="$DIR/summary.txt"; : >"$summary"
all_ok=0
for i in $(seq 1 "$RUNS"); do
  if [ "$HOG" != 0 ]; then
    stress-ng --cpu "$(nproc)" --timeout 3600s --quiet & hog_pid=$!
  fi
  start=$(date +%s)
  set +e
  (cd "$DIR/repo" && ./build.sh test) >"$DIR/run$i.log" 2>&1
  rc=$?
  set -e
  secs=$(( $(date +%s) - start ))
  stop_hog
  line=$(grep -E '^tests: [0-9]+ passed' "$DIR/run$i.log" | tail -1)
  mkdir -p "$DIR/trx$i"; cp "$DIR/repo/artifacts/test-results/"*.trx "$DIR/trx$i/" 2>/dev/null || true
  echo "run $i: exit $rc, ${line:-no totals (hang or build failure?)}, ${secs}s" | tee -a "$summary"
  [ "$rc" -eq 0 ] || all_ok=1
done

echo "failures over all runs:" | tee -a "$summary"
grep -h -E -A1 "^  (FAILED|ABORTED)" "$DIR"/run*.log | tee -a "$summary" || echo "  none" | tee -a "$summary"
echo "slowest tests over all runs (seconds, run, name):" | tee -a "$summary"
for i in $(seq 1 "$RUNS"); do
  for trx in "$DIR/trx$i"/*.trx; do
    [ -e "$trx" ] || continue
    perl -ne 'while (/<UnitTestResult [^>]*?testName="([^"]*)"[^>]*?duration="(\d+):(\d+):([\d.]+)"/g) {
        printf "%8.1f  run'"$i"'  %s\n", $2*3600+$3*60+$4, $1 }' "$trx"
  done
done | sort -rn | head -15 | tee -a "$summary"
say "logs and TRX files in $DIR; summary in $summary"
exit "$all_ok"
