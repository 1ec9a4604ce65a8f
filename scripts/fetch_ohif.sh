#!/usr/bin/env bash
# Fetch the OHIF viewer's build (the browser tests' third-party DICOMweb viewer) from the npm
# registry into .tools/ohif/, once per version; scripts/test.sh runs it. The app itself does
# not need it: a failed fetch only warns, and the OHIF browser test then says it is missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

OHIF_VERSION=3.13.2

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
  fetch_ohif || echo "warning: the OHIF viewer could not be fetched; its browser test cannot run" >&2
fi
