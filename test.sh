#!/usr/bin/env bash
# Runs every QOR test on a fresh machine: installs the pinned toolchain, then the Foundry suite (unit,
# fuzz, invariant; the `ci` profile: 5,000 fuzz runs) and the local-chain script tests against anvil.
set -euo pipefail
cd "$(dirname "$0")"
root="$PWD"

# Toolchain: Foundry binaries, solcjs, forge-std and OpenZeppelin from the committed npm lockfile.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
source tools/env.sh

echo "== forge test (profile ${FOUNDRY_PROFILE:=ci})"
(cd contracts && FOUNDRY_PROFILE="$FOUNDRY_PROFILE" forge test)

echo "== anvil scripts"
anvil/test.sh
