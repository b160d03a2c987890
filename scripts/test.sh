#!/usr/bin/env bash
# The project's test command (README, CI): installs what the tests need, then runs every test of the
# workspace. Fails when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace --release --no-fail-fast
# A short bounded fuzz run of every fuzz target (docs/fuzzing.md): fails on any crash.
scripts/fuzz.sh 15
