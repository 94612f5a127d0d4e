#!/usr/bin/env bash
# Trains the built-in model on a CUDA machine that has PyTorch but no .NET, and packs the checkpoint into one file
# (machines that hand back a limited number of files then return it whole).
#
# Here (with the .NET 10 SDK):
#   dotnet publish tools/Train -c Release -r linux-x64 --self-contained true -p:VidKVNoNativeLibTorch=true -o /tmp/vidkv-train
#   tar cJf vidkv-train.tar.xz -C /tmp/vidkv-train .
# There:
#   mkdir train && tar xJf vidkv-train.tar.xz -C train
#   OUT=/some/folder bash scripts/train-gpu.sh train --init models/vidkv-tiny --minutes 8 --steps 100000 --batch 64 --lr 1e-3 --questions 8 --max-video-frames 256 --position frame
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
