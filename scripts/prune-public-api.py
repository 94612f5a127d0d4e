#!/usr/bin/env python3
"""Removes from PublicAPI.Unshipped.txt the entries a build reports as no longer public (RS0017).
Usage: dotnet build ... 2>&1 | python3 scripts/prune-public-api.py"""
import re, sys, collections
stale = collections.defaultdict(set)
for line in sys.stdin:
    m = re.search(r"^(.*PublicAPI\.Unshipped\.txt)\(\d+,\d+\): error RS0017: Symbol '(.*)' is part of the declared API", line)
    if m:
        stale[m.group(1)].add(m.group(2))
for path, symbols in stale.items():
    lines = open(path).read().splitlines()
    kept = [l for l in lines if l not in symbols]
    open(path, 'w').write('\n'.join(kept) + '\n')
    print(f"{path}: removed {len(lines) - len(kept)} entries")
