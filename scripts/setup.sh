#!/usr/bin/env bash
# One-step set-up: a virtual environment in .venv with napari-pathsae (editable) and a Qt binding.
#   bash scripts/setup.sh          # for the demo
#   bash scripts/setup.sh --test   # also the test tools (and, on Linux, Debian's chromium for the atlas tests)
# On a Linux machine without a display it installs Xvfb and Qt's X libraries (needs root or sudo).
# torch/torchvision are pinned only through $PATHSAE_CONSTRAINTS (default .ci/constraints.txt,
# the CPU build this project's machines carry); point it at another file or /dev/null elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="qt"
[ "${1:-}" = "--test" ] && extras="qt,test"
constraints="${PATHSAE_CONSTRAINTS:-.ci/constraints.txt}"

if [ "$(uname -s)" = "Linux" ] && [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  bash scripts/install-xvfb.sh
fi

if [ "$extras" = "qt,test" ] && [ "$(uname -s)" = "Linux" ]; then
  bash scripts/install-chromium.sh
fi

python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c "$constraints" -e ".[$extras]"
echo "setup: ready (.venv, extras: $extras)" >&2
