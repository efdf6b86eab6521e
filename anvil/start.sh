#!/usr/bin/env bash
# Starts a local anvil chain on 127.0.0.1 with the devnet mnemonic and deploys the QOR contracts with
# `forge script script/Deploy.s.sol --broadcast`; addresses go to anvil/deployments/<chainId>.json.
#
#   anvil/start.sh [--port 8545] [--chain-id 31337] [--block-time SECONDS] [--detach] [-- ANVIL-ARGS...]
#
# In the foreground it runs until Ctrl-C; with --detach it returns once deployed, leaving anvil running
# (pid in anvil/run/anvil-<port>.pid; stop it with anvil/stop.sh --port <port>).
set -euo pipefail
source "$(dirname "$0")/../tools/env.sh"

port=8545 chain_id=31337 block_time="" detach=0
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --chain-id) chain_id="$2"; shift 2 ;;
    --block-time) block_time="$2"; shift 2 ;;
    --detach) detach=1; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "anvil/start.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

run_dir="$QOR_ROOT/anvil/run"
mkdir -p "$run_dir"
extra=()
[ -n "$block_time" ] && extra+=(--block-time "$block_time")
extra+=("$@")
anvil --host 127.0.0.1 --port "$port" --chain-id "$chain_id" --mnemonic "$QOR_MNEMONIC" \
  --accounts 20 --balance 10000 "${extra[@]}" >"$run_dir/anvil-$port.log" 2>&1 &
anvil_pid=$!
echo "$anvil_pid" >"$run_dir/anvil-$port.pid"
trap 'kill "$anvil_pid" 2>/dev/null || true' INT TERM

"$QOR_ROOT/anvil/deploy.sh" --rpc-url "http://127.0.0.1:$port" || { kill "$anvil_pid"; exit 1; }

if [ "$detach" = 1 ]; then
  trap - INT TERM
  echo "anvil running on http://127.0.0.1:$port (pid $anvil_pid)"
  exit 0
fi
echo "anvil running on http://127.0.0.1:$port; Ctrl-C stops it"
wait "$anvil_pid"
