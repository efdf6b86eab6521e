//! The compute verdict from signed evidence: honest replicas settle; a liar loses to the majority; a
//! tie escalates and, at the cap, refunds; a missed reveal the replica signed for is a loss; and
//! whatever a coordinator invents or forges about a replica (a lapse, a seal, a receipt) costs its
//! provider nothing: no pay, no slash, not a vote.

use alloy_primitives::{Address, B256, U256, keccak256};
use qor_protocol::bindings::IJobEscrow::Receipt;
use qor_protocol::eip712::{LeaseAcceptance, SealCommitment, Signer, escrow_domain, seal};
use qor_verifier::judge::{Decision, Job, Rejection, Replica, SignedReceipt, Standing, judge, judge_with};

const JOB: u64 = 42;

fn key(i: u8) -> Signer {
    Signer::from_bytes(&keccak256([b'v', i])).unwrap()
}

fn domain() -> alloy_sol_types::Eip712Domain {
    escrow_domain(31337, Address::repeat_byte(0xe5))
}

fn spec() -> B256 {
    keccak256(b"the funded spec")
}

fn job(redundancy: u8) -> Job {
    Job { id: U256::from(JOB), spec_hash: spec(), redundancy }
}

fn receipt(worker: Address, job: u64, digest: B256) -> Receipt {
    Receipt {
        jobId: U256::from(job),
        specHash: spec(),
        worker,
        resultDigest: digest,
        stdoutHash: keccak256(b"out"),
        exitCode: 0,
        fuelUsed: 777,
    }
}

/// What an honest replica of `JOB` signs when it computed `digest`: its acceptance, its seal, its
/// receipt.
fn honest(signer: &Signer, digest: B256) -> Replica {
    let (job_id, me) = (U256::from(JOB), signer.address());
    let r = receipt(me, JOB, digest);
    let signature = signer.sign_receipt(&r, &domain()).unwrap();
    let committed = seal(me, job_id, digest);
    Replica {
        provider: me,
        acceptance: Some(signer.sign_typed(&LeaseAcceptance { jobId: job_id, specHash: spec(), worker: me }, &domain()).unwrap()),
        seal: Some((
            committed,
            signer.sign_typed(&SealCommitment { jobId: job_id, specHash: spec(), worker: me, seal: committed }, &domain()).unwrap(),
        )),
        receipt: Some(SignedReceipt { receipt: r, signature }),
        registered: true,
    }
}

fn addresses(ids: &[u8]) -> Vec<Address> {
    ids.iter().map(|i| key(*i).address()).collect()
}

#[test]
fn three_honest_replicas_settle_unanimously() {
    let d = keccak256(b"answer");
    let replicas = [honest(&key(1), d), honest(&key(2), d), honest(&key(3), d)];
    let v = judge(&job(3), &domain(), &replicas, 3, 5);
    assert_eq!(v.decision, Decision::Settle { result_digest: d, winners: addresses(&[1, 2, 3]), losers: vec![] });
    assert!(v.checks.iter().all(|c| c.result == Ok(d) && c.standing == Standing::Vote(d)));
}

#[test]
fn a_liar_loses_to_the_majority() {
    let (good, bad) = (keccak256(b"answer"), keccak256(b"made up"));
    let replicas = [honest(&key(1), good), honest(&key(2), bad), honest(&key(3), good)];
    let v = judge(&job(3), &domain(), &replicas, 3, 5);
    assert_eq!(v.decision, Decision::Settle { result_digest: good, winners: addresses(&[1, 3]), losers: addresses(&[2]) });
}

#[test]
fn a_tie_escalates_and_at_the_cap_refunds() {
    let (a, b) = (keccak256(b"a"), keccak256(b"b"));
    let two = [honest(&key(1), a), honest(&key(2), b)];
    assert_eq!(judge(&job(2), &domain(), &two, 2, 5).decision, Decision::Escalate { replicas: 4 });
    assert_eq!(judge(&job(2), &domain(), &two, 2, 3).decision, Decision::Escalate { replicas: 3 });
    assert_eq!(judge(&job(2), &domain(), &two, 2, 2).decision, Decision::Refund);
    // Three ways apart at the cap: no majority, refund.
    let three = [honest(&key(1), a), honest(&key(2), b), honest(&key(3), keccak256(b"c"))];
    assert_eq!(judge(&job(3), &domain(), &three, 3, 3).decision, Decision::Refund);
}

