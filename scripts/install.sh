#!/usr/bin/env bash
# Idempotent installer for CI, the demo and the tests: Debian packages, then the venv.
# Safe to run on every test run: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[install] %s\n' "$*"; }

# Debian 12 names. postgresql-15 already Provides postgresql-contrib-15 (pg_stat_statements);
# there is no separate contrib package to install. fonts-liberation gives chromium real fonts;
# systemd gives systemd-analyze, which checks the units in deploy/systemd.
PACKAGES=(python3-venv python3-pip postgresql-15 postgresql-15-hypopg redis-server prometheus
  prometheus-node-exporter prometheus-alertmanager chromium fonts-liberation systemd)

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]})); then
  SUDO=()
  can_install=0
  if [[ $(id -u) -eq 0 ]]; then
    can_install=1
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
    can_install=1
  fi
  if ((can_install)); then
    say "apt-get install: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Package services (redis, prometheus, a 15/main cluster) may start on their default ports;
    # nothing here relies on them: the tests start their own servers on free ports.
    "${SUDO[@]}" apt-get update -qq || say "apt-get update failed; trying the cached package lists"
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    say "WARNING: missing Debian packages and no root/sudo: ${missing[*]}"
    say "         run: sudo apt-get install -y --no-install-recommends ${missing[*]}"
  fi
else
  say "Debian packages present"
fi

if [[ ! -x .venv/bin/python ]]; then
  say "creating .venv with /usr/bin/python3"
  # Debian's python3, not a python under /root: other users (e.g. postgres) can run it.
  /usr/bin/python3 -m venv .venv
fi

# Reinstall only when requirements.txt or pyproject.toml changed (keeps reruns fast and offline).
stamp=.venv/.observatory-install.sha256
want=$(cat requirements.txt pyproject.toml 2>/dev/null | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  say "pip install -r requirements.txt"
  .venv/bin/pip install -q -r requirements.txt
  if [[ -f pyproject.toml ]]; then
    say "pip install -e ."
    .venv/bin/pip install -q -e .
  fi
  echo "$want" >"$stamp"
else
  say "venv up to date"
fi
