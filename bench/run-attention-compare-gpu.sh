#!/usr/bin/env bash
# Decode attention on a CUDA machine, a kernel change against the code before it, side by side in one run on one GPU:
# `vidkv-bench cuda-check` of the new build, PyTorch's own SDPA (bench/sdpa_baseline.py, cuDNN and flash, enable_gqa),
# `vidkv-bench decode --device cuda` of the new build (every method) and of the previous build (`--methods cuda`), then
# Nsight Compute's per-instruction profile of the new tensor-core kernel where ncu is there (bench/profile-mma-gpu.sh).
# Publish both builds as bench/run-serving-gpu.sh says (the previous one from a `git worktree` of the older commit).
#   OUT=/some/folder bash bench/run-attention-compare-gpu.sh <new bench folder> <previous bench folder> [lengths]
set -u
if [ $# -lt 2 ] || [ ! -x "$1/VidKV.AI.Bench" ] || [ ! -x "$2/VidKV.AI.Bench" ]; then
  echo "usage: OUT=<folder> $0 <new bench folder> <previous bench folder> [4096,16384,65536,131072]" >&2
  exit 2
fi
new="$1"; old="$2"; lengths="${3:-4096,16384,65536,131072}"
: "${OUT:?set OUT to the folder the reports go to}"
here="$(cd "$(dirname "$0")" && pwd)"
export VIDKV_LIBTORCH="${VIDKV_LIBTORCH:-python}" DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 PYTHONUNBUFFERED=1
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"
check=0
"$new/VidKV.AI.Bench" cuda-check --out "$OUT/cuda-check.md" > "$OUT/cuda-check.log" 2>&1 || check=$?
grep -E "comparisons|tensor-core" "$OUT/cuda-check.md"; grep -F "**FAIL**" "$OUT/cuda-check.md" | head -10
python3 "$here/sdpa_baseline.py" --tokens "$lengths" --repeats 30 --backends cudnn,flash --json "$OUT/sdpa.json" > "$OUT/sdpa.md" 2>&1
"$new/VidKV.AI.Bench" decode --device cuda --tokens "$lengths" --repeats 30 --out "$OUT/decode-new.md" > "$OUT/decode-new.log" 2>&1
"$old/VidKV.AI.Bench" decode --device cuda --tokens "$lengths" --repeats 30 --methods cuda --out "$OUT/decode-old.md" > "$OUT/decode-old.log" 2>&1
grep -E "^\| *[0-9]" "$OUT/sdpa.md"; grep -E "^\| [0-9].*tensor cores" "$OUT/decode-new.md" "$OUT/decode-old.md" | cut -d'|' -f1-6
if command -v ncu > /dev/null; then
  bash "$here/profile-mma-gpu.sh" "$new" 4096,131072
  grep -E "Duration|Executed Ipc A|Achieved Occ|Executed Instructions  |Issue Slots Busy|No Eligible" "$OUT"/mma-*-summary.txt
fi
exit $check
