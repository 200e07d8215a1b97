#!/usr/bin/env bash
# Instructions per approve cycle of the engine on the memory store, counted by callgrind:
# repeatable for the same build whatever else the machine does, so figures compare from run
# to run. The benchmark runs twice (N and 2N cycles); the difference, divided by N, leaves out
# what a run costs once (start-up, the runtime, the first allocations). Only the runtime's
# worker threads are counted: the cycles run there, while the main thread opens the store and,
# once they are done, verifies every row (work that grows with N but is no cycle's).
#
#   bash benches/instructions.sh [N]        # N = 500 by default (about 7 minutes)
#
# It prints the instructions per cycle, the shares spent in malloc/free/realloc and in the
# trail's SHA-256, and the functions that cost the most per cycle.
set -euo pipefail
# A failure inside `$(...)` fails the script too, rather than giving a figure from what failed.
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
n="${1:-500}"
command -v valgrind >/dev/null || { echo "instructions.sh needs valgrind" >&2; exit 1; }

bench=$(cargo bench --bench approval_cycle --no-run --message-format=json \
  | sed -n 's/.*"executable":"\([^"]*approval_cycle[^"]*\)".*/\1/p' | tail -1) \
  || { echo "could not build the approval_cycle benchmark" >&2; exit 1; }
[ -x "$bench" ] || { echo "could not find the approval_cycle benchmark" >&2; exit 1; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
count() {
  valgrind --tool=callgrind --callgrind-out-file="$out/$1.out" \
    --collect-atstart=no --toggle-collect='tokio::runtime::scheduler::multi_thread::worker::run' \
    "$bench" --bench --backend memory --n "$1" --warmup 0 >/dev/null 2>"$out/$1.log" \
    || { echo "the benchmark failed under valgrind:" >&2; cat "$out/$1.log" >&2; return 1; }
  sed -n 's/^summary: //p' "$out/$1.out"
}
small=$(count "$n")
large=$(count "$((2 * n))")
per_cycle=$(( (large - small) / n ))
echo "instructions per cycle (memory store, callgrind, ${n} vs $((2 * n)) cycles): ${per_cycle}"

# Exclusive cost per function in the larger run, less the smaller run's, per cycle.
top() {
  callgrind_annotate --inclusive=no --threshold=100 "$out/$1.out" 2>/dev/null \
    | awk '/^ *[0-9,]+ +\(/ && !/PROGRAM TOTALS/ {n = $1; gsub(",", "", n); name = $0; sub(/^[^)]*\) +/, "", name); print n "\t" name}'
}
join -t $'\t' -1 2 -2 2 <(top "$((2 * n))" | sort -t $'\t' -k2,2) <(top "$n" | sort -t $'\t' -k2,2) \
  | awk -F '\t' -v n="$n" -v total="$per_cycle" '{d = ($2 - $3) / n; if (d > 0) printf "%d\t%s\n", d, $1}' \
  | sort -rn > "$out/delta"
alloc=$(grep -E 'malloc|free|realloc|calloc' "$out/delta" | awk -F '\t' '{s += $1} END {print s + 0}')
echo "in malloc/free/realloc: ${alloc} per cycle ($(( 100 * alloc / per_cycle ))%)"

# The trail's SHA-256, inclusive. Valgrind's processor reports no SHA extensions, so the hash
# runs its portable rounds here: on hardware with the extensions it costs a fraction of this.
inclusive() {
  callgrind_annotate --inclusive=yes --threshold=100 "$out/$1.out" 2>/dev/null \
    | awk -v f="$2" '!found && index($0, f) {n = $1; gsub(",", "", n); print n; found = 1}'
}
hashing=$(( ($(inclusive "$((2 * n))" 'kern_core::trail::hex_sha256 ') - $(inclusive "$n" 'kern_core::trail::hex_sha256 ')) / n ))
echo "in the trail's SHA-256: ${hashing} per cycle ($(( 100 * hashing / per_cycle ))%)"
echo "most expensive functions per cycle (exclusive):"
head -15 "$out/delta" | awk -F '\t' '{printf "  %9d  %s\n", $1, substr($2, 1, 110)}'