#[test]
fn a_missed_reveal_the_replica_signed_for_is_a_loss_and_silence_makes_no_majority() {
    let d = keccak256(b"answer");
    let mut silent = honest(&key(3), d);
    silent.receipt = None;
    let replicas = [honest(&key(1), d), honest(&key(2), d), silent];
    let v = judge(&job(3), &domain(), &replicas, 3, 5);
    assert_eq!(v.decision, Decision::Settle { result_digest: d, winners: addresses(&[1, 2]), losers: addresses(&[3]) });
    assert_eq!(v.checks[2].result, Err(Rejection::NotRevealed));
    assert_eq!(v.checks[2].standing, Standing::Fault(Rejection::NotRevealed));

    // One answer out of three is not a majority of the replicas, whatever the others did.
    let mut quiet = honest(&key(2), d);
    quiet.receipt = None;
    let mut quieter = honest(&key(3), d);
    quieter.receipt = None;
    let v = judge(&job(3), &domain(), &[honest(&key(1), d), quiet, quieter], 3, 5);
    assert_eq!(v.decision, Decision::Escalate { replicas: 5 });
}

/// The coordinator lists a replica its provider never took: "lapsed", with any seal, or even a seal
/// signature made by another key. Before, it was judged a missed reveal and its provider slashed.
#[test]
fn an_invented_replica_did_not_run_and_is_neither_paid_nor_slashed() {
    let d = keccak256(b"answer");
    let innocent = key(4).address();
    let invented = Replica {
        provider: innocent,
        acceptance: None,
        seal: Some((keccak256(b"any seal"), honest(&key(9), d).seal.unwrap().1)),
        receipt: None,
        registered: true,
    };
    // A seal it never signed, with an acceptance it never signed either (both by another key).
    let forged_both = Replica { provider: innocent, acceptance: honest(&key(9), d).acceptance, ..invented.clone() };
    for framed in [invented, forged_both] {
        let v = judge(&job(3), &domain(), &[honest(&key(1), d), honest(&key(2), d), honest(&key(3), d), framed], 3, 5);
        assert_eq!(v.checks[3].standing, Standing::DidNotRun(Rejection::NotRevealed), "{:?}", v.checks[3]);
        assert_eq!(v.decision, Decision::Settle { result_digest: d, winners: addresses(&[1, 2, 3]), losers: vec![] });
    }
}

/// A provider that took the lease and never sealed failed, but signed nothing a slash could rest on.
#[test]
fn an_accepted_lease_that_was_never_sealed_costs_no_stake() {
    let d = keccak256(b"answer");
    let mut mute = honest(&key(3), d);
    mute.seal = None;
    mute.receipt = None;
    let v = judge(&job(3), &domain(), &[honest(&key(1), d), honest(&key(2), d), mute], 3, 5);
    assert_eq!(v.checks[2].standing, Standing::DidNotRun(Rejection::NotRevealed));
    assert_eq!(v.decision, Decision::Settle { result_digest: d, winners: addresses(&[1, 2]), losers: vec![] });
}

/// Hiding replicas cannot turn a minority into a majority: it is of no fewer than the replicas the
/// job was funded with.
#[test]
fn a_majority_is_never_of_fewer_than_the_funded_replicas() {
    let (good, bad) = (keccak256(b"answer"), keccak256(b"made up"));
    // Only the liar is listed (two honest replicas hidden): 1 of 3 is no majority.
    let v = judge(&job(3), &domain(), &[honest(&key(2), bad)], 3, 3);
    assert_eq!(v.decision, Decision::Refund);
    let v = judge(&job(3), &domain(), &[honest(&key(2), bad)], 3, 5);
    assert_eq!(v.decision, Decision::Escalate { replicas: 5 });
    // Two of three do settle.
    let v = judge(&job(3), &domain(), &[honest(&key(1), good), honest(&key(2), good)], 3, 5);
    assert!(matches!(v.decision, Decision::Settle { result_digest, .. } if result_digest == good));
}

