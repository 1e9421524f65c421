#!/usr/bin/env bash
# The one test command: installs what is missing, then runs pytest with any extra arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# Importable without the editable install, and no stray .pyc files from root runs.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
exec .venv/bin/python -m pytest -q "$@"
