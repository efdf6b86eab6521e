#!/usr/bin/env bash
# Waits for an RPC endpoint, then deploys the QOR contracts there with forge script.
#   anvil/deploy.sh --rpc-url URL [--name-prefix PREFIX]
# Deployer: QOR_DEPLOYER_KEY, or account 0 of the devnet mnemonic. Committee: QOR_COMMITTEE, or
# account 1 of the mnemonic with threshold 1.
set -euo pipefail
source "$(dirname "$0")/../tools/env.sh"

rpc="" prefix=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rpc-url) rpc="$2"; shift 2 ;;
    --name-prefix) prefix="$2"; shift 2 ;;
    *) echo "anvil/deploy.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ -n "$rpc" ] || { echo "anvil/deploy.sh: --rpc-url is required" >&2; exit 2; }

for _ in $(seq 1 100); do
  cast chain-id --rpc-url "$rpc" >/dev/null 2>&1 && break
  sleep 0.1
done
chain_id="$(cast chain-id --rpc-url "$rpc")" || { echo "anvil/deploy.sh: no chain answers at $rpc" >&2; exit 1; }

export QOR_DEPLOYER_KEY="${QOR_DEPLOYER_KEY:-$(cast wallet private-key --mnemonic "$QOR_MNEMONIC" --mnemonic-index 0)}"
export QOR_COMMITTEE="${QOR_COMMITTEE:-$(cast wallet address --mnemonic "$QOR_MNEMONIC" --mnemonic-index 1)}"
export QOR_DEPLOYMENTS="$QOR_ROOT/anvil/deployments/${prefix}${chain_id}.json"
mkdir -p "$QOR_ROOT/anvil/deployments"
cd "$QOR_ROOT/contracts"
forge script script/Deploy.s.sol:Deploy --rpc-url "$rpc" --broadcast --slow -q >/dev/null
echo "deployed on chain $chain_id: $QOR_DEPLOYMENTS"
cat "$QOR_DEPLOYMENTS"
