#!/usr/bin/env bash
# Makes sure ffmpeg and ffprobe are there (the video tests decode real clips they make with ffmpeg).
# Missing on Debian/Ubuntu: installs Debian's ffmpeg package (apt-get update once, then install; sudo only if not root).
# Impossible to install: fails and prints the exact command to run.
set -euo pipefail

fix="sudo apt-get update && sudo apt-get install -y --no-install-recommends ffmpeg"
dir="${VIDKV_FFMPEG_DIR:-}"

have() {
  if [ -n "$dir" ]; then [ -x "$dir/$1" ]; else command -v "$1" >/dev/null 2>&1; fi
}

if have ffmpeg && have ffprobe; then
  exit 0
fi

if [ -n "$dir" ]; then
  echo "error: VIDKV_FFMPEG_DIR is '$dir', which does not hold executable ffmpeg and ffprobe. Point it to the folder that does, or unset it and run: $fix" >&2
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: ffmpeg and ffprobe are required (video decoding) and are not on PATH, and apt-get is not available to install them." >&2
  echo "       Install ffmpeg with the system's package manager (e.g. 'brew install ffmpeg', 'dnf install ffmpeg', 'winget install ffmpeg')," >&2
  echo "       or set VIDKV_FFMPEG_DIR to a folder holding ffmpeg and ffprobe." >&2
  exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
  sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo="sudo"
else
  echo "error: ffmpeg and ffprobe are required (video decoding) and are not installed; installing them needs root. Run: $fix" >&2
  exit 1
fi

echo "ffmpeg/ffprobe not found: installing Debian's ffmpeg package..." >&2
if ! $sudo apt-get update -qq || ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null; then
  echo "error: installing ffmpeg with apt-get failed (see above). Run: $fix" >&2
  exit 1
fi

if ! have ffmpeg || ! have ffprobe; then
  echo "error: the ffmpeg package is installed but ffmpeg and ffprobe are not on PATH. Run: $fix" >&2
  exit 1
fi
echo "installed: $(ffmpeg -version | sed -n 1p)" >&2
