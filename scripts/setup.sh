#!/usr/bin/env bash
# Set up callcoach on a fresh Debian machine: system packages, the Python environment
# (.venv, exact versions from uv.lock) and the offline models (./models).
# Idempotent: a second run checks and returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(espeak-ng sox flac ffmpeg chromium fonts-dejavu-core)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

UV_VERSION=0.13.9
if ! command -v uv >/dev/null 2>&1 || [ "$(uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  echo "setup: installing uv $UV_VERSION"
  python3 -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
fi
UV="$(command -v uv || echo "$(python3 -m site --user-base)/bin/uv")"

echo "setup: syncing .venv from uv.lock"
"$UV" sync --frozen --extra dev --python python3 -q

echo "setup: assembling offline models into ./models"
.venv/bin/python -m callcoach.models install-offline models
echo "setup: done"
