#!/usr/bin/env bash
# Set up everything the app and its tests need, on a fresh machine; safe to run again.
#   - a virtual environment in .venv with the project and its dev tools (pyproject.toml)
#   - bun (Reflex's JavaScript runtime) from the npm registry into .tools/
# (The tests' OHIF viewer is fetched by scripts/fetch_ohif.sh, which scripts/test.sh runs.)
# Needs: Python 3.11+, npm (Node.js 20+). Nothing is downloaded outside PyPI and npm.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

BUN_VERSION=1.4.4
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
