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
# A small tmpfs for the full-disk test (tests/test_faults_store.py), mounted while root and unmounted
# after; writable by any user, should pytest run as another. Under CI the test fails without it.
FULL_DISK=/run/observatory-tests/full
mounted=0
if [[ $(id -u) -eq 0 ]] && ! mountpoint -q "$FULL_DISK"; then
  mkdir -p "$FULL_DISK"
  mount -t tmpfs -o size=8m,mode=1777 tmpfs "$FULL_DISK" && mounted=1
fi
# Only what this run mounted, and only if it is still there: a failed umount must not decide the exit status.
trap '((mounted)) && mountpoint -q "$FULL_DISK" && umount -l "$FULL_DISK" || true' EXIT
.venv/bin/python -m pytest -q "$@"
