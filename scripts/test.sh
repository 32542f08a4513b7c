#!/usr/bin/env bash
# Quick start, part 2: install what is missing, build annals with its tests, run them all.
# BUILD_DIR and CMAKE_ARGS may be set to build a variant (CI uses them for the sanitizers).
# The tests run under scripts/with-pg.sh: with a throwaway PostgreSQL server when it can start one
# (root, PostgreSQL installed), so annals_pg_tests runs too; otherwise those tests are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${BUILD_DIR:-build}
bash scripts/install-deps.sh
# shellcheck disable=SC2086
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo ${CMAKE_ARGS:-} >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
bash scripts/with-pg.sh ctest --test-dir "$build_dir" --output-on-failure -j"$(nproc)"
