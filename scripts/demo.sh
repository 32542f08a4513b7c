#!/usr/bin/env bash
# Quick start, part 1: install what is missing, build annals, and run `annals demo` on an
# embedded SQLite database (build/annals-demo.db): realistic workflow runs of several tenants
# and apps, then the first page of one app's runs. Then verify the log's hash chain.
# (examples/workflow_demo.cpp is the smallest program embedding the library; this is the tool.)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target annals_cli -j"$(nproc)"
./build/tools/annals demo --db build/annals-demo.db
echo
./build/tools/annals verify --db build/annals-demo.db
