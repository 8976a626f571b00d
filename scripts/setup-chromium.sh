#!/usr/bin/env bash
# Debian's chromium and chromedriver, for the /fleet page's browser test
# (fleet/tests/it/browser.rs). Idempotent and quiet: does nothing when both are installed.
# The test skips with a notice without them (and fails under CI=true).
#
#   scripts/setup-chromium.sh
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
  echo "setup-chromium: not root and no sudo: install chromium and chromium-driver yourself" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "setup-chromium: installing chromium and chromium-driver (Debian packages)" >&2
$SUDO apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
chromium --version >&2
