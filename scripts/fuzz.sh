#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of every decoder that takes outside bytes and of the
# fold; targets in fuzz/, described in docs/fuzzing.md. Fails on the first crash (the input is saved
# under fuzz/artifacts/<target>/ and cargo-fuzz prints how to reproduce it).
#
# usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 15 s for each of the six targets)
#
# Runs on the stable toolchain: cargo-fuzz needs nightly only for sanitizers, and `--sanitizer none`
# builds with stable rustc's SanitizerCoverage instrumentation (libFuzzer itself is compiled from C++ by
# libfuzzer-sys). Rust's memory safety makes ASan of little use for this code; debug assertions and
# overflow checks stay on (cargo-fuzz's default), so panics, failed invariants, integer overflows,
# excessive allocation (-rss_limit_mb) and hangs (-timeout) are what it finds.
#
# cargo-fuzz is installed once into ~/.cargo/bin; the instrumented build goes to fuzz/target (kept
# between runs). New inputs found by a run go to a scratch directory unless BCL_FUZZ_KEEP=1, so the
# committed corpus (fuzz/corpus/<target>) changes only when someone means it to.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-15}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(jsonl_events proto_append fold seal_png scan_image audit_export)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --version 0.13.2
fi

cd fuzz
# Sixteen codegen units instead of cargo-fuzz's one: the engine's dependency tree builds several times
# faster on a small machine, for a few percent of executions per second. BCL_FUZZ_BUILD=dev (the test
# suite's short run) builds without optimisation: about half the CPU to build, for a run of seconds
# where building is most of the cost; debug assertions and overflow checks are on either way.
if [ "${BCL_FUZZ_BUILD:-release}" = dev ]; then
    build=(-s none --dev)
else
    build=(-s none --codegen-units 16)
fi
cargo fuzz build "${build[@]}"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    if [ "${BCL_FUZZ_KEEP:-0}" = 1 ]; then
        dirs=("corpus/$t")
    else
        mkdir -p "$scratch/$t"
        dirs=("$scratch/$t" "corpus/$t")
    fi
    echo "== fuzz $t for ${seconds}s"
    # -max_len: the largest seed is a ~30 KB export; images and logs need room to grow.
    cargo fuzz run "${build[@]}" "$t" "${dirs[@]}" -- \
        -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
