#!/usr/bin/env bash
# FmaEdge build entry point. Safe to run again and again: it installs only what is missing.
#
#   ./build.sh            build everything; ./artifacts/bin/fma-edge and ./artifacts/bin/fma-train run
#   ./build.sh demo       the main job: daemon + folder source + embedded broker + real model, results over MQTT
#   ./build.sh test       install test dependencies, build, run every test (TEST_HANG_TIMEOUT=10m: a test running
#                         longer is dumped and killed, and named at the end)
#   ./build.sh publish [linux-x64|linux-arm64]   framework-dependent publish of fma-edge for a target
#   ./build.sh bench      benchmarks (figures, not pass/fail): fma-edge bench (ceiling ratio, stages, preprocessing,
#                         hot-swap) on the shipped model and on ConvNeXt-T@224, then the fma-train throughput benches
#   ./build.sh test-stress   the suite 5 times from a private clone with a CPU hog beside it (docs/reliability.md)
#   ./build.sh soak       the long soak: 20,000 real images through fma-edge run with mosquitto bounced (docs/reliability.md)
#   ./build.sh arm64-check   fma-edge for linux-arm64 under qemu user-mode emulation: cross-built OpenCvSharpExtern,
#                         CPU ONNX Runtime, model validate, classify (equal to x86-64 within 1e-4), run until every
#                         image is published. Not part of `test` (minutes; caches under artifacts/arm64). Needs the
#                         OpenCvSharp sources once: OPENCVSHARP_SRC=DIR (docs/jetson.md)
#   ./build.sh scale-check   synthetic 5-level trees of 18, 147 and 1,000 leaves: train a step, export, serve, publish;
#                         payload size and per-image time against the number of classes (docs/performance.md)
#   ./build.sh int8-bench [RUNS]   fma-train quantize on ConvNeXt-T@224 and the shipped model, accuracy on val, then
#                         fp32 against int8 with fma-edge bench, alternately RUNS times (docs/performance.md)
#   ./build.sh reference-compare [SEEDS]   the reference recipe, fma-train against a plain PyTorch loop (Debian's
#                         python3-torch with OpenBLAS), seed for seed; ~6 min per run here (docs/training.md)
#   ./build.sh camera-latency   capture-to-result latency of a fake GigE Vision camera at 10 fps through fma-edge run
#                         (p50/p95/max; docs/performance.md)
#   ./build.sh conformance   the Eclipse Paho MQTT interoperability suites (3.1.1 and 5) against the embedded broker
#                         and mosquitto; prints a table (figures, not pass/fail). Needs paho.mqtt.testing once:
#                         PAHO_TESTING_SRC=DIR, else it is cloned (docs/mqtt.md)
#   ./build.sh deps       only install system packages
#   ./build.sh format     check code formatting (dotnet format --verify-no-changes)
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
ART="$ROOT/artifacts"
CONFIG=${CONFIG:-Release}
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

log() { printf '\033[1;34m[build]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[build] error:\033[0m %s\n' "$*" >&2; exit 1; }

# System packages: OpenCvSharp's Linux runtime needs GTK 3; the tests start a real mosquitto broker, serve real
# network camera streams with ffmpeg (which is also the daemon's decoder for network cameras), serve a GigE Vision
# camera with Aravis's simulator (aravis-tools; libaravis-0.8-0 is the GenICam backend's library) and check the metrics
# exposition with promtool (package prometheus), decode Sparkplug B payloads with protoc (protobuf-compiler), give the
# camera simulator a second loopback address with ip (iproute2) and make TLS test certificates with openssl.
RUNTIME_PKGS=(libgtk-3-0)
TEST_PKGS=(mosquitto mosquitto-clients ffmpeg prometheus aravis-tools libaravis-0.8-0 protobuf-compiler iproute2 openssl)
# The soak also summarises the received results with jq.
SOAK_PKGS=(mosquitto mosquitto-clients jq)
# The stress run of the suite keeps both cores busy with stress-ng.
STRESS_PKGS=(stress-ng)
# The arm64 check: user-mode emulator, cross compiler, JSON comparison (the aarch64 libraries come in a sysroot).
ARM64_PKGS=(qemu-user-static g++-aarch64-linux-gnu jq)

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing system packages: ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "need root or sudo to install: ${missing[*]}"
    sudo="sudo"
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

