#!/usr/bin/env bash
# Quick start, part 1: install what is missing, build annals, run the workflow demo on an
# embedded SQLite database (build/annals-demo.db).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target workflow_demo -j"$(nproc)"
./build/examples/workflow_demo build/annals-demo.db
