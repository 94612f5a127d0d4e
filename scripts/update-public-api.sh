#!/usr/bin/env bash
# Declares each library's current public API in its PublicAPI.Unshipped.txt (the baseline the build checks, RS0016/RS0017).
# Run after an intended change of the public surface, then review the diff: every added line is a new public member.
set -euo pipefail
cd "$(dirname "$0")/.."
for project in src/*/*.csproj; do
  dir="$(dirname "$project")"
  printf '#nullable enable\n' > "$dir/PublicAPI.Unshipped.txt"
  [ -f "$dir/PublicAPI.Shipped.txt" ] || printf '#nullable enable\n' > "$dir/PublicAPI.Shipped.txt"
  dotnet format analyzers "$project" --diagnostics RS0016 RS0017 --severity warn -v q
  # Stable order, header first.
  { printf '#nullable enable\n'; grep -v '^#nullable enable$' "$dir/PublicAPI.Unshipped.txt" | LC_ALL=C sort -u; } > "$dir/PublicAPI.Unshipped.tmp"
  mv "$dir/PublicAPI.Unshipped.tmp" "$dir/PublicAPI.Unshipped.txt"
  echo "$dir: $(($(wc -l < "$dir/PublicAPI.Unshipped.txt") - 1)) public API entries"
done
