#!/usr/bin/env bash
# Quick start, part 2: install what is missing, build annals with its tests, run them all.
# BUILD_DIR and CMAKE_ARGS may be set to build a variant (CI uses them for the sanitizers).
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${BUILD_DIR:-build}
bash scripts/install-deps.sh
# shellcheck disable=SC2086
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo ${CMAKE_ARGS:-} >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
ctest --test-dir "$build_dir" --output-on-failure -j"$(nproc)"
