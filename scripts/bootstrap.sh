#!/usr/bin/env bash
# Installs every Debian 12 package DASH needs to build, test and run.
# Idempotent: packages already present are not reinstalled, and apt is not
# touched at all when nothing is missing. Run as root or with sudo available.
#   scripts/bootstrap.sh [--bazel | --build-only]
#     --bazel       also installs Bazel for the second build;
#     --build-only  only what the CMake build needs (the container image's build stage).
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  protobuf-compiler protobuf-compiler-grpc libprotobuf-dev libgrpc++-dev
  libabsl-dev librocksdb-dev libgoogle-glog-dev libgflags-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libssl-dev zlib1g-dev libxxhash-dev libcli11-dev nlohmann-json3-dev libicu-dev libstemmer-dev
  # FAISS (vector index): a static libfaiss.a linked with reference BLAS/LAPACK; OpenMP
  # (libgomp, omp.h) comes with the compiler (libgcc-12-dev).
  libfaiss-dev libblas-dev liblapack-dev
  # Stream VByte: the index's block-compressed postings (node/index/postings_block.h).
  libstreamvbyte-dev
  # The HTTP port of every process (cpp-httplib) and its Prometheus metrics (prometheus-cpp).
  libcpp-httplib-dev prometheus-cpp-dev
)
build_only=false
[[ " $* " == *" --build-only "* ]] && build_only=true
$build_only || packages+=(
  python3 python3-grpcio python3-protobuf
  # openssl: deploy/tls/make-certs.sh (dev CA, certificates, JWT key). clang with its runtime:
  # the sanitizer and libFuzzer build (scripts/sanitize-test.sh).
  openssl clang libclang-rt-14-dev
  # curl: the quick start's HTTPS call (deploy/local/up.sh). prometheus (with promtool): the
  # alert rules' tests and the test that scrapes a live cluster (tests/prometheus_*).
  curl prometheus
  # Node.js: the Node client and its test (clients/node; npm is added below when missing).
  nodejs
)
[[ " $* " == *" --bazel "* ]] && packages+=(bazel-bootstrap)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm: Debian's package, unless a Node.js build that bundles npm (NodeSource's) is installed.
$build_only || command -v npm >/dev/null ||
  dpkg-query -W -f='${Status}' npm 2>/dev/null | grep -q "install ok installed" || missing+=(npm)
if ((${#missing[@]} == 0)); then
  echo "bootstrap: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "bootstrap: run as root (sudo not found)" >&2; exit 1; }
  SUDO=sudo
fi
echo "bootstrap: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
