#!/usr/bin/env python3
"""PyTorch's own decode attention at LLaVA-OneVision-7B's layer geometry: the baseline a PyTorch user already has.

One decode query (batch 1, 28 query heads, 4 KV heads, head dim 128) over an fp16 cache of N tokens, through
torch.nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=True) with each SDPA backend that accepts it
(cuDNN, flash, memory-efficient, math), timed the way `vidkv-bench decode --device cuda` times its methods:

- sync per call: synchronize, read the clock, one call, synchronize, read the clock (median over --repeats calls);
- back to back: --batch calls queued without synchronizing, divided by --batch (median over --repeats batches);
  launch overhead hides behind the GPU's work when the host keeps ahead;
- host per call: in the same batches, the time until the last call returned (issued, before the synchronization),
  divided by --batch: the host's share of a call (launch included).

The calls rotate over --copies caches (different random data), so that at every length the bytes read come from
device memory, not from a cache that an earlier call left in the 60 MB L2 (a decode step touches 28 layers' caches).
Inputs are random (never zeros). Each backend's output is checked against float64 attention on the same inputs.
Run on the GPU machine (PyTorch there); bench/run-attention-gpu.sh runs it next to the project's benchmark.
"""
import argparse
import contextlib
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = {
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "math": SDPBackend.MATH,
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tokens", default="4096,16384,65536,131072")
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--q-heads", type=int, default=28)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--copies", type=int, default=0, help="caches rotated; 0: enough for 256 MiB, at least 2")
    p.add_argument("--backends", default="cudnn,flash,efficient,math",
                   help="SDPA backends to force, or 'default' for PyTorch's own choice")
    p.add_argument("--layouts", default="gqa",
                   help="gqa: q [1, Hq, 1, D] with enable_gqa=True; folded: the query heads of each KV head as rows, "
                        "q [1, Hkv, Hq/Hkv, D] without enable_gqa (the call TorchSharp, which has no enable_gqa, makes)")
    p.add_argument("--json", help="also write the rows as JSON to this path")
    a = p.parse_args()
    if not torch.cuda.is_available():
        print("error: no CUDA device", file=sys.stderr)
        return 2
    dev = torch.device("cuda")
    print(f"# {torch.cuda.get_device_name(dev)}, PyTorch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"cuDNN {torch.backends.cudnn.version()}")
    rows = []
    for n in (int(t) for t in a.tokens.split(",")):
        torch.manual_seed(n)
        kv_bytes = 2 * a.kv_heads * n * a.head_dim * 2
        copies = a.copies or max(2, -(-256 * 2**20 // kv_bytes))
        ks = [torch.randn(1, a.kv_heads, n, a.head_dim, device=dev, dtype=torch.float16) for _ in range(copies)]
        vs = [torch.randn(1, a.kv_heads, n, a.head_dim, device=dev, dtype=torch.float16) for _ in range(copies)]
        qs = [torch.randn(1, a.q_heads, 1, a.head_dim, device=dev, dtype=torch.float16) for _ in range(copies)]
        g = a.q_heads // a.kv_heads
        k64 = ks[0].double().repeat_interleave(g, 1)
        v64 = vs[0].double().repeat_interleave(g, 1)
        att = (qs[0].double() @ k64.transpose(-1, -2)) / a.head_dim ** 0.5
        ref = att.softmax(-1) @ v64
        for layout, name in ((l, b) for l in a.layouts.split(",") for b in a.backends.split(",")):
            try:
                with (sdpa_kernel([BACKENDS[name]]) if name != "default" else contextlib.nullcontext()):
                    if layout == "gqa":
                        def call(i):
                            return F.scaled_dot_product_attention(qs[i], ks[i], vs[i], enable_gqa=True)
                    else:
                        def call(i):
                            q = qs[i].reshape(1, a.kv_heads, g, a.head_dim)
                            return F.scaled_dot_product_attention(q, ks[i], vs[i]).reshape(1, a.q_heads, 1, a.head_dim)
                    out = call(0)
                    torch.cuda.synchronize()
                    err = ((out.double() - ref).norm() / ref.norm()).item()
                    for i in range(5):
                        call(i % copies)
                    torch.cuda.synchronize()
                    sync = []
                    for i in range(a.repeats):
                        torch.cuda.synchronize()
                        t0 = time.perf_counter()
                        call(i % copies)
                        torch.cuda.synchronize()
                        sync.append((time.perf_counter() - t0) * 1e3)
                    b2b, host = [], []
                    for r in range(a.repeats):
                        torch.cuda.synchronize()
                        t0 = time.perf_counter()
                        for i in range(a.batch):
                            call((r * a.batch + i) % copies)
                        host.append((time.perf_counter() - t0) * 1e3 / a.batch)
                        torch.cuda.synchronize()
                        b2b.append((time.perf_counter() - t0) * 1e3 / a.batch)
            except RuntimeError as e:
                print(f"{n} {layout} {name}: not run: {str(e).splitlines()[0]}")
                continue
            row = dict(tokens=n, layout=layout, backend=name, sync_ms=statistics.median(sync), sync_min_ms=min(sync),
                       b2b_ms=statistics.median(b2b), host_ms=statistics.median(host), rel_err=err, copies=copies, cache_mib=kv_bytes / 2**20)
            rows.append(row)
            print(json.dumps(row), flush=True)
        del ks, vs, qs
        torch.cuda.empty_cache()
    print()
    print("| cached tokens | PyTorch SDPA fp16: layout, backend | sync per call, median ms | min ms | back to back, ms per call | host ms per call (issued) | rel. error vs float64 | fp16 cache MiB (copies) |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['tokens']} | {r['layout']}, {r['backend']} | {r['sync_ms']:.3f} | {r['sync_min_ms']:.3f} | {r['b2b_ms']:.3f} | {r['host_ms']:.3f} | "
              f"{r['rel_err']:.1e} | {r['cache_mib']:.0f} ({r['copies']}) |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
