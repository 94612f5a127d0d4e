#!/usr/bin/env bash
# Serving at LLaVA-OneVision-7B's geometry on a CUDA machine (`vidkv-bench serving --device cuda`): a remembered video's
# first against follow-up question, how many 256-frame conversations each cache fits in one memory budget, and batched
# decode throughput. No .NET needed there.
#
# Here (with the .NET 10 SDK):
# a trimmed publish (about 11 MB packed; an untrimmed one is too large for the GPU machine's 64 MiB working tree), with the
# same options as scripts/train-gpu.sh: System.Text.Json keeps reflection, trim warnings are not errors for this publish.
#   rm -rf /tmp/vidkv-bench && dotnet publish bench/VidKV.AI.Bench -c Release -r linux-x64 --self-contained true \
#     -p:VidKVNoNativeLibTorch=true -p:PublishTrimmed=true -p:TrimMode=partial -p:ILLinkTreatWarningsAsErrors=false \
#     -p:SuppressTrimAnalysisWarnings=true -p:JsonSerializerIsReflectionEnabledByDefault=true -p:DebugType=none \
#     -p:InvariantGlobalization=true -o /tmp/vidkv-bench
#   (cd /tmp/vidkv-bench && rm -rf models libmscordbi.so libmscordaccore.so createdump *.pdb *.xml libcoreclrtraceptprovider.so libclrgc.so libclrgcexp.so)
#   mkdir -p .gpu && tar cf - -C /tmp/vidkv-bench . | xz -6 -T2 > .gpu/vidkv-bench.tar.xz   # .gpu/ is git-ignored: carry it
# Note: the publish builds the referenced projects without symbols; run `dotnet build VidKV.AI.sln -c Release` after it
# before testing.
# There (PyTorch with CUDA installed for python3):
#   mkdir bench-bin && tar xJf .gpu/vidkv-bench.tar.xz -C bench-bin
#   OUT=/some/folder bash bench/run-serving-gpu.sh bench-bin [serving options]
# Writes $OUT/bench-serving-h200.md and its log, after `vidkv-bench cuda-check` ($OUT/cuda-check-h200.md: the fused
# kernels and the batched launch the decode step uses, against one call per sequence and dequantize-then-attend; set
# VIDKV_SKIP_CHECK=1 to skip it). The serving run goes on when the check fails; its exit code is the check's then.
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
check=0
if [ "${VIDKV_SKIP_CHECK:-0}" != 1 ]; then
  "$dir/VidKV.AI.Bench" cuda-check --out "$OUT/cuda-check-h200.md" > "$OUT/cuda-check-h200.log" 2>&1 || check=$?
  grep -E "comparisons|NVRTC|tensor-core|batched" "$OUT/cuda-check-h200.md" | grep -v "^|" || tail -40 "$OUT/cuda-check-h200.log"
  grep -F "**FAIL**" "$OUT/cuda-check-h200.md" | head -20 || true
fi
set -o pipefail
"$dir/VidKV.AI.Bench" serving --device cuda --out "$OUT/bench-serving-h200.md" "$@" 2>&1 | tee "$OUT/bench-serving-h200.log"
exit "$check"
