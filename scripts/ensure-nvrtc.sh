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

# Debian's own archive with the non-free component added, as a second sources file derived from the first.
sources=/etc/apt/sources.list.d/debian.sources
extra=/etc/apt/sources.list.d/vidkv-non-free.sources
if [ ! -f "$extra" ]; then
  if [ -f "$sources" ] && grep -q '^Components:' "$sources"; then
    sed 's/^Components:.*/Components: non-free/' "$sources" > "$extra"
  else
    echo "note: $sources not found; libnvrtc not installed and the NVRTC compile tests will skip." >&2
    exit 0
  fi
fi

if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libnvrtc11.2 >/dev/null; then
  echo "installed: libnvrtc11.2 (Debian non-free)" >&2
else
  echo "note: installing libnvrtc11.2 failed; the NVRTC compile tests will skip." >&2
fi
exit 0
