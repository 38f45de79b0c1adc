#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian (or Raspberry Pi OS) clone, doing the set-up the tests need first:
#
#   1. the Debian packages the tests use (below): installed when missing, as root; otherwise the one apt command to
#      run is printed and the script exits 1. A service a package starts on install (Mosquitto on 1883, PostgreSQL)
#      is stopped and disabled again: the tests start their own on ephemeral ports.
#   2. npm ci, only when node_modules is missing or older than package-lock.json.
#   3. the optional native sd-notify module, rebuilt when it is not loadable but libsystemd-dev is there.
#   4. npm test (build, then vitest), with this script's arguments passed through, e.g.
#        scripts/test.sh test/ops/cli.test.ts
#        scripts/test.sh --reporter=json --outputFile=report.json
#
# A test that needs a missing tool fails, it never skips: this script is what makes the tools be there.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian packages the tests use, and why:
#  - mosquitto: external-broker mode runs against a real Mosquitto
#  - systemd: systemd-analyze verify of the unit files
#  - libsystemd-dev: lets the optional sd-notify native module compile (the notify tests use the native path)
#  - shellcheck: the lint of scripts/install.sh and of this script
#  - openssl: the TLS listener tests make a self-signed certificate
#  - python3: the sd_notify tests bind a unix datagram NOTIFY_SOCKET with it (Node has no unix dgram)
#  - strace: tests that watch a process's system calls
#  - chromium: tests that drive a headless browser
#  - postgresql: tests that start a private PostgreSQL cluster of their own
PACKAGES=(mosquitto systemd libsystemd-dev shellcheck openssl python3 strace chromium postgresql)
# Services these packages start when installed; the tests never use them.
SERVICES=(mosquitto postgresql)

say() { printf 'test.sh: %s\n' "$*"; }

installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

missing_packages() {
  local pkg
  for pkg in "${PACKAGES[@]}"; do
    installed "${pkg}" || printf '%s\n' "${pkg}"
  done
}

stop_services() {
  local svc
  for svc in "${SERVICES[@]}"; do
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
      systemctl disable --now "${svc}" >/dev/null 2>&1 || true
    elif command -v service >/dev/null 2>&1; then
      service "${svc}" stop >/dev/null 2>&1 || true
    fi
  done
  say "stopped the services the new packages started (${SERVICES[*]}): the tests start their own"
}

ensure_packages() {
  if ! command -v dpkg-query >/dev/null 2>&1; then
    say "not a Debian system: make sure these are installed: ${PACKAGES[*]}"
    return
  fi
  local missing
  mapfile -t missing < <(missing_packages)
  [ "${#missing[@]}" -eq 0 ] && return
  local cmd="apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then
    say "the tests need Debian packages that are not installed: ${missing[*]}"
    say "install them, then run this again:"
    printf '  sudo apt-get update && sudo %s\n' "${cmd}" >&2
    exit 1
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  stop_services
}

ensure_node_modules() {
  if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "npm ci (node_modules missing or older than package-lock.json)"
    npm ci --no-audit --no-fund
  fi
}

# sd-notify is an optional dependency: npm leaves it out (or unbuilt) when libsystemd-dev was missing at npm ci.
ensure_sd_notify() {
  node -e 'require("sd-notify")' >/dev/null 2>&1 && return
  if command -v dpkg-query >/dev/null 2>&1 && ! installed libsystemd-dev; then return; fi
  if [ -d node_modules/sd-notify ]; then
    say "building the native sd-notify module (npm rebuild sd-notify)"
    npm rebuild sd-notify
  else
    say "sd-notify was left out at install (no libsystemd-dev then): npm ci"
    npm ci --no-audit --no-fund
  fi
  node -e 'require("sd-notify")' >/dev/null 2>&1 || say "warning: the native sd-notify module still does not load; the notify tests will say why"
}

ensure_packages
ensure_node_modules
ensure_sd_notify
say "npm test $*"
exec npm test -- "$@"
