#!/usr/bin/env bash
# Gas of the contracts' hot paths as `name value unit` lines: forge's gas snapshots (contracts/bench,
# isolated calls), then the same paths as real transactions on a fresh anvil: whole-transaction gas from
# the receipts, and execution gas (the receipt less the intrinsic cost, or from the opcode trace where
# the EIP-7623 calldata floor sets the price).
# Deployment: 2-of-3 committee, challenge window 0 (so finalize can follow settle at once).
set -euo pipefail
source "$(dirname "$0")/../tools/env.sh"
port=$((20000 + RANDOM % 20000))
chain_id=4343
cleanup() { "$QOR_ROOT/anvil/stop.sh" --port "$port" 2>/dev/null || true; rm -f "$QOR_ROOT/anvil/deployments/$chain_id.json"; }
trap cleanup EXIT

member() { cast wallet address --mnemonic "$QOR_MNEMONIC" --mnemonic-index "$1"; }
export QOR_COMMITTEE="$(member 1),$(member 6),$(member 7)" QOR_THRESHOLD=2 QOR_CHALLENGE_WINDOW=0
"$QOR_ROOT/anvil/start.sh" --port "$port" --chain-id "$chain_id" --detach -- --steps-tracing >/dev/null
export QOR_DEPLOYMENTS="$QOR_ROOT/anvil/deployments/$chain_id.json"

cd "$QOR_ROOT/contracts"
# Forge's gas snapshots (isolated calls: whole-transaction gas), committed in contracts/snapshots/.
FOUNDRY_PROFILE=bench forge test -q >/dev/null
python3 -c '
import json
for name, value in sorted(json.load(open("snapshots/GasSnapshots.json")).items()):
    print(f"forge_snapshot_{name} {value} gas")
'
forge script script/bench/GasBench.s.sol:GasBench --rpc-url "http://127.0.0.1:$port" --broadcast --slow -q >/dev/null
python3 - "broadcast/GasBench.s.sol/$chain_id/run-latest.json" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
receipts = {r["transactionHash"]: r for r in run["receipts"]}

def split(tx):
    """Whole-transaction gas from the receipt, and execution gas: that minus the intrinsic cost (21,000
    plus 4/16 gas per zero/non-zero calldata byte). Under EIP-7623 a transaction pays at least a floor
    of 21,000 + 10 gas per calldata token; when the floor binds there is no execution figure to derive."""
    r = receipts[tx["hash"]]
    assert int(r["status"], 16) == 1, f"benchmark transaction {tx['function']} reverted"
    data = bytes.fromhex(tx["transaction"]["input"][2:])
    zeros = data.count(0)
    nonzero = len(data) - zeros
    used = int(r["gasUsed"], 16)
    floor = 21000 + 10 * (zeros + 4 * nonzero)
    execution = used - 21000 - 4 * zeros - 16 * nonzero
    return used, (None if used == floor else execution)

by_fn = {}
for tx in run["transactions"]:
    name = (tx.get("function") or "transfer").split("(")[0]
    by_fn.setdefault(name, []).append(split(tx))
create, settle, final = by_fn["createComputeJob"], by_fn["settleComputeJobs"], by_fn["finalize"]
assert len(create) == 201 and len(settle) == 3 and len(final) == 3

print(f"create_compute_job_eth_tx {max(u for u, _ in create)} gas")
print(f"create_compute_job_eth_execution {max(e for _, e in create)} gas")
for label, i in (("first", 0), ("steady", 1)):
    (s_tx, s_ex), (f_tx, f_ex) = settle[i], final[i]
    print(f"settle_batch_100_{label}_tx {s_tx} gas")
    print(f"finalize_batch_100_{label}_tx {f_tx} gas")
    print(f"settle_finalize_per_job_batch_100_{label}_tx {(s_tx + f_tx) // 100} gas")
    print(f"settle_batch_100_{label}_execution {s_ex} gas")
    print(f"finalize_batch_100_{label}_execution {f_ex} gas")
    print(f"settle_finalize_per_job_batch_100_{label}_execution {(s_ex + f_ex) // 100} gas")
(s_tx, s_ex), (f_tx, f_ex) = settle[2], final[2]
print(f"settle_finalize_single_job_tx {s_tx + f_tx} gas")
print(f"settle_finalize_single_job_execution {s_ex + f_ex} gas")
proofs = [t for t in run["transactions"] if (t.get("function") or "").startswith("proveStorage")]
assert len(proofs) == 2
traces = []
for k, tx in zip((1, 4), proofs):
    p_tx, p_ex = split(tx)
    print(f"prove_storage_1gib_k{k}_tx {p_tx} gas")
    if p_ex is not None:
        print(f"prove_storage_1gib_k{k}_execution {p_ex} gas")
    else:
        # At the floor the receipt hides execution; the opcode trace has it (gas at the first step minus
        # gas left after the last, i.e. before refunds).
        traces.append(f"{k} {tx['hash']}")
open("/tmp/qor-prove-txs", "w").write("".join(t + "\n" for t in traces))
PY
while read -r k hash; do
  [ -n "$hash" ] || continue
  cast rpc debug_traceTransaction "$hash" '{"disableStorage":true,"disableMemory":true,"disableStack":true}' \
    --rpc-url "http://127.0.0.1:$port" | python3 -c '
import json, sys
logs = json.load(sys.stdin)["structLogs"]
first, last = logs[0], logs[-1]
print(f"prove_storage_1gib_k{sys.argv[1]}_execution", first["gas"] - (last["gas"] - last["gasCost"]), "gas")
' "$k"
done < /tmp/qor-prove-txs
rm -f /tmp/qor-prove-txs
