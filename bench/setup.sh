#!/usr/bin/env bash
# Installs what the benchmarks need beyond the Rust toolchain (called by bench/run.sh; safe to rerun,
# installs only what is missing):
#   - scripts/setup.sh: the IPA fonts, qpdf, poppler-utils (pdftoppm makes the comparison PNGs)
#   - Debian: chromium (the HTML-to-PDF contender), nghttp2-client (h2load), nodejs + npm
#   - PyPI: typst (the Typst compiler as a library, for the warm Typst contender)
#   - npm: playwright-core, under target/compare-node (drives Debian's chromium; no browser download)
#   - crates.io: typst-cli 0.15.1 (`cargo install --locked --version 0.15.1`; the cold Typst contender, the
#     release beside the PyPI library). Slow to build on two cores (10-20 minutes idle, well over an hour
#     on a shared busy box), so it is built once into ~/.cargo/bin at the lowest priority;
#     BENCH_NO_TYPST_CLI=1 skips it (the comparison then reports the Typst CLI as not measured).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

# command:Debian package; a command already on PATH (e.g. a node that did not come from Debian) is used as is.
missing=()
for pair in chromium:chromium h2load:nghttp2-client node:nodejs npm:npm; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
    echo "bench/setup.sh: installing ${missing[*]}" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! python3 -c "import typst" 2>/dev/null; then
    echo "bench/setup.sh: pip install typst" >&2
    python3 -m pip install --quiet typst
fi

if [ ! -d target/compare-node/node_modules/playwright-core ]; then
    echo "bench/setup.sh: npm install playwright-core (target/compare-node)" >&2
    mkdir -p target/compare-node
    npm install --silent --no-audit --no-fund --prefix target/compare-node playwright-core >/dev/null
fi

if pgrep -f "cargo install.*typst-cli" >/dev/null; then
    echo "bench/setup.sh: typst-cli is being installed by another process; the Typst CLI is not measured this time" >&2
elif [ -z "${BENCH_NO_TYPST_CLI:-}" ] && ! command -v typst >/dev/null && [ ! -x "$HOME/.cargo/bin/typst" ]; then
    echo "bench/setup.sh: cargo install typst-cli --locked --version 0.15.1 (slow: once per machine)" >&2
    nice -n 19 cargo install --quiet --locked typst-cli --version 0.15.1
fi
