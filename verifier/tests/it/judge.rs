//! The compute verdict: honest replicas settle; a liar loses to the majority; a tie escalates and, at
//! the cap, refunds; a missed reveal is a loss; forged, foreign-key and replayed receipts are each
//! rejected with their reason.

use alloy_primitives::{Address, B256, U256, keccak256};
use qor_protocol::bindings::IJobEscrow::Receipt;
use qor_protocol::eip712::{Signer, escrow_domain, seal};
use qor_verifier::judge::{Decision, Rejection, Replica, SignedReceipt, judge, judge_with};

const JOB: u64 = 42;

fn key(i: u8) -> Signer {
    Signer::from_bytes(&keccak256([b'v', i])).unwrap()
}

fn domain() -> alloy_sol_types::Eip712Domain {
    escrow_domain(31337, Address::repeat_byte(0xe5))
}

fn receipt(worker: Address, job: u64, digest: B256) -> Receipt {
    Receipt { jobId: U256::from(job), worker, resultDigest: digest, stdoutHash: keccak256(b"out"), exitCode: 0, fuelUsed: 777 }
}

/// An honest replica of `JOB` that computed `digest`: sealed, then revealed a receipt it signed.
fn honest(signer: &Signer, digest: B256) -> Replica {
    let r = receipt(signer.address(), JOB, digest);
    let signature = signer.sign_receipt(&r, &domain()).unwrap();
    Replica {
        provider: signer.address(),
        seal: Some(seal(signer.address(), U256::from(JOB), digest)),
        receipt: Some(SignedReceipt { receipt: r, signature }),
        registered: true,
    }
}

#[test]
fn three_honest_replicas_settle_unanimously() {
    let d = keccak256(b"answer");
    let replicas = [honest(&key(1), d), honest(&key(2), d), honest(&key(3), d)];
    let v = judge(U256::from(JOB), &domain(), &replicas, 5);
    let winners: Vec<Address> = replicas.iter().map(|r| r.provider).collect();
    assert_eq!(v.decision, Decision::Settle { result_digest: d, winners, losers: vec![] });
    assert!(v.checks.iter().all(|c| c.result == Ok(d)));
}

#[test]
fn a_liar_loses_to_the_majority() {
    let (good, bad) = (keccak256(b"answer"), keccak256(b"made up"));
    let replicas = [honest(&key(1), good), honest(&key(2), bad), honest(&key(3), good)];
    let v = judge(U256::from(JOB), &domain(), &replicas, 5);
    assert_eq!(
        v.decision,
        Decision::Settle { result_digest: good, winners: vec![key(1).address(), key(3).address()], losers: vec![key(2).address()] }
    );
}

#[test]
fn a_tie_escalates_and_at_the_cap_refunds() {
    let (a, b) = (keccak256(b"a"), keccak256(b"b"));
    let two = [honest(&key(1), a), honest(&key(2), b)];
    assert_eq!(judge(U256::from(JOB), &domain(), &two, 5).decision, Decision::Escalate { replicas: 4 });
    assert_eq!(judge(U256::from(JOB), &domain(), &two, 3).decision, Decision::Escalate { replicas: 3 });
    assert_eq!(judge(U256::from(JOB), &domain(), &two, 2).decision, Decision::Refund);
    // Three ways apart at the cap: no majority, refund.
    let three = [honest(&key(1), a), honest(&key(2), b), honest(&key(3), keccak256(b"c"))];
    assert_eq!(judge(U256::from(JOB), &domain(), &three, 3).decision, Decision::Refund);
}

#[test]
fn a_missed_reveal_is_a_loss_and_silence_makes_no_majority() {
    let d = keccak256(b"answer");
    let mut silent = honest(&key(3), d);
    silent.receipt = None;
    let replicas = [honest(&key(1), d), honest(&key(2), d), silent];
    let v = judge(U256::from(JOB), &domain(), &replicas, 5);
    assert_eq!(
        v.decision,
        Decision::Settle { result_digest: d, winners: vec![key(1).address(), key(2).address()], losers: vec![key(3).address()] }
    );
    assert_eq!(v.checks[2].result, Err(Rejection::NotRevealed));

    // One answer out of three is not a majority of the assigned replicas, whatever the others did.
    let mut quiet = honest(&key(2), d);
    quiet.receipt = None;
    let mut quieter = honest(&key(3), d);
    quieter.receipt = None;
    let v = judge(U256::from(JOB), &domain(), &[honest(&key(1), d), quiet, quieter], 5);
    assert_eq!(v.decision, Decision::Escalate { replicas: 5 });
}

