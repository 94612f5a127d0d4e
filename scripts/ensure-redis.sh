#!/usr/bin/env bash
# Makes sure redis-server is there (the distributed video-memory tests start their own Redis on 127.0.0.1).
# Missing on Debian/Ubuntu: installs Debian's redis-server package (no service is started; sudo only if not root).
# Impossible to install: fails and prints the exact command to run.
set -euo pipefail

fix="sudo apt-get update && sudo apt-get install -y --no-install-recommends redis-server"
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: redis-server is required by the distributed video-memory tests and apt-get is not available to install it." >&2
  echo "       Install Redis 7 with the system's package manager, or put redis-server on PATH." >&2
  exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
  sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo="sudo"
else
  echo "error: redis-server is required and not installed; installing it needs root. Run: $fix" >&2
  exit 1
fi

echo "redis-server not found: installing Debian's redis-server package..." >&2
# policy-rc.d keeps the package from starting a system-wide Redis: the tests start their own, on a free port.
policy=/usr/sbin/policy-rc.d
created_policy=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy" && created_policy=1
fi
status=0
$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends redis-server >/dev/null || status=$?
[ -n "$created_policy" ] && $sudo rm -f "$policy"
if [ "$status" -ne 0 ]; then
  echo "error: installing redis-server with apt-get failed (see above). Run: $fix" >&2
  exit 1
fi

if ! command -v redis-server >/dev/null 2>&1; then
  echo "error: the redis-server package is installed but redis-server is not on PATH. Run: $fix" >&2
  exit 1
fi
echo "installed: $(redis-server --version)" >&2
