#!/usr/bin/env bash
# FmaEdge on a fresh Jetson Orin (JetPack 6 = Jetson Linux 36, Ubuntu 22.04 aarch64). UNTESTED ON HARDWARE: every
# step follows the JetPack and ONNX Runtime documentation (docs/jetson.md cites them); nothing here has run on an Orin.
# Run as root from a clone of this repository on the Orin (it needs the internet: apt, GitHub, NuGet):
#
#   sudo tools/jetson/install.sh [--onnxruntime DIR] [--jobs N] [--work DIR]
#
#   --onnxruntime DIR  a finished ONNX Runtime $ORT_VERSION build for this JetPack (the folder holding
#                      libonnxruntime.so and libonnxruntime_providers_{shared,cuda,tensorrt}.so): skips step 3
#   --jobs N           parallel compile jobs (default 4: the ONNX Runtime build needs ~2 GB of memory per job)
#   --work DIR         where sources and builds go (default /var/tmp/fma-edge-build; ~25 GB free needed)
#
# Steps (docs/jetson.md has what each needs and how long it takes):
#   1. JetPack's development parts (CUDA, cuDNN, TensorRT, OpenCV 4.8 headers) and build tools, from apt;
#   2. the .NET 10 SDK (Microsoft's dotnet-install.sh) under /opt/dotnet, used to publish fma-edge self-contained
#      for linux-arm64 (the published app carries its .NET runtime; nothing else needs .NET at run time);
#   3. ONNX Runtime $ORT_VERSION (the version the managed package pins: they must pair) built from source with the
#      TensorRT and CUDA providers for Orin (compute capability 8.7);
#   4. libOpenCvSharpExtern.so from the OpenCvSharp sources at the pinned tag, against JetPack's OpenCV, with the
#      recipe ./build.sh arm64-check runs (tools/jetson/build-opencvsharp-extern.sh);
#   5. install under /opt/fma-edge with the systemd unit (systemd/install.sh), then `fma-edge status` and a
#      one-image `fma-edge classify` that prints the execution provider that served.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ORT_DIR="" JOBS=4 WORK=/var/tmp/fma-edge-build
while [ $# -gt 0 ]; do
  case "$1" in
    --onnxruntime) ORT_DIR=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
say() { printf '\033[1;32m[jetson]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[jetson] error:\033[0m %s\n' "$*" >&2; exit 1; }
step() { say "step $1 ($(date -u +%H:%M:%S))"; }

# Versions the managed packages pin (Directory.Packages.props): the native libraries must match them.
pinned() { sed -n "s/.*PackageVersion Include=\"$1\" Version=\"\([^\"]*\)\".*/\1/p" "$ROOT/Directory.Packages.props"; }
ORT_VERSION=$(pinned Microsoft.ML.OnnxRuntime.Managed)
OPENCVSHARP_VERSION=$(pinned OpenCvSharp4)
[ -n "$ORT_VERSION" ] && [ -n "$OPENCVSHARP_VERSION" ] || die "cannot read the pinned versions from Directory.Packages.props"

[ "$(id -u)" -eq 0 ] || die "run as root (sudo)"
[ "$(uname -m)" = aarch64 ] || die "this is for the Jetson (aarch64); on other machines use ./build.sh arm64-check"
grep -q '^# R36' /etc/nv_tegra_release 2>/dev/null || die "JetPack 6 (Jetson Linux R36) expected; /etc/nv_tegra_release says: $(head -1 /etc/nv_tegra_release 2>/dev/null || echo 'missing')"
mkdir -p "$WORK"
say "ONNX Runtime $ORT_VERSION, OpenCvSharp $OPENCVSHARP_VERSION, work folder $WORK, $JOBS jobs"

# ---- 1. JetPack development parts and tools
step "1/5: apt (nvidia-jetpack: CUDA, cuDNN, TensorRT, OpenCV 4.8; build tools)"
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y nvidia-jetpack libopencv-dev build-essential pkg-config git \
  python3-pip curl ca-certificates jq
# ONNX Runtime's build asks for a newer CMake than Ubuntu 22.04's 3.22 (its build docs install it with pip).
python3 -m pip install --upgrade 'cmake>=3.28' ninja
export PATH="/usr/local/bin:$PATH" CUDACXX=/usr/local/cuda/bin/nvcc

