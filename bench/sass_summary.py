#!/usr/bin/env python3
"""Where a kernel's instructions go, from the per-SASS-instruction CSV that bench/profile-mma-gpu.sh writes
(`ncu -i <report> --page source --csv --print-source sass`).

    python3 bench/sass_summary.py mma-131072-sass.csv [--units N]

Prints the total warp instructions and stall samples, the instructions grouped by how often each ran (instructions of
one loop body or one code path run the same number of times: with --units, the count of 32-token units the launch
processed, each group is also given per unit), and the opcodes by executed count with their share of stall samples.
With --regions N: the kernel in address order, N instructions a row (share of stall samples, how often the row's
instructions ran, and its barriers, fences, atomics, global accesses and tensor-core instructions), to see where a
launch's time goes (prologue, main loop, the split's state, the merges); with --stalls a-b,c-d: the stall reasons of
those instruction ranges (row indices as --regions prints them).
"""
import argparse
import collections
import csv


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("csv", help="per-instruction CSV of one kernel (ncu --page source --csv --print-source sass)")
    p.add_argument("--units", type=int, default=0, help="32-token units the launch processed (tokens / 32 x KV heads)")
    p.add_argument("--top", type=int, default=12, help="rows per table")
    p.add_argument("--regions", type=int, default=0, help="instructions per row of the address-order table")
    p.add_argument("--stalls", default="", help="instruction ranges a-b,c-d whose stall reasons to print")
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

    def opcode(r):
        """The instruction's opcode without its modifiers or predicate ("" for a row with no instruction)."""
        words = r[src].split()
        if not words:
            return ""
        return (words[1] if words[0].startswith("@") and len(words) > 1 else words[0]).split(".")[0]

    by_op = collections.defaultdict(lambda: [0, 0])
    for r in data:
        op = opcode(r)
        if not op:
            continue
        by_op[op][0] += int(r[executed])
        by_op[op][1] += int(r[samples])
    print("\nopcode | executed | share | stall samples")
    for op, (ex, smp) in sorted(by_op.items(), key=lambda kv: -kv[1][0])[:a.top]:
        print(f"{op:10} | {ex:>12,} | {ex / total:5.1%} | {smp / total_samples:5.1%}")

    if a.regions:
        marks = ("BAR", "MEMBAR", "ATOMG", "HMMA", "LDGSTS", "DEPBAR", "LDG", "STG", "SHFL", "MUFU", "EXIT")
        print(f"\nfirst instruction | stall samples | executed | most common run counts | marks")
        for k in range(0, len(data), a.regions):
            seg = data[k:k + a.regions]
            smp = sum(int(r[samples]) for r in seg)
            ex = sum(int(r[executed]) for r in seg)
            if smp == 0 and ex == 0:
                continue
            runs = collections.Counter(int(r[executed]) for r in seg).most_common(2)
            m = collections.Counter(op for op in map(opcode, seg) if op in marks)
            print(f"{k:>17} | {smp / total_samples:13.1%} | {ex:>8,} | {runs} | {dict(m)}")

    if a.stalls:
        reasons = [(c, header.index(c)) for c in header if c.startswith("stall_") and "Not Issued" not in c]
        for part in a.stalls.split(","):
            lo, hi = (int(x) for x in part.split("-"))
            tally = collections.Counter()
            for r in data[lo:hi]:
                for c, i in reasons:
                    tally[c] += int(r[i] or 0)
            n = max(1, sum(tally.values()))
            top = ", ".join(f"{c[6:]} {v / n:.0%}" for c, v in tally.most_common(7))
            print(f"[{lo}, {hi}): {sum(tally.values()):,} samples: {top}")


if __name__ == "__main__":
    main()
