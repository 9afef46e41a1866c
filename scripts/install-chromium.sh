#!/usr/bin/env bash
# Debian's chromium, for the atlas tests (headless: pages rendered, searched and screenshotted).
# Does nothing when a chromium is already there; needs root or sudo otherwise.
set -euo pipefail
if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
  exit 0
fi
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "install-chromium: installing chromium (atlas tests)" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
