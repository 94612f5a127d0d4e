#!/usr/bin/env python3
"""Where a kernel's instructions go, from the per-SASS-instruction CSV that bench/profile-mma-gpu.sh writes
(`ncu -i <report> --page source --csv --print-source sass`).

    python3 bench/sass_summary.py mma-131072-sass.csv [--units N]

Prints the total warp instructions and stall samples, the instructions grouped by how often each ran (instructions of
one loop body or one code path run the same number of times: with --units, the count of 32-token units the launch
processed, each group is also given per unit), and the opcodes by executed count with their share of stall samples.
"""
import argparse
import collections
import csv


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("csv", help="per-instruction CSV of one kernel (ncu --page source --csv --print-source sass)")
    p.add_argument("--units", type=int, default=0, help="32-token units the launch processed (tokens / 32 x KV heads)")
    p.add_argument("--top", type=int, default=12, help="rows per table")
    a = p.parse_args()
    with open(a.csv, newline="") as f:
        rows = list(csv.reader(f))
    header_at = next(i for i, r in enumerate(rows) if "Source" in r and "Instructions Executed" in r)
    header, data = rows[header_at], [r for r in rows[header_at + 1:] if len(r) == len(rows[header_at])]
    src, executed, samples = header.index("Source"), header.index("Instructions Executed"), header.index("Warp Stall Sampling (All Samples)")
    total = sum(int(r[executed]) for r in data)
    total_samples = max(1, sum(int(r[samples]) for r in data))
    print(f"{a.csv}: {len(data)} SASS instructions, {total:,} warp instructions executed, {total_samples:,} stall samples")
    if a.units:
        print(f"per unit: {total / a.units:,.0f} warp instructions")

    by_count = collections.defaultdict(lambda: [0, 0, 0])
    for r in data:
        n = int(r[executed])
        by_count[n][0] += 1
        by_count[n][1] += n
        by_count[n][2] += int(r[samples])
    print("\nruns per instruction | instructions | executed | share | stall samples" + (" | per unit" if a.units else ""))
    for n, (count, ex, smp) in sorted(by_count.items(), key=lambda kv: -kv[1][1])[:a.top]:
        extra = f" | {ex / a.units:,.0f}" if a.units else ""
        print(f"{n:>20,} | {count:>12} | {ex:>12,} | {ex / total:5.1%} | {smp / total_samples:5.1%}{extra}")

    by_op = collections.defaultdict(lambda: [0, 0])
    for r in data:
        words = r[src].split()
        if not words:
            continue
        op = words[1] if words[0].startswith("@") and len(words) > 1 else words[0]
        op = op.split(".")[0]
        by_op[op][0] += int(r[executed])
        by_op[op][1] += int(r[samples])
    print("\nopcode | executed | share | stall samples")
    for op, (ex, smp) in sorted(by_op.items(), key=lambda kv: -kv[1][0])[:a.top]:
        print(f"{op:10} | {ex:>12,} | {ex / total:5.1%} | {smp / total_samples:5.1%}")


if __name__ == "__main__":
    main()
