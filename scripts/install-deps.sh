#!/usr/bin/env bash
# Installs the Debian 12 packages annals builds and tests with, skipping those already present.
# Run as root (or with sudo available). Safe to run again.
#
#   bash scripts/install-deps.sh               the build and test packages (a failure is an
#                                              error), then Chromium for the viewer's browser
#                                              test, optionally: if Chromium cannot be installed
#                                              it says why and still succeeds (CTest then skips
#                                              serve_viewer_browser)
#   bash scripts/install-deps.sh --no-browser  the build and test packages only
#   bash scripts/install-deps.sh --browser     Chromium only; fails, saying why, if it cannot be
#                                              installed (.ci/run uses this)
set -euo pipefail

packages=(build-essential cmake pkg-config libboost-dev libsqlitecpp-dev libsqlite3-dev
          libcereal-dev rapidjson-dev nlohmann-json3-dev libssl-dev catch2 libcli11-dev
          libpq-dev
          postgresql-15
          python3 curl wrk  # python3: tests/browser/; curl: docs/serve.md examples; wrk: annals_bench W9
)
# Headless Chromium and its WebDriver for tests/browser/viewer_test.py. Large, and not
# installable everywhere (e.g. where chromium is a snap): kept apart from the packages above.
browser_packages=(chromium chromium-driver)

missing_of() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

# apt_install PACKAGE...: installs them; returns non-zero (apt's output on stderr) on failure.
updated=""
apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
      echo "install-deps: not root and no sudo: cannot install $*" >&2
      return 1
    fi
    sudo="sudo"
  fi
  echo "install-deps: installing $*"
  if [ -z "$updated" ]; then
    $sudo apt-get update -qq || return 1
    updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

install_required() {
  local missing
  mapfile -t missing < <(missing_of "${packages[@]}")
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
}

# install_browser: 0 when chromium and chromedriver are there afterwards, else 1 with the reason.
install_browser() {
  local missing
  mapfile -t missing < <(missing_of "${browser_packages[@]}")
  if [ ${#missing[@]} -gt 0 ] && ! apt_install "${missing[@]}"; then
    echo "install-deps: could not install ${missing[*]} (apt-get failed, see above)" >&2
    return 1
  fi
  local tool
  for tool in chromium chromedriver; do
    if ! command -v "$tool" >/dev/null; then
      echo "install-deps: packages ${browser_packages[*]} are installed but '$tool' is not on PATH" >&2
      return 1
    fi
  done
  return 0
}

case "${1:-}" in
  "")
    install_required
    install_browser || echo "install-deps: Chromium is optional: without it the browser test" \
                            "serve_viewer_browser is skipped" >&2
    ;;
  --no-browser) install_required ;;
  --browser) install_browser ;;
  *) echo "install-deps: unknown option '$1' (expected --browser, --no-browser or nothing)" >&2; exit 2 ;;
esac
