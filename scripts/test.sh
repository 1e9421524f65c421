#!/usr/bin/env bash
# The one test command: installs what is missing, then runs pytest with any extra arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# Importable without the editable install, and no stray .pyc files from root runs.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
# The import rules of docs/architecture.md first: a broken layer fails in a second, before any server starts.
.venv/bin/lint-imports --no-cache
exec .venv/bin/python -m pytest -q "$@"
