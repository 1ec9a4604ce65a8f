#!/usr/bin/env bash
# Run the whole test suite: SQLite always; PostgreSQL too when TEST_DATABASE_URL is set
# (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test); browser tests where Chromium is
# installed. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
"$ROOT/scripts/setup.sh"
"$ROOT/scripts/fetch_ohif.sh"
exec python -m pytest "$@"
