#!/usr/bin/env bash
# Run the whole test suite (sets up first; set-up is idempotent and quick when done).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PYANNOTE_METRICS_ENABLED=false HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
