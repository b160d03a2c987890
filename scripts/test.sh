#!/usr/bin/env bash
# The project's test command (README, CI): installs what the tests need, then runs every test of the
# workspace. Fails when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace --release --no-fail-fast
# A short bounded fuzz run of every fuzz target (docs/fuzzing.md): fails on any crash. The longer
# recorded runs use the optimised build (scripts/fuzz.sh with no BCL_FUZZ_BUILD).
BCL_FUZZ_BUILD=dev scripts/fuzz.sh 15
