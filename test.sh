#!/usr/bin/env bash
# Runs every QOR test on a fresh machine: installs the pinned toolchain (and Debian's Chromium), builds
# the example WebAssembly jobs, then the Foundry suite (unit, fuzz, invariant; the `ci` profile: 5,000 fuzz runs, invariant depth 128) and
# the web app's checks and build, the Rust workspace tests (protocol, sandbox, coordinator against
# anvil), the benchmarks, the web app in headless Chromium against a devnet, and the local-chain
# script tests against anvil.
set -euo pipefail
cd "$(dirname "$0")"
root="$PWD"

# Toolchain: Foundry binaries, solcjs, forge-std and OpenZeppelin from the committed npm lockfile.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
# The web app's own lockfile: Vite, TypeScript, viem/wagmi, Vitest, playwright-core.
if [ ! -d web/node_modules ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
  npm ci --prefix web --no-audit --no-fund
fi
# Debian packages: procps (`kill`, for the devnet tests) and Chromium (the web app's browser test).
source tools/apt.sh
need_deb /bin/kill procps
need_deb /usr/bin/chromium chromium
source tools/env.sh

# Cargo's build cache lives outside the clone so a fresh CI clone does not rebuild every dependency.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/qor/target}"
# The example jobs (wasm32-wasip1) the sandbox tests run; byte-identical wherever the clone lives.
echo "== example jobs (wasm32-wasip1)"
rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
cargo build --release --locked --target wasm32-wasip1 --manifest-path examples/jobs/Cargo.toml \
  --target-dir "$root/examples/jobs/target"

# Contracts first: the coordinator's chain tests deploy them to anvil with the compiled artifacts.
echo "== forge test (profile ${FOUNDRY_PROFILE:=ci})"
(cd contracts && FOUNDRY_PROFILE="$FOUNDRY_PROFILE" forge test)

# The web app binds to the same ABI as the Rust side (checked against forge's artifacts), hashes as
# qor-protocol does (Vitest against its vectors), and is built into web/dist for the coordinator.
echo "== web app: ABI, types, unit tests, build"
node web/scripts/abi.mjs --check
npm --prefix web run -s build
npm --prefix web test -s

echo "== cargo fmt and clippy"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test (workspace)"
cargo test --workspace --locked

# The benchmarks are not tests, but running them keeps every figure bench/README.md quotes reproducible.
echo "== gas benchmarks"
bench/gas.sh
echo "== merkle and sandbox benchmarks"
cargo run --release --locked -q -p qor-bench --bin merkle
cargo run --release --locked -q -p qor-bench --bin sandbox
cargo run --release --locked -q -p qor-bench --bin coordinator
cargo run --release --locked -q -p qor-bench --bin worker
cargo run --release --locked -q -p qor-bench --bin verifier
cargo run --release --locked -q -p qor-bench --bin settle
echo "== end-to-end benchmark (qor devnet, release binaries)"
cargo build --release --locked -q --workspace --bins
cargo run --release --locked -q -p qor-bench --bin e2e

echo "== web app end to end (headless Chromium, a real devnet; screenshots in web/test-results)"
node web/e2e/run.mjs --qor "$CARGO_TARGET_DIR/release/qor"

echo "== anvil scripts"
anvil/test.sh
