#!/usr/bin/env bash
# inbetweenies-gateway installer for Raspberry Pi OS / Debian (arm64, armhf, amd64). Idempotent: run it again to
# upgrade (the app is replaced, the config and the store are kept). See docs/operations.md.
#
#   sudo scripts/install.sh                 install (or upgrade), enable and start the gateway service
#   sudo scripts/install.sh --with-server   also the project's sync server (inbetweenies-server.service)
#   sudo scripts/install.sh --uninstall     remove the app and the units; keep config, store and user
#   sudo scripts/install.sh --uninstall --purge   also remove config, store and the user
#   DESTDIR=/tmp/root scripts/install.sh    stage into a directory (packaging, tests): no user, no systemctl
#
# Run it from a built checkout (npm ci && npm run build). Runtime dependencies are copied from its node_modules
# (production ones only), or installed with `npm ci --omit=dev` when it has none.
set -euo pipefail

APP=inbetweenies-gateway
SERVICE_USER=inbetweenies
NODE_MIN_MAJOR=20
PREFIX=/opt/${APP}
CONF_DIR=/etc/${APP}
STATE_DIR=/var/lib/${APP}
SERVER_CONF_DIR=/etc/inbetweenies-server
UNIT_DIR=/etc/systemd/system
BIN_LINK=/usr/local/bin/${APP}
DESTDIR=${DESTDIR:-}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
START=1
UNINSTALL=0
PURGE=0
WITH_SERVER=0

log() { printf '%s: %s\n' "${APP}-install" "$*"; }
die() { printf '%s: error: %s\n' "${APP}-install" "$*" >&2; exit 1; }

