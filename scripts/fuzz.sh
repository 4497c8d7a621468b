#!/usr/bin/env bash
# Fuzz rd-chain's snapshot reader: runs each cargo-fuzz target in fuzz/ for SECONDS (default 60), one after the
# other: `decode` (the pickle decoder and every graph accessor) and `snapshot` (envelope, decode, history,
# metrics, paths, signature). Seeds: every snapshot of the generated fixture trees (up to 256 KiB each; written
# once into target/fuzz/seeds) and the hostile shapes kept in fuzz/corpus/<target>/. New inputs go to
# target/fuzz/corpus/<target>, crashes and timeouts to target/fuzz/artifacts/<target>/.
# Needs the nightly toolchain and cargo-fuzz (`rustup toolchain install nightly`, `cargo install cargo-fuzz`).
# Usage: scripts/fuzz.sh [SECONDS]
# Exit: 0 every target ran clean; 1 a target crashed, hung or ran out of memory (the input is named above);
#       2 usage error, or nightly / cargo-fuzz missing.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
if ! [[ "$secs" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS]  (seconds per target, default 60)" >&2
    exit 2
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: the nightly toolchain is missing: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 2
fi

work=$PWD/target/fuzz
seeds=$work/seeds
if [ ! -f "$seeds/.complete" ]; then
    rm -rf "$work/tree" "$seeds"
    mkdir -p "$seeds/decode" "$seeds/snapshot"
    python3 scripts/fixtures tree "$work/tree" >/dev/null
    # Whole files seed `snapshot`; their pickle payloads (a signed envelope taken off) seed `decode`.
    python3 - "$work/tree" "$seeds" <<'PY'
import hashlib, os, sys
tree, seeds = sys.argv[1], sys.argv[2]
magic = b"RDAGENT_SIGNED_PICKLE_V1\n"
for root, _dirs, files in os.walk(tree):
    if "__session__" not in root.split(os.sep):
        continue
    for name in files:
        with open(os.path.join(root, name), "rb") as f:
            data = f.read()
        if not data or len(data) > 256 * 1024:
            continue
        payload = data[len(magic) + 32:] if data.startswith(magic) else data
        for target, blob in (("snapshot", data), ("decode", payload)):
            with open(os.path.join(seeds, target, hashlib.sha256(blob).hexdigest()[:16]), "wb") as out:
                out.write(blob)
PY
    touch "$seeds/.complete"
fi

for target in decode snapshot; do
    mkdir -p "$work/corpus/$target" "$work/artifacts/$target"
    echo "fuzz.sh: $target for ${secs}s"
    # -timeout: one input taking 25 s means superlinear work; -rss_limit_mb: memory far beyond any input.
    if ! cargo +nightly fuzz run -O "$target" \
        "$work/corpus/$target" "$PWD/fuzz/corpus/$target" "$seeds/$target" -- \
        -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/$target/"; then
        echo "fuzz.sh: target $target failed (crash, hang or memory): the input is in $work/artifacts/$target/;" \
            "replay it with: cargo +nightly fuzz run $target <that file>" >&2
        exit 1
    fi
done
echo "fuzz.sh: every target ran ${secs}s without a crash"
