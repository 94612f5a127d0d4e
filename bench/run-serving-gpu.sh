#!/usr/bin/env bash
# Serving at LLaVA-OneVision-7B's geometry on a CUDA machine (`vidkv-bench serving --device cuda`): a remembered video's
# first against follow-up question, how many 256-frame conversations each cache fits in one memory budget, and batched
# decode throughput. No .NET needed there.
#
# Here (with the .NET 10 SDK):
#   dotnet publish bench/VidKV.AI.Bench -c Release -r linux-x64 --self-contained true -p:VidKVNoNativeLibTorch=true -o /tmp/vidkv-bench
#   mkdir -p .gpu && tar cJf .gpu/vidkv-bench.tar.xz -C /tmp/vidkv-bench .
# There (PyTorch with CUDA installed for python3):
#   mkdir bench-bin && tar xJf .gpu/vidkv-bench.tar.xz -C bench-bin
#   OUT=/some/folder bash bench/run-serving-gpu.sh bench-bin [serving options]
# Writes $OUT/bench-serving-h200.md and its log.
set -euo pipefail
if [ $# -lt 1 ] || [ ! -x "$1/VidKV.AI.Bench" ]; then
  echo "usage: OUT=<folder> $0 <published bench folder containing VidKV.AI.Bench> [serving options]" >&2
  exit 2
fi
dir="$1"; shift
: "${OUT:?set OUT to the folder the reports go to}"
mkdir -p "$OUT"
export VIDKV_LIBTORCH="${VIDKV_LIBTORCH:-python}"
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
set -o pipefail
"$dir/VidKV.AI.Bench" serving --device cuda --out "$OUT/bench-serving-h200.md" "$@" 2>&1 | tee "$OUT/bench-serving-h200.log"
