// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Base} from "../../utils/Base.t.sol";
import {IJobEscrow} from "../../../src/interfaces/IJobEscrow.sol";
import {IStorageMarket} from "../../../src/interfaces/IStorageMarket.sol";
import {JobEscrow} from "../../../src/JobEscrow.sol";
import {ProviderRegistry} from "../../../src/ProviderRegistry.sol";
import {IVerifierCommittee} from "../../../src/interfaces/IVerifierCommittee.sol";

/// @notice Committee signatures bind the chain id, the escrow address, the jobs and the verdict: none can
/// be replayed elsewhere.
contract Replay_Unit is Base {
    function _signed(uint256 jobId, uint256 price)
        internal
        view
        returns (IJobEscrow.SettlementBatch memory b, bytes[] memory sigs)
    {
        b = batchOf(address(0), one(verdict(jobId, price, 3, 3)));
        sigs = committeeSign(escrow.hashSettlementBatch(b), 2);
    }

    function test_RevertWhen_BatchReplayedForAnotherJob() public {
        (uint256 a, IJobEscrow.ComputeJob memory ja) = createEthJob(1 ether);
        (uint256 b, IJobEscrow.ComputeJob memory jb) = createEthJob(1 ether);
        (IJobEscrow.SettlementBatch memory batch, bytes[] memory sigs) = _signed(a, 0.5 ether);
        escrow.settleComputeJobs(batch, one(ja), sigs);
        batch.settlements[0].jobId = b;
        vm.expectRevert(); // the signatures now recover to non-members
        escrow.settleComputeJobs(batch, one(jb), sigs);
        assertEq(uint8(escrow.computeJobStatus(b)), uint8(IJobEscrow.ComputeJobStatus.Open));
    }

    function test_RevertWhen_SignaturesReplayedOnAnotherChain() public {
        (uint256 a, IJobEscrow.ComputeJob memory ja) = createEthJob(1 ether);
        (IJobEscrow.SettlementBatch memory batch, bytes[] memory sigs) = _signed(a, 0.5 ether);
        bytes32 signedDigest = escrow.hashSettlementBatch(batch);
        vm.chainId(block.chainid + 1);
        assertTrue(escrow.hashSettlementBatch(batch) != signedDigest, "the domain follows the chain id");
        vm.expectRevert();
        escrow.settleComputeJobs(batch, one(ja), sigs);
    }

    function test_RevertWhen_SignaturesReplayedOnAnotherEscrow() public {
        JobEscrow other = new JobEscrow(owner, registry, committee, defaultParams());
        (uint256 a, IJobEscrow.ComputeJob memory ja) = createEthJob(1 ether);
        vm.prank(buyer);
        other.createComputeJob{value: 1 ether}(ja.specHash, 3, address(0), 1 ether, ja.deadline, address(0));
        (IJobEscrow.SettlementBatch memory batch, bytes[] memory sigs) = _signed(a, 0.5 ether);
        assertTrue(other.hashSettlementBatch(batch) != escrow.hashSettlementBatch(batch));
        vm.expectRevert();
        other.settleComputeJobs(batch, one(ja), sigs);
    }

    function test_ResolutionDigestBindsJobAndVerdict() public view {
        bytes32 forOne = escrow.hashChallengeResolution(1, true);
        assertTrue(forOne != escrow.hashChallengeResolution(2, true));
        assertTrue(forOne != escrow.hashChallengeResolution(1, false));
    }

    function test_AttestationDigestBindsDealProviderPeriodsAndExpiry() public view {
        IStorageMarket.StorageAttestation[] memory a = new IStorageMarket.StorageAttestation[](1);
        a[0] = IStorageMarket.StorageAttestation(1, providers[0], 1);
        bytes32 h1 = market.hashStorageAttestations(a, 100);
        assertTrue(h1 != market.hashStorageAttestations(a, 101), "expiry");
        a[0].dealId = 2;
        assertTrue(h1 != market.hashStorageAttestations(a, 100), "deal");
        a[0].dealId = 1;
        a[0].provider = providers[1];
        assertTrue(h1 != market.hashStorageAttestations(a, 100), "provider");
        a[0].provider = providers[0];
        a[0].periods = 2;
        assertTrue(h1 != market.hashStorageAttestations(a, 100), "periods");
        (, string memory name, string memory version,,,,) = market.eip712Domain();
        assertEq(name, "QOR StorageMarket");
        assertEq(version, "1");
    }

    function test_DigestsFollowEip712() public view {
        // Recompute independently of the contract's assembly: the Rust side must produce these bytes.
        (, string memory name, string memory version,,,,) = escrow.eip712Domain();
        assertEq(name, "QOR JobEscrow");
        assertEq(version, "1");
        bytes32 domain = domainSeparatorOf(address(escrow));
        IJobEscrow.Settlement memory s = verdict(7, 5, 2, 3);
        bytes32 sHash = keccak256(
            abi.encode(
                keccak256("Settlement(uint256 jobId,bytes32 resultDigest,uint256 price,uint256 winners,uint256 losers)"),
                s.jobId,
                s.resultDigest,
                s.price,
                s.winners,
                s.losers
            )
        );
        assertEq(escrow.hashSettlement(s), sHash);
        IJobEscrow.SettlementBatch memory b = batchOf(address(0), one(s));
        bytes32 batchHash = keccak256(
            abi.encode(
                keccak256(
                    "SettlementBatch(address token,address[] providers,Settlement[] settlements,uint64 validUntil)Settlement(uint256 jobId,bytes32 resultDigest,uint256 price,uint256 winners,uint256 losers)"
                ),
                address(0),
                keccak256(abi.encode(providers[0], providers[1], providers[2])),
                keccak256(abi.encode(sHash)),
                b.validUntil
            )
        );
        assertEq(escrow.hashSettlementBatch(b), keccak256(abi.encodePacked("\x19\x01", domain, batchHash)));

    }
}
