#!/usr/bin/env bash
# A PNG of a report page as headless Chromium renders it:
#   scripts/report-screenshot.sh [PAGE.html] [OUT.png] [WIDTHxHEIGHT]
# Without PAGE, renders the sample 100-loop chain page (cargo run --example report_sample). Default output
# report.png, default size 1280x2400; add RD_CHAIN_DARK=1 for dark mode. Installs Chromium if missing
# (scripts/ensure-chromium.sh).
set -euo pipefail
page=${1:+$(realpath -m "$1")}
out=$(realpath -m "${2:-report.png}")
size=${3:-1280x2400}
cd "$(dirname "$0")/.."
. scripts/ensure-chromium.sh

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -z "$page" ]; then
    cargo run --quiet --example report_sample -- "$work" >/dev/null
    page=$work/run.html
fi
[ -f "$page" ] || { echo "report-screenshot: no such page: $page" >&2; exit 2; }
chromium=$(ensure_chromium)
dark=()
if [ "${RD_CHAIN_DARK:-}" = 1 ]; then
    dark=(--force-dark-mode)
fi
"$chromium" --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
    --no-first-run --hide-scrollbars --user-data-dir="$work/profile" --window-size="${size/x/,}" \
    "${dark[@]}" --screenshot="$out" "file://$page" 2>"$work/chromium.log" || {
    cat "$work/chromium.log" >&2
    exit 1
}
echo "$out"
