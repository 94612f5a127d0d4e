#!/usr/bin/env bash
# Is the decoder's GPU path deterministic? On a CUDA machine, with a published bench (see bench/run-serving-gpu.sh for the
# trimmed publish; no .NET needed there):
#   OUT=/some/folder bash bench/run-determinism-gpu.sh bench-bin [runs]
# - `vidkv-bench op-hashes` `runs` times, each in a new process, and once more with CUDA_LAUNCH_BLOCKING=1: every
#   operation of the decode path on fixed inputs, a hash of its output's bits per process (and whether repeats in one
#   process match); the summary names each operation whose hash is not the same in every process;
# - `vidkv-bench layer-check` `runs` times (default 3), each in a new process: its float32 rows compare the layer-kernel
#   path with the TorchSharp-ops path, and each path with itself run again on fresh caches in the same process (bit for
#   bit; the first differing step). Rows that move between processes while each path matches itself point at something
#   that differs per process; a path that differs from itself names the path and the step.
# - once more with VIDKV_CUDA_ATTENTION=general (the general attention kernels instead of the tensor-core one);
# - where compute-sanitizer is found: initcheck (reads of uninitialized device memory) and racecheck (shared-memory
#   hazards) over a short decode benchmark of the CUDA attention kernels.
# Writes op-hashes-N.md, layer-check-N.md, layer-check-general.md, sanitizer-*.txt and summary.txt to $OUT.
set -uo pipefail
if [ $# -lt 1 ] || [ ! -x "$1/VidKV.AI.Bench" ]; then
  echo "usage: OUT=<folder> $0 <published bench folder containing VidKV.AI.Bench> [runs]" >&2
  exit 2
fi
dir="$1"
runs="${2:-3}"
: "${OUT:?set OUT to the folder the reports go to}"
mkdir -p "$OUT"
export VIDKV_LIBTORCH="${VIDKV_LIBTORCH:-python}"
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
summary="$OUT/summary.txt"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$summary"

rows() {  # the decoder rows of a layer-check report: case and value
  grep -F "2 layers of 7B geometry" -A3 "$1" | grep -E "float32|run twice" | cut -d'|' -f2-3 >> "$summary"
}

for i in $(seq 1 "$runs") blocking; do
  if [ "$i" = blocking ]; then
    CUDA_LAUNCH_BLOCKING=1 timeout 150 "$dir/VidKV.AI.Bench" op-hashes --out "$OUT/op-hashes-$i.md" > "$OUT/op-hashes-$i.log" 2>&1
  else
    timeout 150 "$dir/VidKV.AI.Bench" op-hashes --out "$OUT/op-hashes-$i.md" > "$OUT/op-hashes-$i.log" 2>&1
  fi
  echo "== op-hashes, process $i (exit $?: 1 = some repeat in the process differed)" >> "$summary"
  grep -E "^\| [A-Z]" "$OUT/op-hashes-$i.md" | grep -v "| 0 of" >> "$summary"
done
echo "== operations whose hash differs between processes" >> "$summary"
cat "$OUT"/op-hashes-*.md | grep -E "^\| (Float32|BFloat16)" | cut -d'|' -f2-3 | sort -u | cut -d'|' -f1 | uniq -d >> "$summary"

for i in $(seq 1 "$runs"); do
  echo "== layer-check, process $i" >> "$summary"
  timeout 120 "$dir/VidKV.AI.Bench" layer-check --out "$OUT/layer-check-$i.md" > "$OUT/layer-check-$i.log" 2>&1
  rows "$OUT/layer-check-$i.md"
done
echo "== layer-check, VIDKV_CUDA_ATTENTION=general" >> "$summary"
VIDKV_CUDA_ATTENTION=general timeout 120 "$dir/VidKV.AI.Bench" layer-check --out "$OUT/layer-check-general.md" \
  > "$OUT/layer-check-general.log" 2>&1
rows "$OUT/layer-check-general.md"

sanitizer="$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)"
if [ -n "$sanitizer" ]; then
  for tool in initcheck racecheck; do
    timeout 120 "$sanitizer" --tool "$tool" --print-limit 20 "$dir/VidKV.AI.Bench" decode --device cuda --tokens 4096 \
      --repeats 2 --copies 2 --methods cuda > "$OUT/sanitizer-$tool.txt" 2>&1
    echo "== compute-sanitizer $tool (exit $?)" >> "$summary"
    grep -E "ERROR SUMMARY|Uninitialized|hazard|Invalid" "$OUT/sanitizer-$tool.txt" | sort | uniq -c | head -10 >> "$summary"
  done
else
  echo "== compute-sanitizer not found: initcheck and racecheck not run" >> "$summary"
fi
cat "$summary"
