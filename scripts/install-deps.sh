#!/usr/bin/env bash
# Installs the Debian 12 packages annals builds with, skipping those already present.
# Run as root (or with sudo available). Safe to run again.
set -euo pipefail

packages=(build-essential cmake pkg-config libboost-dev libsqlitecpp-dev libsqlite3-dev
          libcereal-dev rapidjson-dev nlohmann-json3-dev libssl-dev catch2 libcli11-dev
          libpq-dev
          postgresql-15
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
