#!/usr/bin/env bash
# Builds of the CUDA kernels side by side on one GPU machine, in one call: one published benchmark tree and, per build,
# its own VidKV.AI.Quantization.dll (the kernels' source lives there), so that several builds fit the GPU machine's 64 MiB
# working tree. The first build named is the baseline (main); every other one is checked (`vidkv-bench cuda-check`)
# before it is timed. Then `vidkv-bench decode --device cuda --methods cuda` of the builds alternated (baseline, the
# others, then all again while time is left), PyTorch's own SDPA (bench/sdpa_baseline.py, cuDNN and flash) in the same
# call, `op-hashes` of every build (which operations give other bits than the baseline: a change meant to be bit for bit
# shows none), and, while time is left, `layer-check` and `model-decode` of the last build.
#
# Here (with the .NET 10 SDK), per build (a `git worktree` of its commit for an earlier one):
#   the publish of bench/run-serving-gpu.sh's header into /tmp/vidkv-bench, then
#   mkdir -p .gpu/<name> && cp /tmp/vidkv-bench/VidKV.AI.{Backend,Bench,Quantization}.dll .gpu/<name>/
# (the benchmark's own assemblies go with the build: a Bench.dll of another commit may call what this Quantization.dll
# lacks; a lone .gpu/<name>.dll, replacing VidKV.AI.Quantization.dll only, is still taken, for builds of one API)
# and once, from any of them (the tree every build runs in):
#   tar cf - -C /tmp/vidkv-bench . | xz -6 -T2 > .gpu/base.tar.xz          # .gpu/ is git-ignored: carry it
# There (PyTorch with CUDA installed for python3; `run` with carry [".gpu"]):
#   set -o pipefail; OUT=$OUT bash bench/run-kernel-variants-gpu.sh main new 2>&1 | tee $OUT/run.log
# Writes $OUT/reports.tar.gz, packed on exit (the GPU machine returns at most 8 files from $OUT), holding r/:
# cuda-check-<build>.md, decode-<n>-<build>.md, sdpa.md, op-hashes-<build>.md, layer-check-<last>.md,
# model-decode-<last>.md and their logs; prints the tensor-core rows of each decode run (tokens, sync ms, back to back
# ms, ...), the SDPA table and the op-hash comparison. BUDGET (seconds, default 540): optional steps start only while
# the call has run less than their share of it. CHECKED: builds whose cuda-check an earlier call already passed (skipped).
# TIMELINE: builds whose `vidkv-bench timeline` (one launch part by part, 4k/64k/128k) runs after the op-hashes, while
# time is left.
set -uo pipefail
if [ $# -lt 2 ] || [ ! -f .gpu/base.tar.xz ]; then
  echo "usage: OUT=<folder> $0 <baseline build> <build>... (.gpu/base.tar.xz and .gpu/<build>/ or .gpu/<build>.dll for each)" >&2
  exit 2
fi
: "${OUT:?set OUT to the folder the reports go to}"
S=$SECONDS
budget=${BUDGET:-540}
builds=("$@")
mkdir -p /tmp/vk/base && tar xJf .gpu/base.tar.xz -C /tmp/vk/base
for b in "${builds[@]}"; do
  rm -rf "/tmp/vk/$b" && cp -al /tmp/vk/base "/tmp/vk/$b"
  if [ -d ".gpu/$b" ]; then cp --remove-destination ".gpu/$b"/*.dll "/tmp/vk/$b/"
  elif [ -f ".gpu/$b.dll" ]; then cp --remove-destination ".gpu/$b.dll" "/tmp/vk/$b/VidKV.AI.Quantization.dll"
  else echo "no .gpu/$b/ or .gpu/$b.dll" >&2; exit 2; fi
done
export VIDKV_LIBTORCH="${VIDKV_LIBTORCH:-python}" DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 PYTHONUNBUFFERED=1
R=/tmp/vk/r
mkdir -p "$R"
trap 'tar czf "$OUT/reports.tar.gz" -C /tmp/vk r' EXIT
left() { [ $((SECONDS - S)) -lt $(($1 * budget / 100)) ] || { echo "skipped (time): $2"; return 1; }; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$R/gpu.txt"
check=0
for b in "${builds[@]:1}"; do
  case " ${CHECKED:-} " in *" $b "*) echo "cuda-check $b: skipped (CHECKED: checked in an earlier call)"; continue;; esac
  timeout 120 "/tmp/vk/$b/VidKV.AI.Bench" cuda-check --out "$R/cuda-check-$b.md" > "$R/cuda-check-$b.log" 2>&1 || check=1
  echo "cuda-check $b t=$((SECONDS - S))"
  grep -E "comparisons|tensor-core|batched" "$R/cuda-check-$b.md" | grep -v "^|" | head -6
  grep -F "**FAIL**" "$R/cuda-check-$b.md" | head -5 || true
done
T=4096,16384,65536,131072
n=0
decode() {
  n=$((n + 1))
  local f="$R/decode-$n-$1"
  timeout 70 "/tmp/vk/$1/VidKV.AI.Bench" decode --device cuda --methods cuda --tokens $T --repeats 30 --out "$f.md" > "$f.log" 2>&1
  echo "== $1 rc $? t=$((SECONDS - S))"
  grep -E "^\| [0-9]+ \| fused .*tensor cores, one launch( \(dependent launch\))? \|" "$f.md" | cut -d"|" -f2,4,6,7,12
}
for b in "${builds[@]}"; do decode "$b"; done
timeout 60 python3 bench/sdpa_baseline.py --tokens $T --repeats 30 --backends cudnn,flash > "$R/sdpa.md" 2>&1
tail -9 "$R/sdpa.md"
for b in "${builds[@]}"; do left 55 "decode $b (second pass)" && decode "$b"; done
for b in "${builds[@]}"; do
  left 70 "op-hashes $b" && { timeout 40 "/tmp/vk/$b/VidKV.AI.Bench" op-hashes --out "$R/op-hashes-$b.md" > "$R/op-hashes-$b.log" 2>&1; echo "op-hashes $b rc $?"; }
done
python3 - "$R" "${builds[@]}" <<'PY'
import os, re, sys
r, builds = sys.argv[1], sys.argv[2:]
def hashes(b):
    d = {}
    try:
        for line in open(os.path.join(r, f"op-hashes-{b}.md")):
            c = [x.strip() for x in line.split("|")]
            if len(c) > 4 and re.fullmatch(r"[0-9A-F]{16}", c[2] or ""):
                d[c[1]] = c[2]
    except OSError:
        pass
    return d
base = hashes(builds[0])
for b in builds[1:]:
    h = hashes(b)
    if base and h:
        print(f"op-hashes {b}: {len(h)} operations, differing from {builds[0]}: {[k for k in base if h.get(k) != base[k]]}")
PY
for b in ${TIMELINE:-}; do
  left 76 "timeline $b" && { timeout 60 "/tmp/vk/$b/VidKV.AI.Bench" timeline --out "$R/timeline-$b.md" > "$R/timeline-$b.log" 2>&1; echo "timeline $b rc $?"; grep -E "^[0-9]+ blocks|^\| (entry|main loop|state stored|exit) " "$R/timeline-$b.md"; }
done
last="${builds[-1]}"
left 78 "layer-check $last" && { timeout 100 "/tmp/vk/$last/VidKV.AI.Bench" layer-check --out "$R/layer-check-$last.md" > "$R/layer-check-$last.log" 2>&1; echo "layer-check $last rc $?"; grep -E "comparisons|FAIL|2 layers" "$R/layer-check-$last.md"; }
left 80 "model-decode $last" && { timeout 90 "/tmp/vk/$last/VidKV.AI.Bench" model-decode --device cuda --frames 32,256 --repeats 10 --out "$R/model-decode-$last.md" > "$R/model-decode-$last.log" 2>&1; echo "model-decode $last rc $?"; grep -E "^\| [0-9]" "$R/model-decode-$last.md" | cut -d"|" -f2-6; }
echo "total t=$((SECONDS - S))"
exit $check
