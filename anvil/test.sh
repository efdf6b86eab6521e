#!/usr/bin/env bash
# End-to-end check of the local-chain scripts: start anvil and deploy, check every contract has code and
# is wired, fork that chain and deploy on the fork, stop both. Prints "N passed, M failed".
set -uo pipefail
source "$(dirname "$0")/../tools/env.sh"
port=$((20000 + RANDOM % 20000)) fork_port=$((port + 1))
passed=0 failed=0
check() { if eval "$2"; then passed=$((passed + 1)); echo "ok   $1"; else failed=$((failed + 1)); echo "FAIL $1"; fi; }
cleanup() { "$QOR_ROOT/anvil/stop.sh" --port "$port" 2>/dev/null; "$QOR_ROOT/anvil/stop.sh" --port "$fork_port" 2>/dev/null; rm -f "$QOR_ROOT/anvil/deployments/fork-4242.json" "$QOR_ROOT/anvil/deployments/4242.json"; }
trap cleanup EXIT

addr() { python3 -c "import json,sys;print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
has_code() { [ "$(cast code "$1" --rpc-url "$2")" != "0x" ]; }

check "start.sh deploys on a fresh anvil" "'$QOR_ROOT/anvil/start.sh' --port $port --chain-id 4242 --detach >/dev/null"
dep="$QOR_ROOT/anvil/deployments/4242.json"
check "deployments/4242.json written" "[ -f '$dep' ]"
rpc="http://127.0.0.1:$port"
for c in jobEscrow providerRegistry verifierCommittee storageMarket; do
  check "$c has code" "has_code \$(addr '$dep' $c) $rpc"
done
check "registry bound to escrow" "[ \"\$(cast call \$(addr '$dep' providerRegistry) 'escrow()(address)' --rpc-url $rpc)\" = \"\$(addr '$dep' jobEscrow)\" ]"
check "registry bound to the storage market" "[ \"\$(cast call \$(addr '$dep' providerRegistry) 'storageMarket()(address)' --rpc-url $rpc)\" = \"\$(addr '$dep' storageMarket)\" ]"
timelock="$(addr "$dep" owner)"
owned_by_timelock() {
  for c in jobEscrow providerRegistry verifierCommittee storageMarket; do
    [ "$(cast call "$(addr "$dep" $c)" 'owner()(address)' --rpc-url "$rpc" | tr A-F a-f)" = "$(echo "$timelock" | tr A-F a-f)" ] || return 1
  done
}
check "outside the devnet a timelock owns all four contracts" "[ \"\$(addr '$dep' timelocked)\" = True ] && owned_by_timelock"
check "its delay outlasts a challenge window plus resolution" "[ \$(cast call $timelock 'getMinDelay()(uint256)' --rpc-url $rpc | cut -d' ' -f1) -gt 90000 ]"
check "the deployer key alone cannot add a committee member" "! cast send \$(addr '$dep' verifierCommittee) 'addMember(address)' 0x000000000000000000000000000000000000dEaD --private-key \$(cast wallet private-key --mnemonic \"\$QOR_MNEMONIC\" --mnemonic-index 0) --rpc-url $rpc >/dev/null 2>&1"
check "committee is account 1 of the mnemonic" "[ \"\$(cast call \$(addr '$dep' verifierCommittee) 'isMember(address)(bool)' \$(cast wallet address --mnemonic \"\$QOR_MNEMONIC\" --mnemonic-index 1) --rpc-url $rpc)\" = true ]"
check "a buyer can fund a job" "cast send \$(addr '$dep' jobEscrow) 'createComputeJob(bytes32,uint8,address,uint256,uint64,address)' 0x\$(printf '%064x' 1) 1 0x0000000000000000000000000000000000000000 1000 \$((\$(date +%s) + 3600)) 0x0000000000000000000000000000000000000000 --value 1000 --private-key \$(cast wallet private-key --mnemonic \"\$QOR_MNEMONIC\" --mnemonic-index 2) --rpc-url $rpc >/dev/null"
check "job 1 is open" "[ \"\$(cast call \$(addr '$dep' jobEscrow) 'computeJobStatus(uint256)(uint8)' 1 --rpc-url $rpc)\" = 1 ]"

check "fork.sh deploys on a fork of it" "'$QOR_ROOT/anvil/fork.sh' --fork-url $rpc --port $fork_port --detach >/dev/null"
fdep="$QOR_ROOT/anvil/deployments/fork-4242.json"
check "deployments/fork-4242.json written" "[ -f '$fdep' ]"
check "the fork sees the original job" "[ \"\$(cast call \$(addr '$dep' jobEscrow) 'computeJobStatus(uint256)(uint8)' 1 --rpc-url http://127.0.0.1:$fork_port)\" = 1 ]"
check "the fork's escrow is new" "has_code \$(addr '$fdep' jobEscrow) http://127.0.0.1:$fork_port && [ \"\$(addr '$fdep' jobEscrow)\" != \"\$(addr '$dep' jobEscrow)\" ]"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