check_dotnet() {
  command -v dotnet >/dev/null || die "the .NET 10 SDK is required (https://learn.microsoft.com/dotnet/core/install/linux-debian)"
  local v; v=$(dotnet --version)
  [[ "$v" == 10.* ]] || die ".NET SDK 10.x is required, found $v"
}

build() {
  check_dotnet
  apt_install "${RUNTIME_PKGS[@]}"
  log "building ($CONFIG)"
  dotnet build FmaEdge.sln -c "$CONFIG" -nologo -clp:ErrorsOnly -v:q
  log "publishing apps to $ART/app"
  dotnet publish src/FmaEdge.Cli -c "$CONFIG" -o "$ART/app/fma-edge" -nologo -v:q -clp:ErrorsOnly
  dotnet publish tools/FmaEdge.Train.Cli -c "$CONFIG" -o "$ART/app/fma-train" -nologo -v:q -clp:ErrorsOnly
  mkdir -p "$ART/bin"
  ln -sfn "$ART/app/fma-edge/fma-edge" "$ART/bin/fma-edge"
  ln -sfn "$ART/app/fma-train/fma-train" "$ART/bin/fma-train"
  log "ready: $ART/bin/fma-edge, $ART/bin/fma-train"
}

run_tests() {
  check_dotnet
  apt_install "${RUNTIME_PKGS[@]}" "${TEST_PKGS[@]}"
  log "building tests ($CONFIG)"
  dotnet build FmaEdge.sln -c "$CONFIG" -nologo -clp:ErrorsOnly -v:q
  log "running tests"
  local out="$ART/test-results"
  rm -rf "$out"; mkdir -p "$out"
  set +e
  # One test project at a time: two cores, and several suites start real brokers and daemons.
  # A test host that shows no progress for TEST_HANG_TIMEOUT (one test running that long) is dumped (a minidump:
  # createdump works here, a full dump is GBs) and killed, and the run names the test, instead of waiting for ever.
  dotnet test FmaEdge.sln -c "$CONFIG" --no-build -m:1 --blame --blame-hang-timeout "${TEST_HANG_TIMEOUT:-10m}" \
    --blame-hang-dump-type mini --logger "console;verbosity=normal" --logger trx \
    --results-directory "$out" 2>&1 | tee "$out/console.log"
  local rc=${PIPESTATUS[0]}
  set -e
  # One closing line for people and CI: totals over every test project (from the TRX files).
  local p=0 f=0 k=0 c
  for trx in "$out"/*.trx; do
    [ -e "$trx" ] || continue
    c=$(grep -o '<Counters [^>]*>' "$trx" | head -1)
    p=$((p + $(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$c")))
    f=$((f + $(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$c")))
    k=$((k + $(sed -n 's/.* notExecuted="\([0-9]*\)".*/\1/p' <<<"$c")))
  done
  if [ "$f" -gt 0 ]; then
    # Repeat each failure (name + first lines of its message) here, so the end of a long log says what broke.
    echo "failed tests:"
    perl -0777 -ne 'while (/<UnitTestResult [^>]*?testName="([^"]*)"[^>]*?outcome="Failed"(.*?)<\/UnitTestResult>/gs) {
        my ($n, $body) = ($1, $2); my ($m) = $body =~ /<Message>(.*?)<\/Message>/s; my ($st) = $body =~ /<StackTrace>(.*?)<\/StackTrace>/s;
        my @lines = grep { /\S/ } split /\n/, ($m // ""); my $more = @lines > 8 ? " | ..." : ""; @lines = map { length > 400 ? substr($_, 0, 400) . "..." : $_ } @lines[0 .. ($#lines < 7 ? $#lines : 7)];
        my ($at) = ($st // "") =~ /( in \S*\/tests\/\S+:line \d+)/; $m = join(" | ", @lines) . $more . ($at // "");
        for ($n, $m) { s/&quot;/"/g; s/&lt;/</g; s/&gt;/>/g; s/&apos;/\x27/g; s/&#xD;//g; s/&#xA;/ /g; s/&amp;/&/g; }
        print "  FAILED $n\n    $m\n" }' "$out"/*.trx
  fi
  # A hung or crashed test host leaves no result for the test it was running: name it here, last.
  local aborted
  aborted=$(grep -A1 'The test running when the crash occurred' "$out/console.log" | grep -v 'The test running' | grep -v '^--$' || true)
  if [ -n "$aborted" ]; then
    echo "test host aborted (hang timeout ${TEST_HANG_TIMEOUT:-10m} or crash; dump under $out) while running:"
    sed 's/^/  ABORTED /' <<<"$aborted"
  fi
  echo "tests: $p passed, $f failed, $k skipped"
  return "$rc"
}

publish() {
  check_dotnet
  local rid=${1:-linux-x64}
  case "$rid" in linux-x64|linux-arm64) ;; *) die "publish targets: linux-x64, linux-arm64";; esac
  log "publishing fma-edge for $rid to $ART/publish/$rid"
  dotnet publish src/FmaEdge.Cli -c "$CONFIG" -r "$rid" --self-contained false -o "$ART/publish/$rid/fma-edge" -nologo -v:q -clp:ErrorsOnly
  if [ "$rid" = linux-arm64 ]; then
    log "linux-arm64: ONNX Runtime (with TensorRT) and OpenCvSharpExtern come from the Jetson (see docs/operations.md)"
  fi
}

