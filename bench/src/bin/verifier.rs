//! Verifier benchmark: receipts checked per second by the compute rule (EIP-712 recovery of each
//! receipt and of its signed seal, the worker, job, spec and seal checks, grouping by digest), on one
//! core.

use std::time::Instant;

use alloy_primitives::{Address, U256, keccak256};
use qor_protocol::bindings::IJobEscrow::Receipt;
use qor_protocol::eip712::{SealCommitment, Signer, escrow_domain, seal};
use qor_verifier::judge::{Decision, Job, Replica, SignedReceipt, judge};

const JOBS: u64 = 3_000;
const REPLICAS: u8 = 3;

fn main() {
    let domain = escrow_domain(31337, Address::repeat_byte(0xe5));
    let keys: Vec<Signer> = (0..REPLICAS).map(|i| Signer::from_bytes(&keccak256([b'b', i])).unwrap()).collect();
    let spec_hash = keccak256("bench-spec");
    let jobs: Vec<(Job, Vec<Replica>)> = (1..=JOBS)
        .map(|j| {
            let job = U256::from(j);
            let digest = keccak256(j.to_be_bytes());
            let replicas = keys
                .iter()
                .map(|k| {
                    let r = Receipt {
                        jobId: job,
                        specHash: spec_hash,
                        worker: k.address(),
                        resultDigest: digest,
                        stdoutHash: digest,
                        exitCode: 0,
                        fuelUsed: 1,
                    };
                    let signature = k.sign_receipt(&r, &domain).unwrap();
                    let sealed = seal(k.address(), job, digest);
                    let commitment = SealCommitment { jobId: job, specHash: spec_hash, worker: k.address(), seal: sealed };
                    Replica {
                        provider: k.address(),
                        acceptance: None,
                        seal: Some((sealed, k.sign_typed(&commitment, &domain).unwrap())),
                        receipt: Some(SignedReceipt { receipt: r, signature }),
                        registered: true,
                    }
                })
                .collect();
            (Job { id: job, spec_hash, redundancy: REPLICAS }, replicas)
        })
        .collect();
    let start = Instant::now();
    let mut settled = 0;
    for (job, replicas) in &jobs {
        if matches!(judge(job, &domain, replicas, REPLICAS, 5).decision, Decision::Settle { .. }) {
            settled += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(settled, JOBS, "every job settles");
    println!("verifier_receipts_checked {:.0} per_s", (JOBS * u64::from(REPLICAS)) as f64 / secs);
    println!("verifier_jobs_judged {:.0} per_s", JOBS as f64 / secs);
}
