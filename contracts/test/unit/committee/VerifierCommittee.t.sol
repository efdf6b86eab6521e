// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Base} from "../../utils/Base.t.sol";
import {IVerifierCommittee} from "../../../src/interfaces/IVerifierCommittee.sol";
import {VerifierCommittee} from "../../../src/VerifierCommittee.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

contract CheckSignatures_Unit is Base {
    bytes32 internal digest = keccak256("digest");

    function test_AcceptsThresholdOfMembers() public view {
        committee.checkSignatures(digest, committeeSign(digest, 2));
        committee.checkSignatures(digest, committeeSign(digest, 3));
    }

    function test_RevertWhen_TooFew() public {
        bytes[] memory sigs = committeeSign(digest, 1);
        vm.expectRevert(abi.encodeWithSelector(IVerifierCommittee.VerifierCommittee_NotEnoughSignatures.selector, 1, 2));
        committee.checkSignatures(digest, sigs);
    }

    function test_RevertWhen_SameMemberTwice() public {
        bytes[] memory sigs = new bytes[](2);
        sigs[0] = signWith(memberKeys[0], digest);
        sigs[1] = signWith(memberKeys[0], digest);
        address m = vm.addr(memberKeys[0]);
        vm.expectRevert(
            abi.encodeWithSelector(IVerifierCommittee.VerifierCommittee_SignersNotAscending.selector, 1, m, m)
        );
        committee.checkSignatures(digest, sigs);
    }

    function test_RevertWhen_NotAscending() public {
        bytes[] memory sigs = new bytes[](2);
        sigs[0] = signWith(memberKeys[1], digest);
        sigs[1] = signWith(memberKeys[0], digest);
        vm.expectRevert(
            abi.encodeWithSelector(
                IVerifierCommittee.VerifierCommittee_SignersNotAscending.selector,
                1,
                vm.addr(memberKeys[0]),
                vm.addr(memberKeys[1])
            )
        );
        committee.checkSignatures(digest, sigs);
    }

    function test_RevertWhen_SignerNotMember() public {
        uint256 outsider = 0xBAD;
        bytes[] memory sigs = new bytes[](2);
        sigs[0] = signWith(memberKeys[0], digest);
        sigs[1] = signWith(outsider, digest);
        if (vm.addr(outsider) < vm.addr(memberKeys[0])) (sigs[0], sigs[1]) = (sigs[1], sigs[0]);
        vm.expectRevert();
        committee.checkSignatures(digest, sigs);
    }

    function test_RevertWhen_Malformed() public {
        bytes[] memory sigs = new bytes[](2);
        sigs[0] = signWith(memberKeys[0], digest);
        sigs[1] = hex"1234";
        vm.expectRevert(abi.encodeWithSelector(IVerifierCommittee.VerifierCommittee_InvalidSignature.selector, 1));
        committee.checkSignatures(digest, sigs);
    }

    function test_RevertWhen_HighS() public {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(memberKeys[0], digest);
        uint256 n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
        bytes[] memory sigs = new bytes[](2);
        sigs[0] = abi.encodePacked(r, bytes32(n - uint256(s)), v == 27 ? uint8(28) : uint8(27));
        sigs[1] = signWith(memberKeys[1], digest);
        vm.expectRevert(abi.encodeWithSelector(IVerifierCommittee.VerifierCommittee_InvalidSignature.selector, 0));
        committee.checkSignatures(digest, sigs);
    }
}

contract CommitteeMembers_Unit is Base {
    function test_RevertWhen_NotOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        vm.prank(stranger);
        committee.addMember(stranger);
    }

    function test_RevertWhen_AddZero() public {
        vm.expectRevert(IVerifierCommittee.VerifierCommittee_ZeroAddress.selector);
        vm.prank(owner);
        committee.addMember(address(0));
    }

    function test_RevertWhen_AddTwice() public {
        address m = vm.addr(memberKeys[0]);
        vm.expectRevert(abi.encodeWithSelector(IVerifierCommittee.VerifierCommittee_AlreadyMember.selector, m));
        vm.prank(owner);
        committee.addMember(m);
    }

    function test_RevertWhen_RemoveNonMember() public {
        vm.expectRevert(abi.encodeWithSelector(IVerifierCommittee.VerifierCommittee_NotMember.selector, stranger));
        vm.prank(owner);
        committee.removeMember(stranger);
    }

    function test_RevertWhen_RemovalBreaksThreshold() public {
        vm.startPrank(owner);
        committee.setThreshold(3);
        vm.expectRevert(abi.encodeWithSelector(IVerifierCommittee.VerifierCommittee_InvalidThreshold.selector, 3, 2));
        committee.removeMember(vm.addr(memberKeys[0]));
        vm.stopPrank();
    }

    function test_RevertWhen_ThresholdZeroOrAboveMembers() public {
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(IVerifierCommittee.VerifierCommittee_InvalidThreshold.selector, 0, 3));
        committee.setThreshold(0);
        vm.expectRevert(abi.encodeWithSelector(IVerifierCommittee.VerifierCommittee_InvalidThreshold.selector, 4, 3));
        committee.setThreshold(4);
        vm.stopPrank();
    }

    function test_RemovedMemberCannotSign() public {
        address m = vm.addr(memberKeys[0]);
        vm.prank(owner);
        committee.removeMember(m);
        assertFalse(committee.isMember(m));
        assertEq(committee.members().length, 2);
        bytes32 digest = keccak256("x");
        bytes[] memory sigs = committeeSign(digest, 2);
        vm.expectRevert(
            abi.encodeWithSelector(IVerifierCommittee.VerifierCommittee_SignerNotMember.selector, 0, m)
        );
        committee.checkSignatures(digest, sigs);
    }

    function test_RevertWhen_ConstructedWithBadThreshold() public {
        address[] memory none = new address[](0);
        vm.expectRevert(abi.encodeWithSelector(IVerifierCommittee.VerifierCommittee_InvalidThreshold.selector, 1, 0));
        new VerifierCommittee(owner, none, 1);
    }
}
