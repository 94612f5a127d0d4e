#!/usr/bin/env bash
# Adds Debian's non-free component to apt as a second sources file derived from the first (once; needs root), for the
# CUDA packages Debian ships there (libnvrtc11.2, nvidia-cuda-toolkit). Run `apt-get update` after it.
# Exit code 1, with the reason on stderr, where it cannot.
set -uo pipefail
sources=/etc/apt/sources.list.d/debian.sources
extra=/etc/apt/sources.list.d/vidkv-non-free.sources
if [ -f "$extra" ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "$extra is missing and adding it needs root" >&2
  exit 1
fi
if [ ! -f "$sources" ] || ! grep -q '^Components:' "$sources"; then
  echo "$sources not found" >&2
  exit 1
fi
sed 's/^Components:.*/Components: non-free/' "$sources" > "$extra"
