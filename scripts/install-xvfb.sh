#!/usr/bin/env bash
# Xvfb and the X libraries Qt 6's xcb platform needs, from Debian/Ubuntu packages (root or sudo).
# Does nothing when they are already there.
set -euo pipefail
if command -v Xvfb >/dev/null && ldconfig -p | grep -q libxcb-cursor.so && ldconfig -p | grep -q libEGL.so; then
  exit 0
fi
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "install-xvfb: installing Xvfb and Qt's X11 libraries" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
  xvfb xauth libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 \
  libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xfixes0 libxcb-xkb1 \
  libgl1 libegl1 libgl1-mesa-dri libfontconfig1 libdbus-1-3 >/dev/null
