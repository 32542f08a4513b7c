#!/usr/bin/env bash
# CI: builds the libFuzzer targets (fuzz/) with clang under ASan+UBSan and runs each for a bounded
# time over a copy of its seed corpus (fuzz/corpus/<target>, which is never modified). Fails on
# any crash, leak, timeout, sanitizer report or violated property; prints each target's run count
# and coverage.
#
#   bash scripts/ci-fuzz.sh                 # 60 s per target
#   FUZZ_SECONDS=600 bash scripts/ci-fuzz.sh
#   BUILD_DIR=build-fuzz FUZZ_TARGETS="fuzz_payload" bash scripts/ci-fuzz.sh
#
# A crash leaves its input in $BUILD_DIR/fuzz-artifacts/; reproduce it with
#   $BUILD_DIR/fuzz/<target> <file>
# then add a regression test (tests/...) and the input to fuzz/corpus/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
build=${BUILD_DIR:-build-fuzz}
targets=${FUZZ_TARGETS:-"fuzz_payload fuzz_import fuzz_store_uri fuzz_cli_args"}

# clang 14 and its runtime libraries (libFuzzer, ASan, UBSan) from Debian, when missing.
missing=()
for p in clang libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "ci-fuzz: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
bash scripts/install-deps.sh

cmake -S . -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DANNALS_BUILD_FUZZERS=ON -DANNALS_BUILD_TESTS=OFF -DANNALS_BUILD_EXAMPLES=OFF \
  -DANNALS_BUILD_BENCH=OFF -DANNALS_INSTALL=OFF >/dev/null
# shellcheck disable=SC2086
cmake --build "$build" -j"$(nproc)" --target $targets fuzz_seeds

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
artifacts="$build/fuzz-artifacts"
mkdir -p "$artifacts"

# The committed corpus plus the seeds the current code generates (valid encodings of today).
"$build/fuzz/fuzz_seeds" "$work/generated"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
for t in $targets; do
  corpus="$work/corpus-$t"
  mkdir -p "$corpus"
  cp -r "fuzz/corpus/$t/." "$corpus/"
  [ -d "$work/generated/$t" ] && cp -r "$work/generated/$t/." "$corpus/"
  echo
  echo "=== $t: ${seconds}s from $(find "$corpus" -type f | wc -l) seeds"
  log="$work/$t.log"
  status=0
  "$build/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/$t-" "$corpus" >"$log" 2>&1 || status=$?
  # The last status line (runs, coverage, features, corpus) and the final stats.
  grep -E '^#[0-9]+' "$log" | tail -1 || true
  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
  if [ "$status" -ne 0 ]; then
    echo "ci-fuzz: $t FAILED (exit $status); the log's end:"
    grep -vE '^#[0-9]+' "$log" | tail -60
    failed+=("$t")
  fi
done

echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "ci-fuzz: failed: ${failed[*]} (inputs in $artifacts)"
  exit 1
fi
echo "ci-fuzz: every target ran ${seconds}s without a finding"
