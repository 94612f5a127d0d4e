#!/usr/bin/env python3
"""Brings each PublicAPI.Unshipped.txt in line with what a build reports: adds the public symbols it reports as undeclared
(RS0016) and removes the declared ones it reports as gone (RS0017). Review the diff afterwards: every added line is a new
public member. Usage: dotnet build VidKV.AI.sln -c Release 2>&1 | python3 scripts/sync-public-api.py"""
import collections, os, re, sys
added = collections.defaultdict(set)
stale = collections.defaultdict(set)
for line in sys.stdin:
    m = re.search(r"^(.*PublicAPI\.Unshipped\.txt)\(\d+,\d+\): error RS0017: Symbol '(.*)' is part of the declared API", line)
    if m:
        stale[m.group(1)].add(m.group(2))
        continue
    m = re.search(r"^.*\.cs\(\d+,\d+\): error RS0016: Symbol '(.*)' is not part of the declared public API.*\[(.*\.csproj)\]", line)
    if m:
        added[os.path.join(os.path.dirname(m.group(2)), "PublicAPI.Unshipped.txt")].add(m.group(1))
for path in set(added) | set(stale):
    lines = [l for l in open(path).read().splitlines() if l and l != "#nullable enable"]
    entries = (set(lines) - stale[path]) | added[path]
    open(path, "w").write("#nullable enable\n" + "\n".join(sorted(entries, key=lambda s: s.encode())) + "\n")
    print(f"{path}: +{len(added[path] - set(lines))} -{len(stale[path] & set(lines))}")
