#!/usr/bin/env bash
# Headless Chromium for the Gantt screenshot test (tests/services/campaigns/test_gantt_render.py):
# Debian's `chromium` package. Idempotent: does nothing when a Chromium is on the PATH.
set -euo pipefail
for bin in chromium chromium-browser google-chrome; do
  if command -v "$bin" >/dev/null 2>&1; then
    echo "$(command -v "$bin")"
    exit 0
  fi
done
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
command -v chromium