usage() {
  sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  cat <<EOF

options:
  --prefix DIR     where the app goes (default ${PREFIX})
  --no-start       install and enable, but do not start or restart the service
  --with-server    also install and enable inbetweenies-server.service
  --uninstall      remove the app, units and command link (config, store and user are kept)
  --purge          with --uninstall: also remove ${CONF_DIR}, ${STATE_DIR} and the user
  -h, --help       this help
environment: DESTDIR (staging root; implies --no-start, no user creation)
EOF
}

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; PREFIX=$2; shift ;;
      --prefix=*) PREFIX=${1#--prefix=} ;;
      --no-start) START=0 ;;
      --with-server) WITH_SERVER=1 ;;
      --uninstall) UNINSTALL=1 ;;
      --purge) PURGE=1 ;;
      -h|--help) usage; exit 0 ;;
      *) usage >&2; die "unknown option: $1" ;;
    esac
    shift
  done
  case "${PREFIX}" in /*) ;; *) die "--prefix: expected an absolute path, got ${PREFIX}" ;; esac
  if [ "${PURGE}" = 1 ] && [ "${UNINSTALL}" = 0 ]; then die "--purge only goes with --uninstall"; fi
  if [ -n "${DESTDIR}" ]; then START=0; fi
  if [ -z "${DESTDIR}" ] && [ "$(id -u)" != 0 ]; then die "run as root (sudo), or set DESTDIR to stage into a directory"; fi
}

# The system is live only without DESTDIR: then we create users and talk to systemd.
live() { [ -z "${DESTDIR}" ]; }

check_platform() {
  local arch
  if command -v dpkg >/dev/null 2>&1; then arch=$(dpkg --print-architecture); else arch=$(uname -m); fi
  case "${arch}" in
    arm64|aarch64|armhf|armv7l|amd64|x86_64) log "architecture ${arch}" ;;
    *) log "warning: architecture ${arch} is untested (supported: arm64, armhf, amd64)" ;;
  esac
  if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091
    . /etc/os-release
    case " ${ID:-} ${ID_LIKE:-} " in
      *" debian "*|*" raspbian "*) log "system ${PRETTY_NAME:-${ID:-?}}" ;;
      *) log "warning: ${PRETTY_NAME:-this system} is not Debian-based; continuing" ;;
    esac
  fi
}

NODE_BIN=
check_node() {
  NODE_BIN=$(command -v node || true)
  [ -n "${NODE_BIN}" ] || die "Node.js ${NODE_MIN_MAJOR}+ is required: sudo apt-get install nodejs (Debian 13+), or NodeSource's node_${NODE_MIN_MAJOR}.x"
  local version major
  version=$("${NODE_BIN}" --version)
  major=${version#v}
  major=${major%%.*}
  [ "${major}" -ge "${NODE_MIN_MAJOR}" ] || die "Node.js ${NODE_MIN_MAJOR}+ is required, found ${version} at ${NODE_BIN}"
  log "node ${version} at ${NODE_BIN}"
}

check_build() {
  [ -f "${SRC}/dist/cli.js" ] || die "${SRC}/dist/cli.js is missing: run 'npm ci && npm run build' in ${SRC} first"
  [ -f "${SRC}/package.json" ] || die "${SRC} is not an ${APP} checkout (no package.json)"
}

ensure_user() {
  if ! live; then log "DESTDIR set: not creating user ${SERVICE_USER}"; return; fi
  if getent passwd "${SERVICE_USER}" >/dev/null; then
    log "user ${SERVICE_USER} exists"
  else
    useradd --system --user-group --home-dir "${STATE_DIR}" --no-create-home --shell /usr/sbin/nologin \
      --comment "inbetweenies gateway" "${SERVICE_USER}"
    log "created system user ${SERVICE_USER}"
  fi
}

# Copies the production dependency tree (npm ls --omit=dev) of the checkout into $1/node_modules.
copy_runtime_deps() {
  local dest=$1 path rel
  if [ ! -d "${SRC}/node_modules" ]; then
    log "no node_modules in ${SRC}: npm ci --omit=dev in ${dest}"
    if live && command -v apt-get >/dev/null 2>&1 && ! dpkg -s libsystemd-dev >/dev/null 2>&1; then
      # lets the optional sd-notify module compile (else the systemd-notify binary is used)
      apt-get install -y -qq --no-install-recommends libsystemd-dev build-essential python3 >/dev/null || log "warning: libsystemd-dev not installed"
    fi
    (cd "${dest}" && npm ci --omit=dev --no-audit --no-fund)
    prune_runtime_deps "${dest}"
    return
  fi
  mkdir -p "${dest}/node_modules"
  # npm ls exits non-zero on mere warnings (extraneous packages): its list is still right.
  { (cd "${SRC}" && npm ls --omit=dev --all --parseable 2>/dev/null) || true; } | sort | while IFS= read -r path; do
    rel=${path#"${SRC}"/}
    case "${rel}" in node_modules/*) ;; *) continue ;; esac
    [ -e "${dest}/${rel}" ] && continue
    mkdir -p "$(dirname "${dest}/${rel}")"
    cp -a "${path}" "${dest}/${rel}"
  done
  [ -d "${dest}/node_modules/better-sqlite3" ] || die "runtime dependencies incomplete (better-sqlite3 missing): run 'npm ci' in ${SRC}"
  prune_runtime_deps "${dest}"
}

# Ships only what runs: a native module keeps its compiled build/Release/*.node and loses its build tree (object
# files, static libraries, makefiles), its C/C++ sources (better-sqlite3's deps/ and src/: ~27 MB) and its test
# extension; every package loses TypeScript sources and declarations, source maps and Markdown (licences are kept).
prune_runtime_deps() {
  local nm="$1/node_modules" gyp pkg dir main before after
  [ -d "${nm}" ] || return 0
  before=$(du -sk "${nm}" | cut -f1)
  while IFS= read -r -d '' gyp; do
    pkg=$(dirname "${gyp}")
    if [ -d "${pkg}/build" ]; then
      find "${pkg}/build" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
      if [ -d "${pkg}/build/Release" ]; then
        find "${pkg}/build/Release" -mindepth 1 -maxdepth 1 ! -name '*.node' -exec rm -rf {} +
        rm -f "${pkg}/build/Release/test_extension.node"
      fi
    fi
    # Sources and build scripts, unless the package's entry point lives there.
    main=$("${NODE_BIN:-node}" -e 'const p = require(process.argv[1]); process.stdout.write(String(p.main || "index.js"))' "${pkg}/package.json")
    for dir in deps src; do
      case "${main#./}" in "${dir}"/*) continue ;; esac
      rm -rf "${pkg:?}/${dir}"
    done
    find "${pkg}" -maxdepth 1 -type f \( -name '*.c' -o -name '*.cc' -o -name '*.cpp' -o -name '*.h' \) -delete
  done < <(find "${nm}" -name binding.gyp -print0)
  find "${nm}" -type f \( -name '*.ts' -o -name '*.mts' -o -name '*.cts' -o -name '*.map' -o -name '*.md' -o -name '*.markdown' \) \
    ! -iname 'licen[cs]e*' ! -iname 'copying*' -delete
  find "${nm}" -mindepth 1 -type d -empty -delete
  after=$(du -sk "${nm}" | cut -f1)
  log "runtime dependencies: $((after / 1024)) MB (build leftovers and sources removed: $(((before - after) / 1024)) MB)"
}

install_app() {
  local target="${DESTDIR}${PREFIX}" stage="${DESTDIR}${PREFIX}.new.$$" item
  mkdir -p "$(dirname "${target}")"
  rm -rf "${stage}"
  mkdir -p "${stage}"
  for item in dist config systemd scripts docs package.json package-lock.json README.md LICENSE CHANGELOG.md; do
    if [ -e "${SRC}/${item}" ]; then cp -a "${SRC}/${item}" "${stage}/"; fi
  done
  copy_runtime_deps "${stage}"
  chmod 0755 "${stage}/dist/cli.js"
  chmod -R u+rwX,go+rX,go-w "${stage}"
  # Swap in one rename so a running daemon never sees a half-copied tree (it keeps its open files until restart).
  if [ -e "${target}" ]; then
    rm -rf "${target}.old"
    mv "${target}" "${target}.old"
  fi
  mv "${stage}" "${target}"
  rm -rf "${target}.old"
  mkdir -p "${DESTDIR}$(dirname "${BIN_LINK}")"
  ln -sfn "${PREFIX}/dist/cli.js" "${DESTDIR}${BIN_LINK}"
  log "installed the app in ${target} (command: ${BIN_LINK})"
}

# Writes a file only when absent (never overwrites an admin's edits), mode 0640, group of the service user.
install_config_file() {
  local src=$1 dest=$2
  if [ -e "${dest}" ]; then
    log "keeping existing ${dest#"${DESTDIR}"}"
    return
  fi
  install -m 0640 "${src}" "${dest}"
  if live; then chown "root:${SERVICE_USER}" "${dest}"; fi
  log "wrote ${dest#"${DESTDIR}"} (mode 0640)"
}

install_config() {
  local conf="${DESTDIR}${CONF_DIR}" tmp
  mkdir -p "${conf}"
  chmod 0750 "${conf}"
  if live; then chown "root:${SERVICE_USER}" "${conf}"; fi
  tmp=$(mktemp)
  sed "s#^dataDir: .*#dataDir: ${STATE_DIR}#" "${SRC}/config/gateway.example.yaml" >"${tmp}"
  install_config_file "${tmp}" "${conf}/gateway.yaml"
  printf '%s\n' '# Secrets for inbetweenies-gateway.service (systemd EnvironmentFile), kept out of gateway.yaml:' \
    '# INBETWEENIES_CLIENT_ID=gw-...' '# INBETWEENIES_CLIENT_SECRET=...' >"${tmp}"
  install_config_file "${tmp}" "${conf}/environment"
  rm -f "${tmp}"
  if [ "${WITH_SERVER}" = 1 ]; then
    mkdir -p "${DESTDIR}${SERVER_CONF_DIR}"
    install_config_file "${SRC}/config/server.example.yaml" "${DESTDIR}${SERVER_CONF_DIR}/server.yaml"
  fi
}

# The store holds the gateway's access and refresh tokens: an existing one (from a version that left it 0640) is made
# private, or the daemon refuses to start (it checks its files at every start).
tighten_store() {
  local state="${DESTDIR}${STATE_DIR}" f
  [ -d "${state}" ] || return 0
  chmod 0700 "${state}"
  for f in "${state}/gateway.db" "${state}/gateway.db-wal" "${state}/gateway.db-shm"; do
    if [ -e "${f}" ]; then chmod 0600 "${f}"; fi
  done
}

# Units name /usr/bin/node and /opt/inbetweenies-gateway; other paths on this machine are written in.
install_unit() {
  local name=$1 dest="${DESTDIR}${UNIT_DIR}/$1"
  mkdir -p "${DESTDIR}${UNIT_DIR}"
  sed -e "s#/usr/bin/node #${NODE_BIN} #" -e "s#/opt/${APP}/#${PREFIX}/#g" "${SRC}/systemd/${name}" >"${dest}.tmp"
  chmod 0644 "${dest}.tmp"
  mv "${dest}.tmp" "${dest}"
  log "unit ${UNIT_DIR}/${name}"
}

start_services() {
  if ! live; then log "DESTDIR set: not calling systemctl"; return; fi
  command -v systemctl >/dev/null 2>&1 || { log "warning: no systemctl: enable the units by hand"; return; }
  systemctl daemon-reload
  local units=("${APP}.service")
  if [ "${WITH_SERVER}" = 1 ]; then units+=("inbetweenies-server.service"); fi
  systemctl enable "${units[@]}"
  if [ "${START}" = 1 ]; then
    # restart: an upgrade must run the new code; a first install just starts
    systemctl restart "${units[@]}"
    log "started ${units[*]} (journalctl -u ${APP} -f)"
  else
    log "enabled ${units[*]}; not started (--no-start)"
  fi
}

uninstall() {
  local unit
  if live && command -v systemctl >/dev/null 2>&1; then
    for unit in "${APP}.service" inbetweenies-server.service; do
      systemctl disable --now "${unit}" >/dev/null 2>&1 || true
    done
  fi
  rm -f "${DESTDIR}${UNIT_DIR}/${APP}.service" "${DESTDIR}${UNIT_DIR}/inbetweenies-server.service"
  if live && command -v systemctl >/dev/null 2>&1; then systemctl daemon-reload || true; fi
  rm -f "${DESTDIR}${BIN_LINK}"
  rm -rf "${DESTDIR}${PREFIX}" "${DESTDIR}${PREFIX}.old"
  log "removed the app, units and ${BIN_LINK}"
  if [ "${PURGE}" = 1 ]; then
    rm -rf "${DESTDIR}${CONF_DIR}" "${DESTDIR}${STATE_DIR}" "${DESTDIR}${SERVER_CONF_DIR}" "${DESTDIR}/var/lib/inbetweenies-server"
    if live && getent passwd "${SERVICE_USER}" >/dev/null; then userdel "${SERVICE_USER}" || true; fi
    log "purged config, store and user"
  else
    log "kept ${CONF_DIR} and ${STATE_DIR} (the store); --uninstall --purge removes them"
  fi
}

main() {
  parse_args "$@"
  if [ "${UNINSTALL}" = 1 ]; then
    uninstall
    return
  fi
  check_platform
  check_node
  check_build
  ensure_user
  install_app
  install_config
  tighten_store
  install_unit "${APP}.service"
  install_unit inbetweenies-server.service
  start_services
  log "done. Check: ${APP} check-config ${CONF_DIR}/gateway.yaml; ${APP} status"
}

main "$@"
