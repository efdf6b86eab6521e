#!/usr/bin/env bash
# The whole QOR market on this machine, with the guided demo: installs the pinned toolchain (npm ci),
# builds the web app (web/dist, which the coordinator serves), the example jobs and the binaries
# (release), then runs `qor devnet --demo`. Anything after
# the script's name goes to `qor devnet` (e.g. `./devnet.sh --workers 4 --verifiers 3`, or `--exit`
# to stop after the demo). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")"
source tools/apt.sh
need_deb /bin/kill procps # `qor devnet` signals its children with kill
[ -x node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil ] || npm ci --no-audit --no-fund
if [ ! -d web/node_modules ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
  npm ci --prefix web --no-audit --no-fund
fi
npm --prefix web run -s build >/dev/null
rustup target add wasm32-wasip1 >/dev/null 2>&1 || true
cargo build --release --locked -q --target wasm32-wasip1 --manifest-path examples/jobs/Cargo.toml --target-dir examples/jobs/target
cargo build --release --locked -q -p qor-cli -p qor-coordinator -p qor-worker -p qor-verifier
target_dir="${CARGO_TARGET_DIR:-target}"
exec "$target_dir/release/qor" devnet --demo "$@"
