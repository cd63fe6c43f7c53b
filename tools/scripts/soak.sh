#!/usr/bin/env bash
# Soak (issue 5; ./build.sh soak): at least 20,000 real images through the real daemon (fma-edge run, CPU provider, the
# shipped model, folder source, MQTT sink with its durable outbox) against a real mosquitto that is bounced several
# times during the run. Every few seconds the daemon's RSS and open file descriptors are sampled to a CSV. At the end
# every image must be accounted for: one classification per file (results received by a persistent-session MQTT
# subscriber vs files dropped), repeated deliveries only when marked historical, every file in done/, none failed.
# Prints the RSS / descriptor curve summary (start, mid, end, slope). Exit 0 when everything is accounted for.
#
#   SOAK_IMAGES=20000   images (tagged copies of the real train images, distinct bytes, generated names)
#   SOAK_BOUNCES=4      broker restarts, evenly spread over the feed
#   SOAK_OUTAGE=4       seconds the broker stays down each time
#   SOAK_SAMPLE=2       seconds between RSS/fd samples
#   SOAK_BACKLOG=200    the feeder keeps at most this many files waiting in the inbox (a production line, not a dump)
#   SOAK_PORT=18841     broker port
#   SOAK_DIR=artifacts/soak
#   SOAK_MALLOC=unit    glibc malloc for the daemon: unit (the systemd unit's MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072),
#                       inproc (none set: fma-edge run's own mallopt), glibc (FMAEDGE_DEFAULT_MALLOC=1: glibc's defaults)
#   FMA_EDGE            the fma-edge executable (default artifacts/bin/fma-edge)
#   FMAEDGE_DATASET     the defect set (default ../shared/datasets/defects; else tools/demo/images)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${FMA_EDGE:-$ROOT/artifacts/bin/fma-edge}
MODEL="$ROOT/models/defects-convnext_femto-128.onnx"
N=${SOAK_IMAGES:-20000}
BOUNCES=${SOAK_BOUNCES:-4}
OUTAGE=${SOAK_OUTAGE:-4}
SAMPLE=${SOAK_SAMPLE:-2}
BACKLOG=${SOAK_BACKLOG:-200}
PORT=${SOAK_PORT:-18841}
OUT=${SOAK_DIR:-$ROOT/artifacts/soak}
DATA=${FMAEDGE_DATASET:-$ROOT/../shared/datasets/defects}
SRC="$DATA/train"; [ -d "$SRC" ] || SRC="$ROOT/tools/demo/images"
say() { printf '\033[1;32m[soak]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[soak] error:\033[0m %s\n' "$*" >&2; exit 1; }

