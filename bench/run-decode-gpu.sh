#!/usr/bin/env bash
# Decode-attention benchmark on a CUDA machine with PyTorch installed (no .NET needed there).
#
# Here (with the .NET 10 SDK):
#   dotnet publish bench/VidKV.AI.Bench -c Release -r linux-x64 --self-contained true -p:VidKVNoNativeLibTorch=true -o /tmp/vidkv-bench
#   tar cJf vidkv-bench.tar.xz -C /tmp/vidkv-bench .
# There:
#   mkdir bench && tar xJf vidkv-bench.tar.xz -C bench
#   OUT=/some/folder bash run-decode-gpu.sh bench [extra decode options, e.g. --tokens 4096,16384]
# Writes $OUT/cuda-check-h200.md (the CUDA kernel against dequantize-then-attend for every preset and variant; the
# run stops there when any case differs), $OUT/bench-decode-h200.md (the report) and $OUT/bench-decode-h200.log.
set -euo pipefail
if [ $# -lt 1 ] || [ ! -x "$1/VidKV.AI.Bench" ]; then
  echo "usage: OUT=<folder> $0 <published bench folder containing VidKV.AI.Bench> [decode options]" >&2
  exit 2
fi
dir="$1"; shift
: "${OUT:?set OUT to the folder the report goes to}"
mkdir -p "$OUT"
export VIDKV_LIBTORCH="${VIDKV_LIBTORCH:-python}"
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$OUT/bench-decode-h200.log" 2>&1 || true
"$dir/VidKV.AI.Bench" cuda-check --out "$OUT/cuda-check-h200.md" > "$OUT/cuda-check-h200.log" 2>&1 || { tail -40 "$OUT/cuda-check-h200.log"; exit 1; }
grep -E "comparisons|NVRTC" "$OUT/cuda-check-h200.md"
"$dir/VidKV.AI.Bench" decode --device cuda --tokens 4096,16384,65536 --repeats 20 --out "$OUT/bench-decode-h200.md" "$@" \
  2>&1 | tee -a "$OUT/bench-decode-h200.log"
