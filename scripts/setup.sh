#!/usr/bin/env bash
# Set up everything the app and its tests need, on a fresh machine; safe to run again.
#   - a virtual environment in .venv with the project and its dev tools (pyproject.toml)
#   - bun (Reflex's JavaScript runtime) from the npm registry into .tools/
#   - the OHIF viewer's build (the browser tests' third-party DICOMweb viewer) from the npm
#     registry into .tools/ohif/
# Needs: Python 3.11+, npm (Node.js 20+). Nothing is downloaded outside PyPI and npm.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

BUN_VERSION=1.4.4
OHIF_VERSION=3.13.2
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if ! command -v npm >/dev/null; then
  echo "error: npm is required to install bun (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.pacs-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "==> installing Python packages"
  .venv/bin/python -m pip install --disable-pip-version-check -q -e ".[dev]"
  touch "$stamp"
fi

if [ "$(.tools/node_modules/.bin/bun --version 2>/dev/null || true)" != "$BUN_VERSION" ]; then
  echo "==> installing bun $BUN_VERSION from the npm registry"
  mkdir -p .tools
  npm install --prefix .tools --no-save --no-audit --no-fund --loglevel=error "bun@$BUN_VERSION"
fi

fetch_ohif() {
  local tmp status
  tmp="$(mktemp -d)"
  # its AI runtime (ort/) and slide microscopy viewer are left out: 150 MB the tests don't use
  (cd "$tmp" && npm pack --silent --loglevel=error "@ohif/app@$OHIF_VERSION" >/dev/null) &&
    rm -rf .tools/ohif && mkdir -p .tools/ohif &&
    tar -xzf "$tmp/ohif-app-$OHIF_VERSION.tgz" -C .tools/ohif --strip-components=2 \
      --exclude=package/dist/ort --exclude=package/dist/dicom-microscopy-viewer package/dist &&
    echo "$OHIF_VERSION" > .tools/ohif/VERSION
  status=$?
  rm -rf "$tmp"
  return $status
}
if [ "$(cat .tools/ohif/VERSION 2>/dev/null || true)" != "$OHIF_VERSION" ]; then
  echo "==> fetching the OHIF viewer $OHIF_VERSION (for the browser tests) from the npm registry"
  # the app runs without it: only its browser test needs it (and says so where it is missing)
  fetch_ohif || echo "warning: the OHIF viewer could not be fetched; its browser test cannot run" >&2
fi
