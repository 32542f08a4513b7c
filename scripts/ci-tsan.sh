#!/usr/bin/env bash
# CI: the concurrency tests under ThreadSanitizer. Builds (in build-tsan, or BUILD_DIR) only
# what they need: the library, annals_concurrency_tests (group commit, racing writers, projection
# runners, inline vs async projections: the tests of annals_tests that run threads) and
# annals_reliability_tests, whose [concurrency] tests race threads and processes on one file, and
# annals_serve_tests (the HTTP server's io threads, shutdown, 8 clients x 500 requests).
# Any report stops the test (halt_on_error=1) and fails this script. No suppressions.
#
# GCC 12 warns (-Wtsan, an error under -Werror) that TSan does not model the
# std::atomic_thread_fence in Boost.Asio's headers: ANNALS_SANITIZE_THREAD builds with -Wno-tsan.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${BUILD_DIR:-build-tsan}
jobs=${JOBS:-$(nproc)}
start=$SECONDS

cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DANNALS_SANITIZE_THREAD=ON \
  -DANNALS_BUILD_TOOLS=OFF -DANNALS_BUILD_EXAMPLES=OFF -DANNALS_BUILD_BENCH=OFF \
  -DANNALS_INSTALL=OFF >/dev/null
cmake --build "$build_dir" -j"$jobs" --target annals_concurrency_tests annals_reliability_tests \
  annals_serve_tests
echo "built in $((SECONDS - start)) s"

# second_deadlock_stack: a lock-order report shows where both locks were taken.
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
"$build_dir/tests/annals_concurrency_tests" --durations yes
"$build_dir/tests/annals_reliability_tests" "[concurrency]" --durations yes
"$build_dir/tests/annals_serve_tests" --durations yes
echo "ThreadSanitizer: no reports ($((SECONDS - start)) s in all)"
