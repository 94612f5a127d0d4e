#!/usr/bin/env bash
# Makes libnvrtc available where it can be (Debian's non-free libnvrtc11.2): the tests then compile every CUDA kernel
# the library builds at run time (attention and the decoder's layer kernels) for sm_80 and sm_90, without a GPU.
# Optional: when it cannot be installed the message says why and those tests skip with their reason.
set -uo pipefail

if ldconfig -p 2>/dev/null | grep -q 'libnvrtc\.so'; then
  exit 0
fi
if [ -n "${VIDKV_NVRTC:-}" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then
  echo "note: libnvrtc not installed (needs root and apt-get); the NVRTC compile tests will skip." >&2
  exit 0
fi

if ! why=$(bash "$(dirname "$0")/apt-non-free.sh" 2>&1); then
  echo "note: $why; libnvrtc not installed and the NVRTC compile tests will skip." >&2
  exit 0
fi

if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libnvrtc11.2 >/dev/null; then
  echo "installed: libnvrtc11.2 (Debian non-free)" >&2
else
  echo "note: installing libnvrtc11.2 failed; the NVRTC compile tests will skip." >&2
fi
exit 0