cmd=${1:-build}
shift || true
case "$cmd" in
  build) build ;;
  deps) apt_install "${RUNTIME_PKGS[@]}" "${TEST_PKGS[@]}" ;;
  test) run_tests ;;
  demo) build; exec "$ROOT/tools/scripts/demo.sh" "$@" ;;
  publish) publish "$@" ;;
  bench) build; exec "$ROOT/tools/scripts/bench.sh" "$@" ;;
  test-stress) check_dotnet; apt_install "${RUNTIME_PKGS[@]}" "${TEST_PKGS[@]}" "${STRESS_PKGS[@]}"; exec "$ROOT/tools/scripts/test-stress.sh" "$@" ;;
  soak) build; apt_install "${SOAK_PKGS[@]}"; exec "$ROOT/tools/scripts/soak.sh" "$@" ;;
  arm64-check) build; apt_install "${ARM64_PKGS[@]}"; exec "$ROOT/tools/scripts/arm64-check.sh" "$@" ;;
  scale-check) build; apt_install mosquitto-clients python3; exec "$ROOT/tools/scripts/scale-check.sh" "$@" ;;
  int8-bench) build; exec "$ROOT/tools/scripts/int8-bench.sh" "$@" ;;
  reference-compare) build; apt_install python3-torch python3-pil libopenblas0-openmp; exec "$ROOT/tools/scripts/reference-compare.sh" "$@" ;;
  camera-latency) build; apt_install mosquitto-clients aravis-tools libaravis-0.8-0 python3; exec "$ROOT/tools/scripts/camera-latency.sh" "$@" ;;
  conformance) build; apt_install mosquitto python3 git; exec "$ROOT/tools/scripts/conformance.sh" "$@" ;;
  format) check_dotnet; dotnet format FmaEdge.sln --verify-no-changes ;;
  *) die "unknown command '$cmd' (build, demo, test, test-stress, publish, bench, int8-bench, reference-compare, soak, arm64-check, camera-latency, scale-check, conformance, deps, format)" ;;
esac
