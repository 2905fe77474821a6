#!/usr/bin/env bash
# Install everything the test suite needs: convnp with its test extra, plus Debian's Chromium for the
# playground's browser tests (skipped when already installed; needs root or sudo for apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
pip install -q -e ".[test]"
