#!/usr/bin/env bash
# Decode attention on a CUDA machine, side by side in one run on one GPU: PyTorch's own scaled_dot_product_attention
# (fp16, enable_gqa=True, cuDNN / flash / memory-efficient / math; bench/sdpa_baseline.py) and the project's
# `vidkv-bench decode --device cuda` (FP16 folded-GQA row, dequantize-then-attend, fused NVRTC kernels), after
# `vidkv-bench cuda-check`; with --previous, the same decode benchmark of an earlier build (`--methods cuda`: its CUDA
# kernels, for a change against the code before it in the same run); then Nsight Compute on the fused kernel when ncu is
# there. No .NET needed there. Publish an earlier build from a `git worktree` of its commit.
#
# Here (with the .NET 10 SDK):
#   dotnet publish bench/VidKV.AI.Bench -c Release -r linux-x64 --self-contained true -p:VidKVNoNativeLibTorch=true -o /tmp/vidkv-bench
#   tar cJf vidkv-bench.tar.xz -C /tmp/vidkv-bench .
# There (PyTorch with CUDA installed for python3):
#   mkdir bench-bin && tar xJf vidkv-bench.tar.xz -C bench-bin
#   OUT=/some/folder bash bench/run-attention-gpu.sh bench-bin [--tokens 4096,16384,65536,131072] [--repeats 30] \
#     [--backends cudnn,flash,efficient,math] [--previous earlier-bench-bin] [--decode-step] [--no-ncu]
# Writes to $OUT: cuda-check-h200.md, sdpa-h200.md (+ .json), bench-attention-h200.md, with --previous
# bench-attention-previous.md, ncu-*.txt and the logs. --decode-step: then the 7B-geometry decode step
# (`vidkv-bench model-decode --device cuda --frames 32,256 --repeats 10`, model-decode-h200.md) and `layer-check`
# (layer-check-h200.md) of the new build, so that a kernel change is checked end to end in the same call; --no-ncu: skip
# Nsight Compute (about half of the call's time).
set -euo pipefail
if [ $# -lt 1 ] || [ ! -x "$1/VidKV.AI.Bench" ]; then
  echo "usage: OUT=<folder> $0 <published bench folder containing VidKV.AI.Bench> [--tokens N,N] [--repeats N] [--backends B,B] [--previous DIR] [--decode-step] [--no-ncu]" >&2
  exit 2
fi
dir="$1"; shift
tokens=4096,16384,65536,131072
repeats=30
backends=cudnn,flash,efficient,math
previous=""
step=0
ncu=1
while [ $# -gt 0 ]; do
  case "$1" in
    --tokens) tokens="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    --backends) backends="$2"; shift 2 ;;
    --previous) previous="$2"; shift 2 ;;
    --decode-step) step=1; shift ;;
    --no-ncu) ncu=0; shift ;;
    *) echo "unknown option $1 (allowed: --tokens N,N --repeats N --backends B,B --previous DIR --decode-step --no-ncu)" >&2; exit 2 ;;
  esac
done
: "${OUT:?set OUT to the folder the reports go to}"
mkdir -p "$OUT"
here="$(cd "$(dirname "$0")" && pwd)"
export VIDKV_LIBTORCH="${VIDKV_LIBTORCH:-python}"
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"

check=0
"$dir/VidKV.AI.Bench" cuda-check --out "$OUT/cuda-check-h200.md" > "$OUT/cuda-check-h200.log" 2>&1 || check=$?
grep -E "comparisons|NVRTC|tensor-core" "$OUT/cuda-check-h200.md" || tail -40 "$OUT/cuda-check-h200.log"
grep -F "**FAIL**" "$OUT/cuda-check-h200.md" | head -20 || true

python3 "$here/sdpa_baseline.py" --tokens "$tokens" --repeats "$repeats" --backends "$backends" --json "$OUT/sdpa-h200.json" 2>&1 | tee "$OUT/sdpa-h200.md"
"$dir/VidKV.AI.Bench" decode --device cuda --tokens "$tokens" --repeats "$repeats" --out "$OUT/bench-attention-h200.md" \
  > "$OUT/bench-attention-h200.log" 2>&1
grep -E "^\| [0-9]" "$OUT/bench-attention-h200.md" | cut -d'|' -f2-7
if [ -n "$previous" ]; then
  "$previous/VidKV.AI.Bench" decode --device cuda --tokens "$tokens" --repeats "$repeats" --methods cuda \
    --out "$OUT/bench-attention-previous.md" > "$OUT/bench-attention-previous.log" 2>&1
  grep -E "^\| [0-9]" "$OUT/bench-attention-previous.md" | cut -d'|' -f2-7
fi

if [ "$step" = 1 ]; then
  "$dir/VidKV.AI.Bench" model-decode --device cuda --frames 32,256 --repeats 10 --out "$OUT/model-decode-h200.md" \
    > "$OUT/model-decode-h200.log" 2>&1 || check=$(( check > 0 ? check : 1 ))
  grep -E "^\| [0-9]" "$OUT/model-decode-h200.md" | cut -d'|' -f2-6 || tail -20 "$OUT/model-decode-h200.log"
  "$dir/VidKV.AI.Bench" layer-check --out "$OUT/layer-check-h200.md" > "$OUT/layer-check-h200.log" 2>&1 || check=$(( check > 0 ? check : 1 ))
  grep -E "within|beyond|FAIL" "$OUT/layer-check-h200.md" | head -10 || tail -20 "$OUT/layer-check-h200.log"
fi

if [ "$ncu" = 1 ] && command -v ncu > /dev/null; then
  for n in 4096 131072; do
    ncu --clock-control none --kernel-name regex:vidkv_mma --launch-skip 20 --launch-count 1 \
      --section SpeedOfLight --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis --section Occupancy \
      --section LaunchStats --section WarpStateStats --section SchedulerStats --section InstructionStats --section SourceCounters \
      "$dir/VidKV.AI.Bench" decode --device cuda --tokens "$n" --repeats 3 --copies 2 > "$OUT/ncu-mma-$n.txt" 2>&1 || true
  done
  for n in 4096 131072; do
    ncu --clock-control none --kernel-name regex:'cudnn|flash|fmha|sdpa|attention' --launch-skip 20 --launch-count 3 --section SpeedOfLight \
      python3 "$here/sdpa_baseline.py" --tokens "$n" --repeats 5 --backends cudnn > "$OUT/ncu-sdpa-$n.txt" 2>&1 || true
  done
  grep -E "^  [a-z_]|Duration|DRAM Throughput|Compute \(SM\)|Registers Per|Achieved Occupancy|Grid Size|Issued Warp|Executed Instructions  " "$OUT"/ncu-*.txt || true
fi
exit $check