#[test]
fn forged_foreign_and_replayed_receipts_are_rejected_with_their_reason() {
    let d = keccak256(b"answer");
    let job = U256::from(JOB);

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
    // Opens a different seal (it committed to another digest).
    let mut switched = honest(&key(5), d);
    switched.seal = Some(seal(key(5).address(), job, keccak256(b"first answer")));
    // Revealed without sealing.
    let mut unsealed = honest(&key(6), d);
    unsealed.seal = None;

    let replicas = [forged, foreign, replayed, cross_chain, switched, unsealed, honest(&key(7), d)];
    let v = judge(job, &domain(), &replicas, 9);
    assert!(matches!(v.checks[0].result, Err(Rejection::NotSigner { signer }) if signer == key(9).address()), "{:?}", v.checks[0]);
    assert_eq!(v.checks[1].result, Err(Rejection::WrongWorker { named: key(9).address() }));
    assert_eq!(v.checks[2].result, Err(Rejection::WrongJob { got: U256::from(JOB + 1) }));
    assert!(matches!(v.checks[3].result, Err(Rejection::NotSigner { .. })), "another domain recovers someone else: {:?}", v.checks[3]);
    assert_eq!(v.checks[4].result, Err(Rejection::SealMismatch));
    assert_eq!(v.checks[5].result, Err(Rejection::NotSealed));
    assert_eq!(v.checks[6].result, Ok(d));
    // One valid receipt of seven assigned: no majority.
    assert_eq!(v.decision, Decision::Escalate { replicas: 9 });
    for c in &v.checks[..6] {
        assert!(!c.result.as_ref().unwrap_err().to_string().is_empty(), "every rejection says why");
    }
}

#[test]
fn an_unregistered_provider_does_not_count() {
    let d = keccak256(b"answer");
    let mut gone = honest(&key(2), d);
    gone.registered = false;
    let v = judge(U256::from(JOB), &domain(), &[honest(&key(1), d), gone, honest(&key(3), d)], 5);
    assert_eq!(v.checks[1].result, Err(Rejection::NotRegistered));
    assert!(matches!(v.decision, Decision::Settle { ref losers, .. } if losers == &[key(2).address()]), "{:?}", v.decision);
}

#[test]
fn a_re_execution_is_one_more_vote() {
    let (good, bad) = (keccak256(b"answer"), keccak256(b"made up"));
    let job = U256::from(JOB);
    // One replica that the verifier's own run contradicts: one vote of two is no majority.
    assert_eq!(judge_with(job, &domain(), &[honest(&key(1), bad)], 5, Some(good)).decision, Decision::Escalate { replicas: 3 });
    // Agreeing with it: settles.
    assert!(matches!(judge_with(job, &domain(), &[honest(&key(1), good)], 5, Some(good)).decision, Decision::Settle { .. }));
    // A 2-1 split the re-run sides against: 2 of 4 is no majority.
    let split = [honest(&key(1), bad), honest(&key(2), bad), honest(&key(3), good)];
    assert_eq!(judge_with(job, &domain(), &split, 5, Some(good)).decision, Decision::Escalate { replicas: 5 });
    // At the cap, a replica the re-run contradicts is refunded, not paid.
    assert_eq!(judge_with(job, &domain(), &[honest(&key(1), bad)], 1, Some(good)).decision, Decision::Refund);
    // The re-run's digest alone never settles: somebody has to have revealed it.
    let mut silent = honest(&key(1), good);
    silent.receipt = None;
    assert_eq!(judge_with(job, &domain(), &[silent], 1, Some(good)).decision, Decision::Refund);
}
