#!/usr/bin/env bash
# Set up (if needed), migrate the database, create the demo accounts (development mode, empty
# database only) and start the app: UI on http://localhost:3000, API and /docs on :8000.
# Extra arguments go to `reflex run` (e.g. --env prod).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
"$ROOT/scripts/setup.sh"
echo "==> migrating the database"
pacs bootstrap
exec reflex run "$@"
