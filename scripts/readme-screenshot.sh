#!/usr/bin/env bash
# docs/report.png, the README's picture of a report page: runs scripts/demo.sh (a chain with the simulated
# rdagent) and takes a screenshot of the report page it wrote with scripts/report-screenshot.sh.
#   scripts/readme-screenshot.sh [WIDTHxHEIGHT]      (default 1200x2100)
# The page shows the chain's logs and workspaces relative to its project dir; the picture also shows the
# simulated rdagent's path relative to the repository (a copy of the page with that prefix removed), so it
# does not depend on where the repository was checked out.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
page=$(scripts/demo.sh | sed -n 's/^demo: report //p' | tail -n 1)
if [ -z "$page" ] || [ ! -f "$page" ]; then
    echo "readme-screenshot: scripts/demo.sh printed no report page" >&2
    exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s|$repo/||g" "$page" >"$work/report.html"
scripts/report-screenshot.sh "$work/report.html" docs/report.png "${1:-1200x2100}"
