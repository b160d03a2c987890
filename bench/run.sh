#!/usr/bin/env bash
# Reproduces every figure in BENCHMARKS.md on this machine, in one command:
#
#   bench/run.sh            # everything (about 25 minutes after the release build and bench/setup.sh)
#   bench/run.sh load       # only the kiosk load runs (rates with and without shedding, max sustainable)
#   bench/run.sh compare    # only this engine vs Typst vs Chromium (PNGs into docs/comparison/)
#   bench/run.sh issue6     # issue 6's sections: compare, breakdown, h2load, memory, load
#
# Output: Markdown on stdout (paste into BENCHMARKS.md), kiosk-load reports (JSON + CSV) under
# out/bench/kiosk-load/. Figures depend on the machine and on whatever else runs on it: record both.
set -euo pipefail
cd "$(dirname "$0")/.."

what="${1:-all}"
out="out/bench"
mkdir -p "$out"
has() { [ "$what" = all ] || [ "$what" = "$1" ] || { [ "$what" = issue6 ] && [ "$1" != foundation ]; }; }

bench/setup.sh
echo "# bench/run.sh $what — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB"
cargo build --release -p bcl-bench -p bcl-engine --bins
bench=target/release/bcl-bench

if has foundation; then
  "$bench" render
  "$bench" issue --runs 500
  "$bench" ingest
  "$bench" catalogue --runs 30
  "$bench" audit --households 20000
  cargo test --release -p bcl-engine --lib verify::tests::scan_verification_table -- --ignored --nocapture
  cargo test --release -p bcl-engine --lib scramble:: -- --ignored --nocapture
fi

if has compare; then
  echo; echo "# load average $(cut -d' ' -f1-3 /proc/loadavg)"
  "$bench" compare --runs 40 --cold-runs 8 --out "$out/compare" --png docs/comparison
fi

if has breakdown; then
  echo; echo "# load average $(cut -d' ' -f1-3 /proc/loadavg)"
  "$bench" breakdown --runs 300
fi

if has h2load; then
  echo; echo "# load average $(cut -d' ' -f1-3 /proc/loadavg)"
  "$bench" h2load --requests 4000 --rounds 3
fi

if has memory; then
  echo; echo "# load average $(cut -d' ' -f1-3 /proc/loadavg)"
  "$bench" rss --counts 1,10 --residents 100000 --issue 2000
fi

if has load; then
  load=target/release/kiosk-load
  common=(--spawn --centres 1 --municipalities 2 --households 1000 --warmup 3 --quiet --bcl target/release/bcl)
  rows=()
  # With the default load shedding and without it (--no-shed), alternating, so both see the same machine.
  for rate in 100 150 200 300 400 500 700 1000; do
    for mode in shed no-shed; do
      extra=()
      [ "$mode" = no-shed ] && extra=(--serve-arg=--no-shed)
      dir="$out/kiosk-load/open-$rate-$mode"
      echo "# kiosk-load: open loop, Poisson, $rate offered certs/s, 15 s, $mode, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
      "$load" "${common[@]}" "${extra[@]}" --rate "$rate" --duration 15 --out "$dir" >/dev/null || echo "(exit $?: see $dir/report.json)" >&2
      rows+=("$rate/s $mode=$dir/report.json")
    done
  done
  # Below 100/s, for the maximum rate with p99 ≤ 10 ms (with the default shedding).
  for rate in 25 50 75; do
    dir="$out/kiosk-load/open-$rate-shed"
    "$load" "${common[@]}" --rate "$rate" --duration 15 --out "$dir" >/dev/null || echo "(exit $?: see $dir/report.json)" >&2
    rows+=("$rate/s shed=$dir/report.json")
  done
  # Capacity, so without the per-caller rate limit (1,000/s by default; kiosk-load is one caller).
  "$load" "${common[@]}" --mode closed --kiosks 8 --duration 15 --serve-arg=--rate-limit=0 \
    --out "$out/kiosk-load/closed-8" >/dev/null || true
  rows+=("closed loop, 8 kiosks=$out/kiosk-load/closed-8/report.json")
  echo; echo "### kiosk-load: open loop (Poisson), with and without load shedding; closed loop (load average now $(cut -d' ' -f1-3 /proc/loadavg))"; echo
  python3 bench/summarize.py "${rows[@]}"
  echo; echo "### kiosk-load: two centres, east killed after 10 s (fail-over drill), 150/s"
  "$load" --spawn --centres 2 --municipalities 2 --households 1000 --warmup 3 --quiet --bcl target/release/bcl \
    --rate 150 --duration 20 --kill-east-after 10 --out "$out/kiosk-load/failover"
fi
