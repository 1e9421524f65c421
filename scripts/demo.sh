#!/usr/bin/env bash
# The newcomer's first command: install what is missing, then run the observatory against its own
# throwaway PostgreSQL with a live workload. Extra arguments go to `observatory demo`
# (--port, --host, --dir, --minutes). Ctrl-C stops everything; the store stays in demo-data/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/observatory demo "$@"
