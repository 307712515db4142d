#!/usr/bin/env bash
# The Bazel build (second build, offline; see bazel/README.md): builds every target, then
# runs every test. This is what CI runs. Needs Debian's bazel-bootstrap (scripts/bootstrap.sh --bazel).
#   scripts/bazel-test.sh [extra bazel flags...]      e.g. scripts/bazel-test.sh -c opt
set -euo pipefail
cd "$(dirname "$0")/.."
bazel build //... --jobs=2 "$@"
bazel test //... --test_output=errors --jobs=2 "$@"
