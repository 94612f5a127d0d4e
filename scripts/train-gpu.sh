#!/usr/bin/env bash
# Trains the built-in model on a CUDA machine that has PyTorch but no .NET, and packs the checkpoint into one file
# (machines that hand back a limited number of files then return it whole).
#
# Here (with the .NET 10 SDK): a trimmed self-contained publish, packed small (11.2 MB (11,199,252 bytes) as .tar.xz on 2026-12-05; the
# device takes 64 MiB of working tree in all and the tracked files are 36 MB). Trim warnings are not errors for this
# publish only; System.Text.Json keeps reflection (config.json is written
# through it: without the flag a trimmed publish fails at the first save); the published copy of the built-in model is dropped (the run reads models/vidkv-tiny from the tree), and
# so are the debugger, dump and alternative-GC libraries, symbols and XML docs:
#   rm -rf /tmp/vidkv-train && dotnet publish tools/Train -c Release -r linux-x64 --self-contained true -p:VidKVNoNativeLibTorch=true \
#     -p:PublishTrimmed=true -p:TrimMode=partial -p:ILLinkTreatWarningsAsErrors=false -p:SuppressTrimAnalysisWarnings=true \
#     -p:JsonSerializerIsReflectionEnabledByDefault=true -p:DebugType=none -p:InvariantGlobalization=true -o /tmp/vidkv-train
#   (cd /tmp/vidkv-train && rm -rf models libmscordbi.so libmscordaccore.so createdump *.pdb *.xml libcoreclrtraceptprovider.so libclrgc.so libclrgcexp.so)
#   mkdir -p .gpu && tar cf - -C /tmp/vidkv-train . | xz -9e -T1 > .gpu/vidkv-train.tar.xz   # .gpu/ is git-ignored
# There (the repository's working tree, .gpu/ carried):
#   mkdir -p /tmp/train && tar xJf .gpu/vidkv-train.tar.xz -C /tmp/train
#   OUT=$OUT bash scripts/train-gpu.sh /tmp/train --init models/vidkv-tiny --minutes 7 --steps 100000 --batch 64 --lr 5e-4 --warmup 50 --questions 8 \
#     --max-video-frames 256 --eval-every 700 --validation 200 --seed 15 --position frame --motion-weight 1 --motion-layer 2 \
#     --families Attribute:3,Counting:1.5,MotionDirection:1.5,TemporalOrder,Needle:1.5 --cache-queries after-video --cache-share 0.75
#   (the run-13 settings with every query after the video reading the vidkv-1.5/1.58 cache: what a question answered
#   from a remembered video sees)
# DEVICE=cpu VIDKV_LIBTORCH= runs it on the CPU with the packaged libtorch (a check of the script). Writes $OUT/train.log and $OUT/checkpoint.tar (config, weights, tokenizer, preprocessor config, and beside it checkpoint-training/ with the visual head of
# the last save: also after a failure, when one was saved).
set -uo pipefail
if [ $# -lt 1 ] || [ ! -x "$1/vidkv-train" ]; then
  echo "usage: OUT=<folder> $0 <published folder containing vidkv-train> [train options, without --out and --device]" >&2
  exit 2
fi
dir="$1"; shift
: "${OUT:?set OUT to the folder the checkpoint and log go to}"
mkdir -p "$OUT"
export VIDKV_LIBTORCH="${VIDKV_LIBTORCH-python}"
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$dir/vidkv-train" train --out "$work/checkpoint" --device "${DEVICE:-cuda}" "$@" 2>&1 | tee "$OUT/train.log"
status=${PIPESTATUS[0]}
if [ -f "$work/checkpoint/model.safetensors" ]; then
  tar cf "$OUT/checkpoint.tar" -C "$work" checkpoint $( [ -d "$work/checkpoint-training" ] && echo checkpoint-training )
  echo "checkpoint: $OUT/checkpoint.tar"
else
  echo "no checkpoint was saved" >&2
fi
exit "$status"