#[test]
fn forged_foreign_and_replayed_receipts_did_not_run_and_contradictions_are_faults() {
    let d = keccak256(b"answer");
    let job_id = U256::from(JOB);

    // Forged: the receipt names the provider but another key signed it.
    let mut forged = honest(&key(1), d);
    forged.receipt.as_mut().unwrap().signature = key(9).sign_receipt(&receipt(key(1).address(), JOB, d), &domain()).unwrap();
    // Signed by a key that is not the assigned provider's (it names itself as the worker).
    let mut foreign = honest(&key(9), d);
    foreign.provider = key(2).address();
    // Replayed: a valid receipt of another job.
    let mut replayed = honest(&key(3), d);
    let other = receipt(key(3).address(), JOB + 1, d);
    replayed.receipt = Some(SignedReceipt { signature: key(3).sign_receipt(&other, &domain()).unwrap(), receipt: other });
    // Under another escrow's domain.
    let mut cross_chain = honest(&key(4), d);
    let r = receipt(key(4).address(), JOB, d);
    cross_chain.receipt =
        Some(SignedReceipt { signature: key(4).sign_receipt(&r, &escrow_domain(1, Address::repeat_byte(0xe5))).unwrap(), receipt: r });
    // For another spec than the one funded (a coordinator that served another program).
    let mut other_spec = honest(&key(8), d);
    let r = Receipt { specHash: keccak256(b"another program"), ..receipt(key(8).address(), JOB, d) };
    other_spec.receipt = Some(SignedReceipt { signature: key(8).sign_receipt(&r, &domain()).unwrap(), receipt: r });
    // Opens a different seal than the one it signed (it committed to another digest): a fault.
    let mut switched = honest(&key(5), d);
    let first = seal(key(5).address(), job_id, keccak256(b"first answer"));
    let commitment = SealCommitment { jobId: job_id, specHash: spec(), worker: key(5).address(), seal: first };
    switched.seal = Some((first, key(5).sign_typed(&commitment, &domain()).unwrap()));
    // Revealed without a signed seal.
    let mut unsealed = honest(&key(6), d);
    unsealed.seal = None;

    let replicas = [forged, foreign, replayed, cross_chain, switched, unsealed, honest(&key(7), d), other_spec];
    let v = judge(&job(3), &domain(), &replicas, 8, 9);
    assert!(matches!(v.checks[0].result, Err(Rejection::NotSigner { signer }) if signer == key(9).address()), "{:?}", v.checks[0]);
    assert_eq!(v.checks[1].result, Err(Rejection::WrongWorker { named: key(9).address() }));
    assert_eq!(v.checks[2].result, Err(Rejection::WrongJob { got: U256::from(JOB + 1) }));
    assert!(matches!(v.checks[3].result, Err(Rejection::NotSigner { .. })), "another domain recovers someone else: {:?}", v.checks[3]);
    assert_eq!(v.checks[4].result, Err(Rejection::SealMismatch));
    assert_eq!(v.checks[4].standing, Standing::Fault(Rejection::SealMismatch));
    assert_eq!(v.checks[5].result, Err(Rejection::NotSealed));
    assert_eq!(v.checks[5].standing, Standing::Unsealed(d));
    assert_eq!(v.checks[6].result, Ok(d));
    assert!(matches!(v.checks[7].result, Err(Rejection::WrongSpec { .. })), "{:?}", v.checks[7]);
    for i in [0, 1, 2, 3, 7] {
        assert!(matches!(v.checks[i].standing, Standing::DidNotRun(_)), "nothing the provider signed: {:?}", v.checks[i]);
    }
    // One vote, against the funded three: no majority.
    assert_eq!(v.decision, Decision::Escalate { replicas: 9 });
    for c in &v.checks[..6] {
        assert!(!c.result.as_ref().unwrap_err().to_string().is_empty(), "every rejection says why");
    }
}

#[test]
fn an_unsealed_receipt_loses_only_with_a_losing_digest() {
    let (good, bad) = (keccak256(b"answer"), keccak256(b"made up"));
    let (mut copier, mut liar) = (honest(&key(3), good), honest(&key(4), bad));
    copier.seal = None;
    liar.seal = None;
    let v = judge(&job(3), &domain(), &[honest(&key(1), good), honest(&key(2), good), copier, liar], 3, 5);
    // Its signed receipt with a losing digest is evidence; the winning digest unsealed could be a copy,
    // so it earns nothing, and loses nothing.
    assert_eq!(v.decision, Decision::Settle { result_digest: good, winners: addresses(&[1, 2]), losers: addresses(&[4]) });
}

#[test]
fn an_unregistered_provider_does_not_count() {
    let d = keccak256(b"answer");
    let mut gone = honest(&key(2), d);
    gone.registered = false;
    let v = judge(&job(3), &domain(), &[honest(&key(1), d), gone, honest(&key(3), d)], 3, 5);
    assert_eq!(v.checks[1].result, Err(Rejection::NotRegistered));
    assert_eq!(v.decision, Decision::Settle { result_digest: d, winners: addresses(&[1, 3]), losers: vec![] });
}

#[test]
fn a_re_execution_is_one_more_vote() {
    let (good, bad) = (keccak256(b"answer"), keccak256(b"made up"));
    // One replica that the verifier's own run contradicts: one vote of two is no majority.
    assert_eq!(judge_with(&job(1), &domain(), &[honest(&key(1), bad)], 1, 5, Some(good)).decision, Decision::Escalate { replicas: 3 });
    // Agreeing with it: settles.
    assert!(matches!(judge_with(&job(1), &domain(), &[honest(&key(1), good)], 1, 5, Some(good)).decision, Decision::Settle { .. }));
    // A 2-1 split the re-run sides against: 2 of 4 is no majority.
    let split = [honest(&key(1), bad), honest(&key(2), bad), honest(&key(3), good)];
    assert_eq!(judge_with(&job(3), &domain(), &split, 3, 5, Some(good)).decision, Decision::Escalate { replicas: 5 });
    // At the cap, a replica the re-run contradicts is refunded, not paid.
    assert_eq!(judge_with(&job(1), &domain(), &[honest(&key(1), bad)], 1, 1, Some(good)).decision, Decision::Refund);
    // The re-run's digest alone never settles: somebody has to have revealed it.
    let mut silent = honest(&key(1), good);
    silent.receipt = None;
    assert_eq!(judge_with(&job(1), &domain(), &[silent], 1, 1, Some(good)).decision, Decision::Refund);
}
