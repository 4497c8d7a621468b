#!/usr/bin/env bash
# Headless Chromium for the report page's browser test (scripts/tests/test_report_browser.py) and for
# scripts/report-screenshot.sh. Run it, or source it and call `ensure_chromium`: when no Chromium is on PATH
# (and RD_CHAIN_CHROMIUM names none), it installs Debian's `chromium` package with apt-get (via sudo when not
# root). Prints the browser's path.

chromium_path() {
    if [ -n "${RD_CHAIN_CHROMIUM:-}" ]; then
        command -v "$RD_CHAIN_CHROMIUM"
        return
    fi
    local name
    for name in chromium chromium-browser google-chrome google-chrome-stable; do
        if command -v "$name"; then
            return 0
        fi
    done
    return 1
}

ensure_chromium() {
    if chromium_path >/dev/null; then
        chromium_path
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "ensure-chromium: no Chromium on PATH and no apt-get here; install Chromium (or set RD_CHAIN_CHROMIUM to its binary)" >&2
        return 1
    fi
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        sudo=sudo
    fi
    echo "ensure-chromium: installing chromium with apt-get" >&2
    $sudo apt-get update -qq >&2 &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >&2 &&
        chromium_path
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    ensure_chromium
fi
