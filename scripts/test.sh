#!/usr/bin/env bash
# Runs every rtc-mesh test on a fresh machine: installs what the tests need (Node.js, the
# pinned npm packages of the interop tests, coturn, iproute2, nftables, Chromium and Firefox ESR), then checks formatting and lints, runs
# the Rust tests (unit, property, integration, interop) and type-checks the fuzz targets.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Node.js 18+ and npm run the original JavaScript programs the interop tests talk to.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "== installing nodejs and npm (Debian packages)"
  as_root apt-get update -qq
  as_root apt-get install -y -qq nodejs npm >/dev/null
fi

# coturn is the real STUN server our STUN client is tested against (on loopback).
if ! command -v turnserver >/dev/null; then
  echo "== installing coturn (Debian package)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq coturn >/dev/null
fi

# iproute2 makes the network namespaces of the LAN and NAT tests.
if ! command -v ip >/dev/null && [ ! -x /usr/sbin/ip ] && [ ! -x /sbin/ip ]; then
  echo "== installing iproute2 (Debian package)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null
fi

# nftables cuts a peer's network path in the browser test's network namespace.
if ! command -v nft >/dev/null && [ ! -x /usr/sbin/nft ]; then
  echo "== installing nftables (Debian package)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables >/dev/null
fi

# conntrack(8) flushes a NAT router's mappings in the NAT test bed (cli/tests/nat.rs).
if ! command -v conntrack >/dev/null && [ ! -x /usr/sbin/conntrack ]; then
  echo "== installing conntrack (Debian package)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq conntrack >/dev/null
fi

# Debian's Chromium and Firefox ESR run the browser tests (headless, driven by
# playwright-core and puppeteer-core from npm; no browser is ever downloaded).
if ! command -v chromium >/dev/null || ! command -v firefox-esr >/dev/null; then
  echo "== installing chromium and firefox-esr (Debian packages)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium firefox-esr >/dev/null
fi

echo "== npm packages of the interop tests (pinned by interop/package-lock.json)"
(cd interop && npm ci --no-audit --no-fund --loglevel=error)

echo "== npm packages of the browser tests (pinned by web/package-lock.json)"
(cd web && PUPPETEER_SKIP_DOWNLOAD=1 PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
  npm ci --no-audit --no-fund --loglevel=error)

# A one-off build gains nothing from incremental caches, which double the target folder.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== cargo test"
cargo test --workspace

echo "== fuzz targets type-check"
(cd fuzz && cargo check --quiet --bins)
echo "== all tests passed"
