#!/usr/bin/env bash
# Side by side: two engine binaries under the same kiosk load, alternating at every rate, so both see the
# same (shared, noisy) machine. Prints one Markdown table (bench/summarize.py) for BENCHMARKS.md.
#
#   bench/ab.sh BEFORE_BCL AFTER_BCL [RATE ...]      # default rates: 100 300 500 700 1000
#
# e.g. build the old commit in a worktree, then
#   bench/ab.sh /tmp/before/bcl target/release/bcl 100 500 1000
# Each run: one spawned engine, two fixture municipalities of 1,000 households, the documented mix, open
# loop with Poisson arrivals, 15 s measured after 3 s of warm-up (BENCH_DURATION / BENCH_WARMUP override),
# default load shedding; then a closed loop of 8 kiosks. Reports under out/bench/kiosk-load/ab/.
# LOAD_BEFORE / LOAD_AFTER: another kiosk-load binary for that side (to compare harnesses on one engine:
#   LOAD_BEFORE=/tmp/before/kiosk-load bench/ab.sh target/release/bcl target/release/bcl 500).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n 2,13p "$0"; exit 2; }
before=$1 after=$2
shift 2
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(100 300 500 700 1000)
duration=${BENCH_DURATION:-15}
warmup=${BENCH_WARMUP:-3}
out=out/bench/kiosk-load/ab
mkdir -p "$out"
cargo build --release -p bcl-bench --bin kiosk-load >&2
load_before=${LOAD_BEFORE:-target/release/kiosk-load}
load_after=${LOAD_AFTER:-target/release/kiosk-load}
common=(--spawn --centres 1 --municipalities 2 --households 1000 --warmup "$warmup" --duration "$duration" --quiet)
rows=()
run() { # label binary out-dir kiosk-load-args...
  local label=$1 bin=$2 dir=$3 load=$load_after
  shift 3
  [[ $label == *before ]] && load=$load_before
  echo "# $label: load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  "$load" "${common[@]}" --bcl "$bin" "$@" --out "$dir" >/dev/null || echo "(exit $?: see $dir/report.json)" >&2
  rows+=("$label=$dir/report.json")
}
echo "# bench/ab.sh $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# before: $before (kiosk-load $load_before); after: $after (kiosk-load $load_after)"
for rate in "${rates[@]}"; do
  run "$rate/s before" "$before" "$out/open-$rate-before" --rate "$rate"
  run "$rate/s after" "$after" "$out/open-$rate-after" --rate "$rate"
done
# The closed loop measures capacity: without --rate-limit=0 the per-caller token bucket (1,000/s by default, and
# kiosk-load is one caller) would cap it once the engine goes faster than that.
run "closed loop, 8 kiosks, before" "$before" "$out/closed-8-before" --mode closed --kiosks 8 --serve-arg=--rate-limit=0
run "closed loop, 8 kiosks, after" "$after" "$out/closed-8-after" --mode closed --kiosks 8 --serve-arg=--rate-limit=0
echo "# done, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
python3 bench/summarize.py "${rows[@]}"
