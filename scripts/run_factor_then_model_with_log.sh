#!/usr/bin/env bash
# The old two-step script, kept so existing commands still work: it now calls rd-chain, which runs
# `rdagent fin_factor`, resolves the SOTA factor workspace from that run's own log (no `ls -t log | head -1`),
# checks its parquet, and runs `rdagent fin_model` with the factors handed over.
#
#   ./run_factor_then_model_with_log.sh            # 10 factor loops, then 10 model loops
#   FACTOR_LOOPS=5 MODEL_LOOPS=3 ./run_factor_then_model_with_log.sh
#   ./run_factor_then_model_with_log.sh --dry-run  # extra arguments go to rd-chain
set -euo pipefail
RD_CHAIN=${RD_CHAIN:-rd-chain}
if ! command -v "$RD_CHAIN" >/dev/null 2>&1; then
    echo "rd-chain is not installed: run 'cargo install --path .' in the rd-chain checkout, or set RD_CHAIN" >&2
    exit 4
fi
exec "$RD_CHAIN" --factor-loops "${FACTOR_LOOPS:-10}" --model-loops "${MODEL_LOOPS:-10}" "$@"
