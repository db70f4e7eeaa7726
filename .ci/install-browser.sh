#!/usr/bin/env bash
# Install Chromium + chromedriver (Debian packages) for the browser journey
# test (.ci/browser-journey.py). Idempotent: does nothing, silently, when
# both binaries are already present.
set -euo pipefail

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    exit 0
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
    SUDO="sudo"
fi

echo "install-browser: installing chromium and chromium-driver" >&2
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null

for bin in /usr/bin/chromium /usr/bin/chromedriver; do
    if [[ ! -x "$bin" ]]; then
        echo "install-browser: $bin still missing after install" >&2
        exit 1
    fi
done
echo "install-browser: $(/usr/bin/chromium --version 2>/dev/null || echo chromium ?)" >&2
echo "install-browser: $(/usr/bin/chromedriver --version 2>/dev/null || echo chromedriver ?)" >&2