# ---- 2. .NET SDK and the self-contained publish
step "2/5: .NET 10 SDK and a self-contained linux-arm64 publish of fma-edge"
if ! /opt/dotnet/dotnet --list-sdks 2>/dev/null | grep -q '^10\.'; then
  curl -fsSL https://dot.net/v1/dotnet-install.sh -o "$WORK/dotnet-install.sh"
  bash "$WORK/dotnet-install.sh" --channel 10.0 --install-dir /opt/dotnet
fi
export DOTNET_ROOT=/opt/dotnet PATH="/opt/dotnet:$PATH" DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
APP="$WORK/publish"
dotnet publish "$ROOT/src/FmaEdge.Cli" -c Release -r linux-arm64 --self-contained true -o "$APP" -nologo -v:q

# ---- 3. ONNX Runtime with TensorRT and CUDA
step "3/5: ONNX Runtime $ORT_VERSION with the TensorRT and CUDA providers"
if [ -z "$ORT_DIR" ]; then
  src="$WORK/onnxruntime"
  [ -d "$src/.git" ] || git clone --recursive --branch "v$ORT_VERSION" --depth 1 https://github.com/microsoft/onnxruntime "$src"
  # The TensorRT provider uses TensorRT's own ONNX parser (libnvonnxparser) from JetPack; sm_87 is Orin's GPU.
  (cd "$src" && ./build.sh --config Release --update --build --parallel "$JOBS" --build_shared_lib --skip_tests \
    --allow_running_as_root --use_cuda --cuda_home /usr/local/cuda --cudnn_home /usr/lib/aarch64-linux-gnu \
    --use_tensorrt --tensorrt_home /usr/lib/aarch64-linux-gnu \
    --cmake_extra_defines CMAKE_CUDA_ARCHITECTURES=87 onnxruntime_BUILD_UNIT_TESTS=OFF)
  ORT_DIR="$src/build/Linux/Release"
fi
for lib in libonnxruntime.so libonnxruntime_providers_shared.so libonnxruntime_providers_cuda.so libonnxruntime_providers_tensorrt.so; do
  [ -e "$ORT_DIR/$lib" ] || die "$ORT_DIR/$lib missing: the ONNX Runtime build did not produce it"
done
# Beside the app (where the managed package looks first); the providers are loaded from beside libonnxruntime.so.
cp -L "$ORT_DIR/libonnxruntime.so" "$APP/libonnxruntime.so"
cp -L "$ORT_DIR"/libonnxruntime_providers_{shared,cuda,tensorrt}.so "$APP/"

# ---- 4. OpenCvSharpExtern against JetPack's OpenCV
step "4/5: libOpenCvSharpExtern.so (OpenCvSharp $OPENCVSHARP_VERSION) against JetPack's OpenCV $(pkg-config --modversion opencv4)"
ocs="$WORK/opencvsharp"
[ -d "$ocs/.git" ] || git clone --depth 1 --branch "$OPENCVSHARP_VERSION" https://github.com/shimat/opencvsharp "$ocs"
"$ROOT/tools/jetson/build-opencvsharp-extern.sh" --src "$ocs" --out "$APP/libOpenCvSharpExtern.so" --jobs "$JOBS"

# ---- 5. install, status, one image
step "5/5: install under /opt/fma-edge with the systemd unit"
"$ROOT/systemd/install.sh" "$APP"
for _ in $(seq 1 600); do fma-edge status >/dev/null 2>&1 && break; sleep 1; done
say "fma-edge status (the first start builds the TensorRT engine: minutes; the status shows 'loading' meanwhile):"
fma-edge status || true
image=/var/lib/fma-edge/check.png
install -m 0644 "$(find "$ROOT/tools/demo/images" -name '*.png' | sort | head -1)" "$image"
say "one image through the same pipeline (fma-edge classify): the line 'on <provider>' names the provider that served"
# As the service user, so the engine it builds lands in the shared cache with the owner the daemon writes as.
runuser -u fma-edge -- fma-edge classify --model "$(ls /var/lib/fma-edge/models/*.onnx | head -1)" "$image"
say "done. Check TensorRT is really used: docs/jetson.md, 'Is TensorRT really used?'"
