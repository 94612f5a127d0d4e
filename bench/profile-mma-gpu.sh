#!/usr/bin/env bash
# Where the tensor-core fused decode kernel (vidkv_mma_*) spends its instructions, per SASS instruction, with Nsight
# Compute: one launch at each length given, LLaVA-OneVision-7B layer (28 query heads, 4 KV heads, head dim 128),
# vidkv-1.5/1.58 Compact. Writes $OUT/mma-<n>.ncu-rep, $OUT/mma-<n>-sass.csv (every SASS instruction with its executed
# count, from `ncu --page source --print-source sass`) and $OUT/mma-<n>-summary.txt (duration, instructions, occupancy,
# stall reasons). Published bench folder and PyTorch as for bench/run-attention-gpu.sh. Summarize a CSV with
# `python3 bench/sass_summary.py $OUT/mma-<n>-sass.csv --units <tokens / 32 x KV heads>`.
#   OUT=/some/folder bash bench/profile-mma-gpu.sh <published bench folder> [65536,131072]
set -euo pipefail
dir="$1"; lengths="${2:-4096,65536}"
: "${OUT:?set OUT to the folder the reports go to}"
export VIDKV_LIBTORCH="${VIDKV_LIBTORCH:-python}" DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
for n in ${lengths//,/ }; do
  ncu --clock-control none --kernel-name regex:vidkv_mma --launch-skip 20 --launch-count 1 --set full --import-source no \
    -o "$OUT/mma-$n" -f "$dir/VidKV.AI.Bench" decode --device cuda --tokens "$n" --repeats 3 --copies 2 > "$OUT/mma-$n-run.log" 2>&1 || true
  ncu -i "$OUT/mma-$n.ncu-rep" --page source --csv --print-source sass > "$OUT/mma-$n-sass.csv" 2> "$OUT/mma-$n-sass.err" || true
  ncu -i "$OUT/mma-$n.ncu-rep" --page details > "$OUT/mma-$n-summary.txt" 2>&1 || true
done