[ -x "$BIN" ] || die "run ./build.sh first"
for t in mosquitto_sub jq; do command -v "$t" >/dev/null || die "$t is missing (./build.sh soak installs it)"; done
[ -x /usr/sbin/mosquitto ] || die "mosquitto is missing (./build.sh soak installs it)"
(echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && die "port $PORT is in use (set SOAK_PORT)"
rm -rf "$OUT"; mkdir -p "$OUT"/{inbox,stage,models,state,run,broker}
cp "$MODEL" "$OUT/models/"

say "staging $N tagged copies of the real images in $SRC"
"$BIN" bench stage --from "$SRC" --to "$OUT/stage" --count "$N" --prefix soak >&2
mapfile -t STAGED < <(cd "$OUT/stage" && ls | sort)
[ "${#STAGED[@]}" -eq "$N" ] || die "staged ${#STAGED[@]} files, wanted $N"
printf '%s\n' "${STAGED[@]}" > "$OUT/dropped.txt"

# Running as root, mosquitto would switch to the 'mosquitto' user and lose access to this folder. Persistence keeps the
# subscriber's session (and messages queued for it) across clean restarts; no cap on queued messages.
cat > "$OUT/broker/mosquitto.conf" <<CONF
user $(id -un)
listener $PORT 127.0.0.1
allow_anonymous true
persistence true
persistence_location $OUT/broker/
max_queued_messages 0
log_dest file $OUT/broker/mosquitto.log
log_type error
log_type warning
log_type notice
CONF
BROKER=""
start_broker() {
  /usr/sbin/mosquitto -c "$OUT/broker/mosquitto.conf" &
  BROKER=$!
  for _ in $(seq 1 50); do (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0; sleep 0.1; done
  die "mosquitto did not come up (see $OUT/broker/mosquitto.log)"
}
stop_broker() { kill -TERM "$BROKER" 2>/dev/null && wait "$BROKER" 2>/dev/null || true; BROKER=""; }

cat > "$OUT/fma-edge.json" <<JSON
{
  "FmaEdge": {
    "NodeName": "soak",
    "Paths": { "StateDir": "$OUT/state", "ModelsDir": "$OUT/models", "RuntimeDir": "$OUT/run" },
    "Inference": { "Providers": "cpu" },
    "Sources": [ { "Id": "inbox", "Type": "folder", "Path": "$OUT/inbox", "Completion": "rename", "After": "move" } ],
    "Output": { "Type": "mqtt" },
    "Mqtt": { "Host": "127.0.0.1", "Port": $PORT, "ReconnectMinSeconds": 0.5, "ReconnectMaxSeconds": 2, "Embedded": { "Enabled": false } },
    "Health": { "DiskFloorMiB": 64 }
  }
}
JSON

DAEMON="" SUB="" SAMPLER=""
cleanup() {
  local rc=$? # an EXIT trap's own last status would otherwise become the script's
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true
  [ -n "$DAEMON" ] && kill -TERM "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null || true
  [ -n "$SUB" ] && kill "$SUB" 2>/dev/null || true
  [ -n "$BROKER" ] && stop_broker
  exit "$rc"
}
trap cleanup EXIT

start_broker
# A persistent session (-c, fixed id, QoS 1): mosquitto_sub reconnects by itself after each bounce and the broker keeps
# what was published for it meanwhile. One payload per line.
stdbuf -oL mosquitto_sub -h 127.0.0.1 -p "$PORT" -i soak-subscriber -c -q 1 -k 5 -t 'fma/soak/+/result' > "$OUT/results.jsonl" 2> "$OUT/subscriber.log" &
SUB=$!
sleep 0.5

MALLOC_MODE=${SOAK_MALLOC:-unit}
case "$MALLOC_MODE" in
  unit) MALLOC_ENV=(MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072) ;;
  inproc) MALLOC_ENV=() ;;
  glibc) MALLOC_ENV=(FMAEDGE_DEFAULT_MALLOC=1) ;;
  *) die "SOAK_MALLOC is unit, inproc or glibc" ;;
esac
say "starting fma-edge run (CPU, $(basename "$MODEL"), broker 127.0.0.1:$PORT, malloc: $MALLOC_MODE)"
env -u MALLOC_ARENA_MAX -u MALLOC_MMAP_THRESHOLD_ "${MALLOC_ENV[@]}" "$BIN" run --config "$OUT/fma-edge.json" > "$OUT/daemon.log" 2>&1 &
DAEMON=$!
for _ in $(seq 1 240); do
  "$BIN" status --config "$OUT/fma-edge.json" --json >/dev/null 2>&1 && break
  kill -0 "$DAEMON" 2>/dev/null || { cat "$OUT/daemon.log" >&2; die "fma-edge exited"; }
  sleep 0.5
done
say "daemon $DAEMON is up; sampling RSS and descriptors every $SAMPLE s to $OUT/soak.csv"

