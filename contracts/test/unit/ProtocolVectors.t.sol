// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Base} from "../utils/Base.t.sol";
import {IJobEscrow} from "../../src/interfaces/IJobEscrow.sol";
import {IStorageMarket} from "../../src/interfaces/IStorageMarket.sol";
import {JobEscrow} from "../../src/JobEscrow.sol";

/// @notice The vectors in `test/data/protocol.json` are written by the Rust `qor-protocol` crate. The
/// escrow's and the storage market's own hashing must produce every EIP-712 digest in them, so what the
/// Rust verifier signs is what the contracts check. Their code is placed at the vectors' addresses;
/// OpenZeppelin's EIP712 rebuilds each domain for its address.
contract ProtocolVectors_Unit is Base {
    string internal json;
    IJobEscrow internal atVector;
    IStorageMarket internal marketAtVector;

    function setUp() public override {
        super.setUp();
        json = vm.readFile(string.concat(vm.projectRoot(), "/test/data/protocol.json"));
        vm.chainId(vm.parseJsonUint(json, ".chainId"));
        address at = vm.parseJsonAddress(json, ".escrow");
        vm.etch(at, address(escrow).code);
        atVector = IJobEscrow(at);
        address marketAt = vm.parseJsonAddress(json, ".storageMarket");
        vm.etch(marketAt, address(market).code);
        marketAtVector = IStorageMarket(marketAt);
    }

    function test_SettlementBatchDigest() public view {
        address[] memory ps = vm.parseJsonAddressArray(json, ".settlementBatch.providers");
        uint256[] memory ids = vm.parseJsonUintArray(json, ".settlementBatch.jobIds");
        bytes32[] memory digests = vm.parseJsonBytes32Array(json, ".settlementBatch.resultDigests");
        uint256[] memory prices = vm.parseJsonUintArray(json, ".settlementBatch.prices");
        uint256[] memory winners = vm.parseJsonUintArray(json, ".settlementBatch.winners");
        uint256[] memory losers = vm.parseJsonUintArray(json, ".settlementBatch.losers");
        bytes32[] memory structHashes = vm.parseJsonBytes32Array(json, ".settlementBatch.settlementHashes");
        IJobEscrow.Settlement[] memory list = new IJobEscrow.Settlement[](ids.length);
        for (uint256 i; i < ids.length; ++i) {
            list[i] = IJobEscrow.Settlement(ids[i], digests[i], prices[i], winners[i], losers[i]);
            assertEq(atVector.hashSettlement(list[i]), structHashes[i], "settlement struct hash");
        }
        IJobEscrow.SettlementBatch memory b = IJobEscrow.SettlementBatch({
            token: vm.parseJsonAddress(json, ".settlementBatch.token"),
            providers: ps,
            settlements: list,
            validUntil: uint64(vm.parseJsonUint(json, ".settlementBatch.validUntil"))
        });
        assertEq(atVector.hashSettlementBatch(b), vm.parseJsonBytes32(json, ".settlementBatch.digest"));
    }

    function test_ChallengeResolutionDigest() public view {
        assertEq(
            atVector.hashChallengeResolution(vm.parseJsonUint(json, ".challengeResolution.jobId"), true),
            vm.parseJsonBytes32(json, ".challengeResolution.digest")
        );
    }

    /// The chunks a period challenges, as the worker and the verifier derive them (the market's own
    /// derivation is checked against the same formula in StorageMarket.t.sol).
    function test_StorageChallengeIndexes() public view {
        bytes32 seed = vm.parseJsonBytes32(json, ".storageChallenge.seed");
        uint256 dealId = vm.parseJsonUint(json, ".storageChallenge.dealId");
        uint256 period = vm.parseJsonUint(json, ".storageChallenge.period");
        uint256 chunks = vm.parseJsonUint(json, ".storageChallenge.chunks");
        uint256[] memory indexes = vm.parseJsonUintArray(json, ".storageChallenge.indexes");
        assertEq(indexes.length, 4);
        for (uint256 j; j < indexes.length; ++j) {
            assertEq(indexes[j], uint256(keccak256(abi.encode(seed, dealId, period, j))) % chunks);
        }
    }

    function test_StorageAttestationsDigest() public view {
        uint256[] memory deals = vm.parseJsonUintArray(json, ".storageAttestations.dealIds");
        address[] memory ps = vm.parseJsonAddressArray(json, ".storageAttestations.providers");
        uint256[] memory periods = vm.parseJsonUintArray(json, ".storageAttestations.periods");
        IStorageMarket.StorageAttestation[] memory a = new IStorageMarket.StorageAttestation[](deals.length);
        for (uint256 i; i < deals.length; ++i) {
            a[i] = IStorageMarket.StorageAttestation(deals[i], ps[i], periods[i]);
        }
        uint64 validUntil = uint64(vm.parseJsonUint(json, ".storageAttestations.validUntil"));
        assertEq(
            marketAtVector.hashStorageAttestations(a, validUntil), vm.parseJsonBytes32(json, ".storageAttestations.digest")
        );
    }

    /// The escrow does not hash receipts (the verifier checks them off chain), so the Solidity side
    /// rebuilds the digest from the typehash under the escrow's domain and recovers the Rust signature.
    function test_ReceiptDigestAndSignature() public view {
        bytes32 domain = domainSeparatorOf(address(atVector));
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(
                    "Receipt(uint256 jobId,bytes32 specHash,address worker,bytes32 resultDigest,bytes32 stdoutHash,uint32 exitCode,uint64 fuelUsed)"
                ),
                vm.parseJsonUint(json, ".receipt.jobId"),
                vm.parseJsonBytes32(json, ".receipt.specHash"),
                vm.parseJsonAddress(json, ".receipt.worker"),
                vm.parseJsonBytes32(json, ".receipt.resultDigest"),
                vm.parseJsonBytes32(json, ".receipt.stdoutHash"),
                uint32(vm.parseJsonUint(json, ".receipt.exitCode")),
                uint64(vm.parseJsonUint(json, ".receipt.fuelUsed"))
            )
        );
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", domain, structHash));
        assertEq(digest, vm.parseJsonBytes32(json, ".receipt.digest"));
        bytes memory sig = vm.parseJsonBytes(json, ".receipt.signature");
        (bytes32 r, bytes32 s) = abi.decode(abi.encodePacked(_slice(sig, 0), _slice(sig, 32)), (bytes32, bytes32));
        assertEq(ecrecover(digest, uint8(sig[64]), r, s), vm.parseJsonAddress(json, ".receipt.worker"));
    }

    /// A replica counts as a loser only on evidence it signed: its lease acceptance and its seal, both
    /// EIP-712 under the escrow's domain (checked off chain by the verifier, like receipts).
    function test_LeaseAcceptanceAndSealCommitmentDigests() public view {
        bytes32 domain = domainSeparatorOf(address(atVector));
        bytes32 acceptance = keccak256(
            abi.encode(
                keccak256("LeaseAcceptance(uint256 jobId,bytes32 specHash,address worker)"),
                vm.parseJsonUint(json, ".receipt.jobId"),
                vm.parseJsonBytes32(json, ".receipt.specHash"),
                vm.parseJsonAddress(json, ".receipt.worker")
            )
        );
        assertEq(
            keccak256(abi.encodePacked("\x19\x01", domain, acceptance)), vm.parseJsonBytes32(json, ".leaseAcceptance.digest")
        );
        bytes32 commitment = keccak256(
            abi.encode(
                keccak256("SealCommitment(uint256 jobId,bytes32 specHash,address worker,bytes32 seal)"),
                vm.parseJsonUint(json, ".receipt.jobId"),
                vm.parseJsonBytes32(json, ".receipt.specHash"),
                vm.parseJsonAddress(json, ".receipt.worker"),
                vm.parseJsonBytes32(json, ".seal")
            )
        );
        assertEq(
            keccak256(abi.encodePacked("\x19\x01", domain, commitment)), vm.parseJsonBytes32(json, ".sealCommitment.digest")
        );
    }

    function test_SealAndSpecHash() public view {
        bytes32 expectedSeal = keccak256(
            abi.encode(
                vm.parseJsonAddress(json, ".receipt.worker"),
                vm.parseJsonUint(json, ".receipt.jobId"),
                vm.parseJsonBytes32(json, ".receipt.resultDigest")
            )
        );
        assertEq(expectedSeal, vm.parseJsonBytes32(json, ".seal"));
        assertEq(keccak256(bytes(vm.parseJsonString(json, ".spec.canonical"))), vm.parseJsonBytes32(json, ".spec.specHash"));
        assertEq(keccak256(vm.parseJsonBytes(json, ".result.stdout")), vm.parseJsonBytes32(json, ".result.stdoutHash"));
    }

    function _slice(bytes memory b, uint256 from) internal pure returns (bytes32 word) {
        assembly {
            word := mload(add(add(b, 0x20), from))
        }
    }
}
