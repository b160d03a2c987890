#!/usr/bin/env bash
# Reproduces every figure in BENCHMARKS.md on this machine, in one command:
#
#   bench/run.sh            # everything (about 10 minutes after the release build)
#   bench/run.sh load       # only the kiosk load runs
#
# Output: Markdown on stdout (paste into BENCHMARKS.md), kiosk-load reports (JSON + CSV) under
# out/bench/kiosk-load/. Figures depend on the machine and on whatever else runs on it: record both.
set -euo pipefail
cd "$(dirname "$0")/.."

what="${1:-all}"
out="out/bench"
mkdir -p "$out"

echo "# bench/run.sh $what — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
cargo build --release -p bcl-bench -p bcl-engine --bins

if [ "$what" = all ]; then
  bench=target/release/bcl-bench
  "$bench" render
  "$bench" issue --runs 500
  "$bench" ingest
  "$bench" catalogue --runs 30
  "$bench" audit --households 20000
  cargo test --release -p bcl-engine --lib verify::tests::scan_verification_table -- --ignored --nocapture
  cargo test --release -p bcl-engine --lib scramble:: -- --ignored --nocapture
fi

if [ "$what" = all ] || [ "$what" = load ]; then
  load=target/release/kiosk-load
  common=(--spawn --centres 1 --municipalities 2 --households 1000 --warmup 3 --quiet --bcl target/release/bcl)
  for rate in 100 150 200 300 500 1000; do
    echo; echo "### kiosk-load: open loop, Poisson, $rate offered certs/s, 20 s"
    "$load" "${common[@]}" --rate "$rate" --duration 20 --out "$out/kiosk-load/open-$rate" || echo "(exit $?: see $out/kiosk-load/open-$rate/report.json)"
  done
  echo; echo "### kiosk-load: closed loop, 8 kiosks, no think time (capacity), 20 s"
  "$load" "${common[@]}" --mode closed --kiosks 8 --duration 20 --out "$out/kiosk-load/closed-8"
  echo; echo "### kiosk-load: two centres, east killed after 10 s (fail-over drill), 150/s"
  "$load" --spawn --centres 2 --municipalities 2 --households 1000 --warmup 3 --quiet --bcl target/release/bcl \
    --rate 150 --duration 20 --kill-east-after 10 --out "$out/kiosk-load/failover"
fi
