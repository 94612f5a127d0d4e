#!/usr/bin/env bash
# Runs every test project of the solution and prints one summary line ("N passed, N failed, N skipped").
set -uo pipefail
cd "$(dirname "$0")/.."

# The video tests make clips with ffmpeg and decode them through it: install it if missing, or stop with the fix.
bash scripts/ensure-ffmpeg.sh || exit 1
# The distributed video-memory tests start their own Redis (on 127.0.0.1, a free port, no persistence) and stop it.
bash scripts/ensure-redis.sh || exit 1

results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT

dotnet test VidKV.AI.sln -c Release --logger "trx" --logger "console;verbosity=normal" --results-directory "$results" "$@"
status=$?

passed=0; failed=0; skipped=0
for trx in "$results"/*.trx; do
  [ -f "$trx" ] || continue
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
  p=$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters"); passed=$((passed + ${p:-0}))
  f=$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters"); failed=$((failed + ${f:-0}))
  # Skipped tests are counted neither as executed nor as notExecuted in a trx: they are the total less the executed.
  t=$(sed -n 's/.* total="\([0-9]*\)".*/\1/p' <<<"$counters"); e=$(sed -n 's/.* executed="\([0-9]*\)".*/\1/p' <<<"$counters")
  skipped=$((skipped + ${t:-0} - ${e:-0}))
done
# Name every skipped test with its reason, and every failed test with the first lines of its message, last, where a
# log's tail shows them.
if [ "$failed" -gt 0 ] || [ "$skipped" -gt 0 ]; then
  python3 - "$results" <<'PY' || true
import glob, sys, xml.etree.ElementTree as ET
ns = {"t": "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"}
for trx in glob.glob(sys.argv[1] + "/*.trx"):
    for r in ET.parse(trx).getroot().iterfind(".//t:UnitTestResult", ns):
        outcome = r.get("outcome")
        if outcome == "NotExecuted":
            print("SKIPPED:", r.get("testName"), "--", r.findtext(".//t:Message", "", ns).strip())
        elif outcome == "Failed":
            message = r.findtext(".//t:Message", "", ns).strip().splitlines()[:6]
            trace = r.findtext(".//t:StackTrace", "", ns).strip().splitlines()[:6]
            print("FAILED:", r.get("testName"))
            for line in message + trace:
                print("   ", line)
PY
fi
echo "Tests: ${passed} passed, ${failed} failed, ${skipped} skipped"
if [ "$status" -eq 0 ] && [ "$passed" -eq 0 ]; then
  echo "error: no test ran" >&2
  exit 1
fi
exit "$status"