T0=$(date +%s.%N)
echo 0 > "$OUT/dropped.count"
echo "seconds,rss_kib,fds,threads,dropped,received,broker_up,gc_heap_mib,gc_committed_mib,sqlite_mib" > "$OUT/soak.csv"
(
  while kill -0 "$DAEMON" 2>/dev/null; do
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$DAEMON/status" 2>/dev/null || echo 0)
    thr=$(awk '/^Threads/ {print $2}' "/proc/$DAEMON/status" 2>/dev/null || echo 0)
    fds=$(ls "/proc/$DAEMON/fd" 2>/dev/null | wc -l)
    up=0; (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && up=1
    # The daemon's own split of its memory (status "process"): managed heap, GC-committed, SQLite's allocator.
    # (status exits 1 while degraded, e.g. during a bounce: that is still an answer, so its exit code is ignored.)
    mem=$({ "$BIN" status --config "$OUT/fma-edge.json" --json 2>/dev/null || true; } | jq -r '.process // empty | "\(.managedHeapMiB),\(.managedCommittedMiB),\(.sqliteMiB)"' 2>/dev/null || true)
    printf '%s,%s,%s,%s,%s,%s,%s,%s\n' "$(awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN { printf "%.1f", a - b }')" "$rss" "$fds" "$thr" "$(cat "$OUT/dropped.count")" \
      "$(wc -l < "$OUT/results.jsonl")" "$up" "${mem:-,,}" >> "$OUT/soak.csv"
    sleep "$SAMPLE"
  done
) &
SAMPLER=$!

# Feed in chunks of 50, keeping the inbox backlog bounded; bounce the broker at evenly spread points of the feed.
dropped=0 bounced=0 down_since=""
next_bounce=$(( N / (BOUNCES + 1) ))
CHUNK=50
while [ "$dropped" -lt "$N" ] || [ -n "$down_since" ]; do
  now=$(date +%s)
  if [ -n "$down_since" ] && [ $((now - down_since)) -ge "$OUTAGE" ]; then
    start_broker; down_since=""
    say "broker back after ${OUTAGE} s (bounce $bounced of $BOUNCES)"
  fi
  if [ "$bounced" -lt "$BOUNCES" ] && [ "$dropped" -ge "$next_bounce" ] && [ -z "$down_since" ]; then
    bounced=$((bounced + 1)); next_bounce=$(( (bounced + 1) * N / (BOUNCES + 1) ))
    say "bounce $bounced: stopping the broker at $dropped images dropped"
    stop_broker; down_since=$(date +%s)
  fi
  if [ "$dropped" -lt "$N" ] && [ "$(find "$OUT/inbox" -maxdepth 1 -type f | wc -l)" -lt "$BACKLOG" ]; then
    chunk=("${STAGED[@]:dropped:CHUNK}")
    (cd "$OUT/stage" && mv -t "$OUT/inbox" -- "${chunk[@]}")
    dropped=$((dropped + ${#chunk[@]}))
    echo "$dropped" > "$OUT/dropped.count"
  else
    sleep 0.2
  fi
done
FEED_END=$(date +%s)
say "all $N images dropped, $bounced broker bounces; waiting for every result"

received_ids() { jq -r '.image.id' "$OUT/results.jsonl" 2>/dev/null | sort -u | wc -l; }
last=-1 still=0
while :; do
  got=$(received_ids)
  [ "$got" -ge "$N" ] && break
  if [ "$got" -eq "$last" ]; then still=$((still + 5)); else still=0; last=$got; fi
  [ "$still" -ge 120 ] && { say "no progress for 120 s at $got of $N"; break; }
  sleep 5
done
sleep "$SAMPLE"; sleep 1
DONE_END=$(date +%s)
"$BIN" status --config "$OUT/fma-edge.json" > "$OUT/status.txt" 2>&1 || true
kill "$SAMPLER" 2>/dev/null || true; SAMPLER=""
kill -TERM "$DAEMON"; wait "$DAEMON" || true; DAEMON=""
sleep 1; kill "$SUB" 2>/dev/null || true; SUB=""
stop_broker

# ---- accounting
say "accounting"
jq -r '[.image.id, .message_id, (.historical|tostring), .published_at] | @tsv' "$OUT/results.jsonl" > "$OUT/received.tsv"
messages=$(wc -l < "$OUT/received.tsv")
unique_images=$(cut -f1 "$OUT/received.tsv" | sort -u | wc -l)
missing=$(comm -23 <(sort "$OUT/dropped.txt") <(cut -f1 "$OUT/received.tsv" | sort -u) | tee "$OUT/missing.txt" | wc -l)
unexpected=$(comm -13 <(sort "$OUT/dropped.txt") <(cut -f1 "$OUT/received.tsv" | sort -u) | wc -l)
# An image classified twice would carry two message ids.
reclassified=$(cut -f1,2 "$OUT/received.tsv" | sort -u | cut -f1 | uniq -d | wc -l)
# Repeated deliveries of one message. The daemon re-sends a message only on a later connection (its publish was not
# acknowledged before the link dropped), stamped with a new published_at and marked historical: every such repeat must
# carry the mark. A copy with the very same payload (same published_at) is the broker redelivering to the subscriber
# (QoS 1 on session resume), counted apart.
repeats=$((messages - $(cut -f2 "$OUT/received.tsv" | sort -u | wc -l)))
redelivered=$(awk -F'\t' 'seen[$2 "\t" $4]++ {n++} END {print n+0}' "$OUT/received.tsv")
unmarked=$(awk -F'\t' '!(($2 "\t" $4) in same) && ($2 in seen) && $3 != "true" {n++} {seen[$2]; same[$2 "\t" $4]} END {print n+0}' "$OUT/received.tsv")
historical=$(awk -F'\t' '$3 == "true" {n++} END {print n+0}' "$OUT/received.tsv")
done_files=$(find "$OUT/inbox/done" -maxdepth 1 -type f | wc -l)
failed_files=$(find "$OUT/inbox/failed" -maxdepth 1 -type f 2>/dev/null | grep -vc '\.reason\.txt$' || true)
left=$(find "$OUT/inbox" -maxdepth 1 -type f | wc -l)

# ---- curve: start = first sample after 10 % of the images, mid = at 50 %, end = last; slope by least squares over the
# second half of the feed (after start-up and the first allocations), per 1000 images and per hour.
read -r rs fs rm fm re fe slope_img slope_h fslope gs gm ge qs qm qe <<<"$(awk -F, -v n="$N" '
  NR == 1 { next }
  { t[++k] = $1; r[k] = $2; f[k] = $3; d[k] = $6; g[k] = $8; q[k] = $10 }
  END {
    for (i = 1; i <= k; i++) { if (!s && d[i] >= n * 0.1) s = i; if (!m && d[i] >= n * 0.5) m = i }
    if (!s) s = 1; if (!m) m = int(k / 2) + 1
    for (i = m; i <= k; i++) { c++; sx += d[i]; sy += r[i]; sxx += d[i] * d[i]; sxy += d[i] * r[i]; st += t[i]; stt += t[i] * t[i]; sty += t[i] * r[i]; sfy += t[i] * f[i]; sf += f[i] }
    bi = (c * sxx - sx * sx) ? (c * sxy - sx * sy) / (c * sxx - sx * sx) : 0
    bt = (c * stt - st * st) ? (c * sty - st * sy) / (c * stt - st * st) : 0
    bf = (c * stt - st * st) ? (c * sfy - st * sf) / (c * stt - st * st) : 0
    printf "%d %d %d %d %d %d %.1f %.0f %.2f %s %s %s %s %s %s\n", r[s], f[s], r[m], f[m], r[k], f[k], bi * 1000, bt * 3600, bf * 3600, g[s], g[m], g[k], q[s], q[m], q[k]
  }' "$OUT/soak.csv")"
samples=$(($(wc -l < "$OUT/soak.csv") - 1))
elapsed=$((DONE_END - ${T0%.*}))

cat <<REPORT | tee "$OUT/summary.txt"
soak: $N images, malloc $MALLOC_MODE, $bounced broker bounces (${OUTAGE} s each), $elapsed s from first drop to last result (feed ended after $((FEED_END - ${T0%.*})) s)
images:  dropped $N, with a result $unique_images, missing $missing, unexpected $unexpected, classified twice $reclassified
messages: $messages received, $historical marked historical; $repeats repeats: $redelivered identical broker redeliveries, $((repeats - redelivered)) daemon re-sends, $unmarked of them without the historical mark
files:   done/ $done_files, failed/ $failed_files, left in the inbox $left
RSS (KiB):  start $rs  mid $rm  end $re   slope over the second half: $slope_img KiB per 1000 images, $slope_h KiB per hour
open fds:   start $fs  mid $fm  end $fe   slope over the second half: $fslope per hour
managed heap (MiB): start $gs  mid $gm  end $ge;  SQLite (MiB): start $qs  mid $qm  end $qe
samples: $samples every $SAMPLE s in $OUT/soak.csv; load: $(cut -d' ' -f1-3 /proc/loadavg)
REPORT

ok=1
[ "$missing" -eq 0 ] && [ "$unexpected" -eq 0 ] && [ "$reclassified" -eq 0 ] && [ "$unmarked" -eq 0 ] || ok=0
[ "$done_files" -eq "$N" ] && [ "$failed_files" -eq 0 ] && [ "$left" -eq 0 ] || ok=0
if [ "$ok" -eq 1 ]; then say "every image accounted for"; else say "NOT every image accounted for (see $OUT)"; exit 1; fi
