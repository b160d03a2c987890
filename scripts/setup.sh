#!/usr/bin/env bash
# Installs what bcl needs beyond the Rust toolchain, from Debian's packages:
#   - fonts-ipamj-mincho, fonts-ipaexfont-gothic: the fonts certificates are rendered with (IPA Font
#     License, see fixtures/fonts/). IPAmj明朝 covers the characters of Japanese resident registries,
#     including ideographic variation sequences.
#   - qpdf, poppler-utils: the real PDF tools the tests check certificates with (qpdf --check, pdftotext,
#     pdftoppm, pdfimages).
#   - chromium, nodejs, npm: the verification web page (`bcl serve --verify-http`) is tested in a real
#     headless Chromium driven by Playwright (engine/tests/web/, playwright-core pinned by its
#     package-lock.json; it drives Debian's /usr/bin/chromium, no browser download).
# Safe to run repeatedly; does nothing when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(fonts-ipamj-mincho fonts-ipaexfont-gothic qpdf poppler-utils chromium)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm: any installation will do (a machine may carry them outside Debian's packages, and
# Debian's npm then cannot be installed beside them).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The browser test's own dependencies, exactly as locked.
if [ ! -d engine/tests/web/node_modules/playwright-core ]; then
    echo "setup: installing the browser test's npm packages" >&2
    (cd engine/tests/web && npm ci --no-audit --no-fund --loglevel=error)
fi
