#!/usr/bin/env bash
# Starts anvil as a fork of a running chain and deploys the QOR contracts on the fork, for developers
# testing against a fork. Addresses go to anvil/deployments/fork-<chainId>.json, so a fork never
# overwrites the deployment of the chain it forks.
#
#   anvil/fork.sh --fork-url URL [--fork-block-number N] [--port 8546] [--detach]
set -euo pipefail
source "$(dirname "$0")/../tools/env.sh"

fork_url="" fork_block="" port=8546 detach=0
while [ $# -gt 0 ]; do
  case "$1" in
    --fork-url) fork_url="$2"; shift 2 ;;
    --fork-block-number) fork_block="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --detach) detach=1; shift ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "anvil/fork.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$fork_url" ] || { echo "anvil/fork.sh: --fork-url is required" >&2; exit 2; }

run_dir="$QOR_ROOT/anvil/run"
mkdir -p "$run_dir"
extra=()
[ -n "$fork_block" ] && extra+=(--fork-block-number "$fork_block")
anvil --host 127.0.0.1 --port "$port" --fork-url "$fork_url" --mnemonic "$QOR_MNEMONIC" \
  --accounts 20 --balance 10000 "${extra[@]}" >"$run_dir/anvil-$port.log" 2>&1 &
anvil_pid=$!
echo "$anvil_pid" >"$run_dir/anvil-$port.pid"
trap 'kill "$anvil_pid" 2>/dev/null || true' INT TERM

"$QOR_ROOT/anvil/deploy.sh" --rpc-url "http://127.0.0.1:$port" --name-prefix fork- || { kill "$anvil_pid"; exit 1; }

if [ "$detach" = 1 ]; then
  trap - INT TERM
  echo "fork of $fork_url running on http://127.0.0.1:$port (pid $anvil_pid)"
  exit 0
fi
echo "fork running on http://127.0.0.1:$port; Ctrl-C stops it"
wait "$anvil_pid"
