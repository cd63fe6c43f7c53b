#!/usr/bin/env bash
# Builds libOpenCvSharpExtern.so (the native half of OpenCvSharp) from the OpenCvSharp sources against the
# platform's own OpenCV: the modules fma-edge uses (core, imgproc, imgcodecs, videoio) and nothing else.
# The same recipe serves the Jetson (native build against JetPack's OpenCV 4.8) and `./build.sh arm64-check`
# (cross build for aarch64 against Debian 12's OpenCV 4.6 in an unpacked sysroot).
#
#   build-opencvsharp-extern.sh --src DIR --out FILE [--sysroot DIR] [--jobs N]
#
#   --src DIR      an OpenCvSharp source tree at the tag the managed package pins (OpenCvSharp4 in
#                  Directory.Packages.props, e.g. 4.13.0.20260627): it must hold src/OpenCvSharpExtern.
#                  On a machine with GitHub access:
#                    git clone --depth 1 --branch 4.13.0.20260627 https://github.com/shimat/opencvsharp
#   --out FILE     where to write libOpenCvSharpExtern.so
#   --sysroot DIR  cross-compile for aarch64 (aarch64-linux-gnu-g++) against the OpenCV under DIR/usr;
#                  without it, build natively with g++ against the OpenCV that pkg-config calls opencv4
#   --jobs N       parallel compiler processes (default: the number of cores)
#
# The OpenCvSharp wrappers for modules we do not link are compiled out with the sources' own NO_* switches, so
# the library needs only four OpenCV libraries and their dependencies. A wrapper the managed side calls for a
# module left out fails with EntryPointNotFoundException, which fma-edge never does (it uses Mat, ImRead/ImDecode,
# ImEncode/ImWrite, Resize, CvtColor, CopyMakeBorder, Flip/Rotate and VideoCapture). Linking uses --no-undefined,
# so a wrapper that needs a module we left out fails the build here, not at run time on the device.
set -euo pipefail

SRC="" OUT="" SYSROOT="" JOBS=$(nproc)
while [ $# -gt 0 ]; do
  case "$1" in
    --src) SRC=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --sysroot) SYSROOT=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "build-opencvsharp-extern: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$SRC" ] && [ -n "$OUT" ] || { echo "build-opencvsharp-extern: --src and --out are required (see --help)" >&2; exit 2; }
EXTERN="$SRC/src/OpenCvSharpExtern"
[ -f "$EXTERN/core.cpp" ] || { echo "build-opencvsharp-extern: $EXTERN/core.cpp not found: --src must be an OpenCvSharp source tree" >&2; exit 2; }

# The modules we build wrappers for, and the switches that leave the others out.
MODULE_SOURCES=(core imgproc imgcodecs videoio std_string std_vector)
OPENCV_LIBS=(-lopencv_videoio -lopencv_imgcodecs -lopencv_imgproc -lopencv_core)
DISABLED=(NO_CONTRIB NO_STITCHING NO_CALIB3D NO_VIDEO NO_FEATURES2D NO_FLANN NO_DNN NO_ML NO_OBJDETECT NO_PHOTO
  NO_BARCODE NO_HIGHGUI)

if [ -n "$SYSROOT" ]; then
  CXX=${CXX:-aarch64-linux-gnu-g++}
  MULTIARCH=aarch64-linux-gnu
  INCLUDE="$SYSROOT/usr/include/opencv4"
  LIBDIRS=("$SYSROOT/usr/lib/$MULTIARCH" "$SYSROOT/lib/$MULTIARCH" "$SYSROOT/usr/lib/$MULTIARCH/blas"
    "$SYSROOT/usr/lib/$MULTIARCH/lapack")
  CFLAGS=(-I"$INCLUDE")
  # The sysroot's libc.so is a linker script naming absolute paths: --sysroot makes the linker read them inside it.
  LDFLAGS=(--sysroot="$SYSROOT" -L"$SYSROOT/usr/lib/$MULTIARCH")
  for d in "${LIBDIRS[@]}"; do LDFLAGS+=(-Wl,-rpath-link,"$d"); done
else
  CXX=${CXX:-g++}
  command -v pkg-config >/dev/null || { echo "build-opencvsharp-extern: pkg-config is required" >&2; exit 2; }
  pkg-config --exists opencv4 || { echo "build-opencvsharp-extern: no OpenCV 4 found by pkg-config (install libopencv-dev)" >&2; exit 2; }
  read -r -a CFLAGS <<<"$(pkg-config --cflags opencv4)"
  read -r -a LDFLAGS <<<"$(pkg-config --libs-only-L opencv4)"
  INCLUDE=$(pkg-config --variable=includedir opencv4)
fi
command -v "$CXX" >/dev/null || { echo "build-opencvsharp-extern: compiler $CXX not found" >&2; exit 2; }
version_header="$INCLUDE/opencv2/core/version.hpp"
[ -f "$version_header" ] || { echo "build-opencvsharp-extern: OpenCV headers not found ($version_header)" >&2; exit 2; }
cv_version=$(awk '/#define CV_VERSION_(MAJOR|MINOR|REVISION) /{printf "%s%s", sep, $3; sep="."}' "$version_header")

OBJ=$(mktemp -d)
trap 'rm -rf "$OBJ"' EXIT
defines=()
for d in "${DISABLED[@]}"; do defines+=(-D"$d"); done
echo "build-opencvsharp-extern: $CXX, OpenCV $cv_version, wrappers for ${MODULE_SOURCES[*]}" >&2
# One compiler process per source file, at most JOBS at once; the first failure stops the build.
printf '%s\n' "${MODULE_SOURCES[@]}" | xargs -P "$JOBS" -I{} \
  "$CXX" -std=gnu++17 -O2 -fPIC -DNDEBUG "${defines[@]}" "${CFLAGS[@]}" -w -c "$EXTERN/{}.cpp" -o "$OBJ/{}.o"
mkdir -p "$(dirname "$OUT")"
"$CXX" -shared -Wl,--no-undefined -Wl,-soname,libOpenCvSharpExtern.so -o "$OUT.tmp" "$OBJ"/*.o \
  "${LDFLAGS[@]}" "${OPENCV_LIBS[@]}"
mv "$OUT.tmp" "$OUT"
echo "build-opencvsharp-extern: wrote $OUT (OpenCV $cv_version)" >&2
