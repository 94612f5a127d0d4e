#!/usr/bin/env bash
# Fetches cuobjdump and nvdisasm (CUDA 11.8, from Debian's non-free nvidia-cuda-toolkit package, unpacked without
# installing it: no driver or GPU needed) into .cuda-binutils/ (git-ignored), so that `vidkv-bench kernels` lists the
# machine code (SASS) of the kernels NVRTC compiles here:
#   bash scripts/ensure-nvrtc.sh && bash scripts/cuda-binutils.sh
#   VIDKV_CUOBJDUMP=$PWD/.cuda-binutils/cuobjdump dotnet run -c Release --project bench/VidKV.AI.Bench -- kernels --out /tmp/kernels
# Needs apt-get with Debian's archive (scripts/apt-non-free.sh adds the non-free component); about 85 MB to download.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cuda-binutils
if [ -x "$dest/cuobjdump" ]; then
  echo "$PWD/$dest/cuobjdump"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: apt-get not found; cuobjdump comes from Debian's nvidia-cuda-toolkit package" >&2
  exit 1
fi
if bash scripts/apt-non-free.sh && [ "$(id -u)" -eq 0 ]; then
  apt-get update -qq
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download nvidia-cuda-toolkit >/dev/null 2>&1) || {
  echo "error: 'apt-get download nvidia-cuda-toolkit' failed (is Debian's non-free component in the apt sources?)" >&2
  exit 1
}
dpkg -x "$work"/nvidia-cuda-toolkit_*.deb "$work/root"
mkdir -p "$dest"
cp "$work/root/usr/bin/cuobjdump" "$work/root/usr/bin/nvdisasm" "$dest/"
echo "$PWD/$dest/cuobjdump"
