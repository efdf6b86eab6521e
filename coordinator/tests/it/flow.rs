//! The worker flow in process: match → lease → accept → seal → reveal, idempotent retries, other
//! workers' assignments, unmatched jobs that say why, lapsed leases, a silent co-replica that costs the
//! sealed one nothing, and a restart mid-job.

use alloy_primitives::{Address, B256, U256, keccak256};
use axum::http::StatusCode;
use qor_coordinator::matcher;
use qor_protocol::bindings::IJobEscrow::Receipt;
use qor_protocol::eip712::{Signer, escrow_domain};
use qor_protocol::worker_requests::{acceptance_body, seal_body};
use serde_json::{Value, json};

use crate::common::{CHAIN_ID, ESCROW, Harness, config, signed, signer};

const ETHER: u64 = 1_000_000_000_000_000_000;

async fn poll(h: &Harness, worker: &Signer, wait_ms: u64) -> Vec<Value> {
    let (status, body) = h.json(signed("GET", &format!("/v1/worker/assignments?wait_ms={wait_ms}"), vec![], worker)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["assignments"].as_array().unwrap().clone()
}

async fn heartbeat(h: &Harness, worker: &Signer) {
    let (status, body) = h.json(signed("POST", "/v1/worker/heartbeat", b"{}".to_vec(), worker)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn receipt(worker: &Signer, job_id: u64, spec_hash: B256, digest: B256) -> Receipt {
    Receipt {
        jobId: U256::from(job_id),
        specHash: spec_hash,
        worker: worker.address(),
        resultDigest: digest,
        stdoutHash: keccak256(b"out"),
        exitCode: 0,
        fuelUsed: 1234,
    }
}

fn receipt_body(worker: &Signer, job_id: u64, spec_hash: B256, digest: B256) -> Vec<u8> {
    let r = receipt(worker, job_id, spec_hash, digest);
    serde_json::to_vec(&qor_protocol::worker_requests::receipt_body(worker, &escrow_domain(CHAIN_ID, ESCROW), &r, &[]).unwrap()).unwrap()
}

/// `step` (`accept` or `seal` of `digest`) on `assignment` of job `job_id` (funded with `spec_hash`).
async fn step(
    h: &Harness,
    worker: &Signer,
    assignment: i64,
    job_id: u64,
    spec_hash: B256,
    step: &str,
    digest: B256,
) -> (StatusCode, Value) {
    let domain = escrow_domain(CHAIN_ID, ESCROW);
    let body = match step {
        "accept" => acceptance_body(worker, &domain, U256::from(job_id), spec_hash).unwrap(),
        _ => seal_body(worker, &domain, U256::from(job_id), spec_hash, digest).unwrap(),
    };
    h.json(signed("POST", &format!("/v1/worker/assignments/{assignment}/{step}"), serde_json::to_vec(&body).unwrap(), worker)).await
}

/// Accepts and seals `assignment`, both answered 200.
async fn accept_and_seal(h: &Harness, worker: &Signer, assignment: i64, job_id: u64, spec_hash: B256, digest: B256) {
    for s in ["accept", "seal"] {
        let (status, body) = step(h, worker, assignment, job_id, spec_hash, s, digest).await;
        assert_eq!(status, StatusCode::OK, "{s}: {body}");
    }
}

async fn seal_and_reveal(h: &Harness, worker: &Signer, assignment: i64, job_id: u64, spec_hash: B256, digest: B256) -> (StatusCode, Value) {
    accept_and_seal(h, worker, assignment, job_id, spec_hash, digest).await;
    let path = format!("/v1/worker/assignments/{assignment}/receipt");
    h.json(signed("POST", &path, receipt_body(worker, job_id, spec_hash, digest), worker)).await
}

#[tokio::test]
async fn a_funded_job_is_leased_sealed_and_revealed_by_its_replicas() {
    let h = Harness::new().await;
    let (cheap, dear, preferred, asleep) = (signer(1), signer(2), signer(3), signer(4));
    let stake = U256::from(ETHER);
    h.add_provider(&cheap, 1, 4, stake).await;
    h.add_provider(&dear, 1_000_000, 4, stake).await; // over budget
    h.add_provider(&preferred, 5, 4, stake).await;
    h.add_provider(&asleep, 1, 4, stake).await; // never heartbeats
    for w in [&cheap, &dear, &preferred] {
        heartbeat(&h, w).await;
    }
    let (_, spec_hash) = h.put_spec(b"module-bytes", 2, 1_000_000).await;
    // Budget 1e13: 1 × 1e6 × 2 and 5 × 1e6 × 2 fit; 1e6 × 1e6 × 2 does not.
    h.add_job(7, spec_hash, 2, U256::from(10_000_000_000_000u64), preferred.address()).await;
    matcher::tick(&h.state).await.unwrap();

    let (_, job) = h.get("/v1/jobs/7").await;
    assert_eq!(job["status"], "running", "{job}");
    let leased: Vec<&str> = job["replicas"].as_array().unwrap().iter().map(|r| r["provider"].as_str().unwrap()).collect();
    assert_eq!(leased, [format!("{:#x}", preferred.address()), format!("{:#x}", cheap.address())], "preferred first");

    let mine = poll(&h, &preferred, 0).await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["jobId"], "7");
    assert_eq!(mine[0]["spec"]["module"], format!("{:#x}", keccak256(b"module-bytes")));
    // The job as funded, for the worker to check against the escrow's commitment.
    assert_eq!(mine[0]["job"]["specHash"], format!("{spec_hash:#x}"));
    assert_eq!((mine[0]["job"]["redundancy"].as_i64(), mine[0]["job"]["budget"].as_str()), (Some(2), Some("10000000000000")));
    assert!(poll(&h, &dear, 0).await.is_empty(), "an unchosen worker sees nothing");
    let assignment = mine[0]["assignment"].as_i64().unwrap();
    let digest = keccak256(b"the result");

    // Another worker cannot touch it: 404, as if it did not exist.
    let (status, _) = step(&h, &cheap, assignment, 7, spec_hash, "accept", digest).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Sealing before accepting, and revealing before sealing, are refused.
    let (status, body) = step(&h, &preferred, assignment, 7, spec_hash, "seal", digest).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("accept_first")), "{body}");
    let path = format!("/v1/worker/assignments/{assignment}/receipt");
    let (status, body) = h.json(signed("POST", &path, receipt_body(&preferred, 7, spec_hash, digest), &preferred)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("seal_first")));
    // An acceptance of another spec is not this lease's.
    let (status, body) = step(&h, &preferred, assignment, 7, keccak256(b"another spec"), "accept", digest).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("signature")), "{body}");

    // Sealed, but the other replica has not: the reveal waits, so nobody can copy a revealed digest.
    let (status, body) = seal_and_reveal(&h, &preferred, assignment, 7, spec_hash, digest).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("awaiting_seals")), "{body}");
    assert_eq!(poll(&h, &preferred, 0).await[0]["revealable"], false);
    let theirs = poll(&h, &cheap, 0).await;
    let their_assignment = theirs[0]["assignment"].as_i64().unwrap();
    accept_and_seal(&h, &cheap, their_assignment, 7, spec_hash, digest).await;
    assert_eq!(poll(&h, &preferred, 0).await[0]["revealable"], true);
    let (status, body) = h.json(signed("POST", &path, receipt_body(&preferred, 7, spec_hash, digest), &preferred)).await;
    assert_eq!((status, body["duplicate"].as_bool()), (StatusCode::OK, Some(false)), "{body}");
    // The same receipt again (a retry): one receipt.
    let (status, body) = h.json(signed("POST", &path, receipt_body(&preferred, 7, spec_hash, digest), &preferred)).await;
    assert_eq!((status, body["duplicate"].as_bool()), (StatusCode::OK, Some(true)), "{body}");
    // A receipt that does not open the seal.
    let (status, body) = h.json(signed("POST", &path, receipt_body(&preferred, 7, spec_hash, keccak256(b"other")), &preferred)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("seal_mismatch")));
    // A receipt for another spec than the job was funded with.
    let (status, body) = h.json(signed("POST", &path, receipt_body(&preferred, 7, keccak256(b"another spec"), digest), &preferred)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("wrong_spec")), "{body}");
    // A receipt signed under another escrow's domain.
    let mut wrong_domain: Value = serde_json::from_slice(&receipt_body(&preferred, 7, spec_hash, digest)).unwrap();
    let sig =
        preferred.sign_receipt(&receipt(&preferred, 7, spec_hash, digest), &escrow_domain(CHAIN_ID, Address::repeat_byte(1))).unwrap();
    wrong_domain["signature"] = json!(alloy_primitives::hex::encode_prefixed(sig.as_bytes()));
    let (status, body) = h.json(signed("POST", &path, serde_json::to_vec(&wrong_domain).unwrap(), &preferred)).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("signature")), "{body}");

    let (_, job) = h.get("/v1/jobs/7").await;
    assert_eq!(job["status"], "running");
    let (status, _) = seal_and_reveal(&h, &cheap, their_assignment, 7, spec_hash, digest).await;
    assert_eq!(status, StatusCode::OK, "accepting and sealing again with the same seal is a retry");

    let (_, job) = h.get("/v1/jobs/7").await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["receipts"].as_array().unwrap().len(), 2);
    assert_eq!(job["receipts"][0]["specHash"], format!("{spec_hash:#x}"));
    // What each replica signed is kept, as the verifier's evidence.
    for r in job["replicas"].as_array().unwrap() {
        assert!(r["acceptance"].as_str().is_some_and(|s| s.len() == 132) && r["sealSignature"].as_str().is_some(), "{r}");
    }
    let kinds: Vec<&str> = job["timeline"].as_array().unwrap().iter().map(|t| t["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["leased", "leased", "running", "accepted", "sealed", "accepted", "sealed", "revealed", "revealed", "receipts_complete"]
    );
}

async fn reason(h: &Harness) -> (String, String) {
    matcher::tick(&h.state).await.unwrap();
    let (_, job) = h.get("/v1/jobs/1").await;
    (job["status"].as_str().unwrap().to_string(), job["reason"].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn a_job_nobody_can_take_says_why() {
    let h = Harness::new().await;
    let (_, spec_hash) = h.put_spec(b"m", 1, 1_000_000).await;
    h.add_job(1, spec_hash, 1, U256::from(1_000_000u64), Address::ZERO).await;
    assert_eq!(reason(&h).await, ("unmatched".into(), "no other registered provider".into()));
    let w = signer(9);
    h.add_provider(&w, 10, 1, U256::ZERO).await;
    assert!(reason(&h).await.1.contains("enough stake"));
    sqlx::query("UPDATE providers SET stake = '1000'").execute(&h.state.db).await.unwrap();
    assert!(reason(&h).await.1.contains("no live provider"));
    heartbeat(&h, &w).await;
    let (status, why) = reason(&h).await;
    assert_eq!(status, "unmatched");
    assert!(why.contains("within budget") && why.contains("10000000 wei"), "{why}");
    sqlx::query("UPDATE providers SET price_per_fuel = '1'").execute(&h.state.db).await.unwrap();
    assert_eq!(reason(&h).await, ("running".into(), String::new()));
}

#[tokio::test]
async fn a_lapsed_lease_goes_to_another_provider_and_a_released_one_at_once() {
    let mut cfg = config();
    cfg.lease_ms = -9_950; // spec wall clock 10 s: leases last 50 ms
    let h = Harness::with_config(cfg).await;
    let (a, b, c) = (signer(1), signer(2), signer(3));
    for w in [&a, &b, &c] {
        h.add_provider(w, 1, 1, U256::from(ETHER)).await;
        heartbeat(&h, w).await;
    }
    let (_, spec_hash) = h.put_spec(b"m", 1, 1_000).await;
    h.add_job(3, spec_hash, 1, U256::from(ETHER), a.address()).await;
    matcher::tick(&h.state).await.unwrap();
    assert_eq!(poll(&h, &a, 0).await.len(), 1);

    tokio::time::sleep(std::time::Duration::from_millis(80)).await;
    matcher::tick(&h.state).await.unwrap();
    assert!(poll(&h, &a, 0).await.is_empty(), "the lapsed lease is gone");
    let (on_b, on_c) = (poll(&h, &b, 0).await, poll(&h, &c, 0).await);
    assert_eq!(on_b.len() + on_c.len(), 1, "re-assigned to exactly one other provider");
    let (next, holder, other) = if on_b.is_empty() { (on_c, &c, &b) } else { (on_b, &b, &c) };
    let (_, job) = h.get("/v1/jobs/3").await;
    let statuses: Vec<&str> = job["replicas"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["lapsed", "leased"], "never accepted: it lapsed, it did not fail");

    // Released at once (say, on SIGTERM): the last provider gets it on the next pass.
    let path = format!("/v1/worker/assignments/{}/release", next[0]["assignment"]);
    let (status, _) = h.json(signed("POST", &path, b"{}".to_vec(), holder)).await;
    assert_eq!(status, StatusCode::OK);
    matcher::tick(&h.state).await.unwrap();
    assert_eq!(poll(&h, other, 0).await.len(), 1);
    let (_, job) = h.get("/v1/jobs/3").await;
    let kinds: Vec<&str> = job["timeline"].as_array().unwrap().iter().map(|t| t["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["leased", "running", "lapsed", "leased", "running", "released", "leased", "running"], "{job}");
}

#[tokio::test]
async fn a_long_poll_wakes_when_work_arrives() {
    let h = Harness::new().await;
    let w = signer(5);
    h.add_provider(&w, 1, 1, U256::from(ETHER)).await;
    heartbeat(&h, &w).await;
    let (_, spec_hash) = h.put_spec(b"m", 1, 1_000).await;
    let start = std::time::Instant::now();
    // No matcher loop runs: only the assignment's own wake-up can end the 20 s poll early.
    let (found, ()) = tokio::join!(poll(&h, &w, 20_000), async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        h.add_job(11, spec_hash, 1, U256::from(ETHER), Address::ZERO).await;
        matcher::tick(&h.state).await.unwrap();
    });
    assert_eq!(found.len(), 1);
    assert!(start.elapsed() < std::time::Duration::from_secs(10), "woken, not timed out: {:?}", start.elapsed());
}

#[tokio::test]
async fn a_restart_mid_job_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let w = signer(6);
    let digest = keccak256(b"r");
    let assignment = {
        let h = Harness::open(tmp.path().to_path_buf(), config()).await;
        h.add_provider(&w, 1, 2, U256::from(ETHER)).await;
        heartbeat(&h, &w).await;
        let (_, spec_hash) = h.put_spec(b"m", 1, 1_000).await;
        h.add_job(21, spec_hash, 1, U256::from(ETHER), Address::ZERO).await;
        matcher::tick(&h.state).await.unwrap();
        let mine = poll(&h, &w, 0).await;
        let id = mine[0]["assignment"].as_i64().unwrap();
        accept_and_seal(&h, &w, id, 21, spec_hash, digest).await;
        h.state.db.close().await;
        (id, spec_hash)
    };
    let (assignment, spec_hash) = assignment;
    // The coordinator comes back on the same files.
    let h = Harness::open(tmp.path().to_path_buf(), config()).await;
    matcher::tick(&h.state).await.unwrap();
    let mine = poll(&h, &w, 0).await;
    assert_eq!(mine.len(), 1, "the sealed assignment survived, and no second lease was made");
    assert_eq!((mine[0]["assignment"].as_i64(), mine[0]["status"].as_str()), (Some(assignment), Some("sealed")));
    let path = format!("/v1/worker/assignments/{assignment}/receipt");
    let (status, body) = h.json(signed("POST", &path, receipt_body(&w, 21, spec_hash, digest), &w)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, job) = h.get("/v1/jobs/21").await;
    assert_eq!((job["status"].as_str(), job["replicas"].as_array().unwrap().len()), (Some("completed"), 1));
}

#[tokio::test]
async fn server_sent_events_follow_one_job() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let h = Harness::new().await;
    let w = signer(8);
    h.add_provider(&w, 1, 1, U256::from(ETHER)).await;
    heartbeat(&h, &w).await;
    let (_, spec_hash) = h.put_spec(b"m", 1, 1_000).await;
    let (status, body) = h.get("/v1/events?job=thirty").await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("job")));
    let request = axum::http::Request::get("/v1/events?job=0x1f").body(axum::body::Body::empty()).unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    // Another job's update is filtered out; job 31's arrives.
    h.add_job(30, spec_hash, 1, U256::from(ETHER), Address::ZERO).await;
    h.add_job(31, spec_hash, 1, U256::from(ETHER), Address::ZERO).await;
    matcher::tick(&h.state).await.unwrap();
    let frame = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame()).await.unwrap().unwrap().unwrap();
    let text = String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap();
    assert!(text.starts_with("event: update\ndata: "), "{text}");
    assert!(text.contains("\"jobId\":\"31\"") && !text.contains("\"jobId\":\"30\""), "{text}");
}

/// A job's replicas are leased together or not at all: one leased alone would hold its provider's slot
/// waiting for seals that cannot come while the others are busy elsewhere.
#[tokio::test]
async fn replicas_are_leased_together_or_not_at_all() {
    let h = Harness::new().await;
    let (a, b, c) = (signer(21), signer(22), signer(23));
    for w in [&a, &b] {
        h.add_provider(w, 1, 1, U256::from(ETHER)).await;
        heartbeat(&h, w).await;
    }
    let (_, spec_hash) = h.put_spec(b"m", 1, 1_000).await;
    h.add_job(1, spec_hash, 3, U256::from(ETHER), Address::ZERO).await;
    let (status, why) = reason(&h).await;
    assert_eq!(status, "unmatched");
    assert_eq!(why, "needs 3 providers with a free slot at once (its replicas seal together); 2 have one now");
    assert!(poll(&h, &a, 0).await.is_empty() && poll(&h, &b, 0).await.is_empty(), "no replica leased alone");

    // A third provider: all three replicas at once.
    h.add_provider(&c, 1, 1, U256::from(ETHER)).await;
    heartbeat(&h, &c).await;
    assert_eq!(reason(&h).await, ("running".into(), String::new()));
    for w in [&a, &b, &c] {
        assert_eq!(poll(&h, w, 0).await.len(), 1);
    }
}

#[tokio::test]
async fn a_busy_worker_polling_past_its_assignments_waits_for_a_new_lease() {
    let h = Harness::new().await;
    let worker = signer(1);
    h.add_provider(&worker, 1, 4, U256::from(ETHER)).await;
    heartbeat(&h, &worker).await;
    let (_, first_spec) = h.put_spec(b"module-a", 1, 1_000_000).await;
    h.add_job(1, first_spec, 1, U256::from(ETHER), Address::ZERO).await;
    matcher::tick(&h.state).await.unwrap();
    let mine = poll(&h, &worker, 0).await;
    assert_eq!(mine.len(), 1);
    let first = mine[0]["assignment"].as_i64().unwrap();

    // Past the one it has: nothing new, so the poll waits (it would answer at once without `after`).
    let path = format!("/v1/worker/assignments?wait_ms=30000&after={first}");
    let waiting = tokio::spawn({
        let (app, request) = (h.app.clone(), signed("GET", &path, vec![], &worker));
        async move { tower::ServiceExt::oneshot(app, request).await.unwrap() }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the poll answered with nothing new");

    // A new lease answers it, with both assignments.
    let (_, second_spec) = h.put_spec(b"module-b", 1, 1_000_000).await;
    h.add_job(2, second_spec, 1, U256::from(ETHER), Address::ZERO).await;
    matcher::tick(&h.state).await.unwrap();
    let response = tokio::time::timeout(std::time::Duration::from_secs(10), waiting).await.expect("answered").unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = serde_json::from_slice(&axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap()).unwrap();
    let ids: Vec<i64> = body["assignments"].as_array().unwrap().iter().map(|a| a["assignment"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{body}");
    assert!(ids.contains(&first) && ids.iter().any(|id| *id > first), "{ids:?}");

    // A bad `after` is named.
    let (status, body) = h.json(signed("GET", "/v1/worker/assignments?wait_ms=0&after=x", vec![], &worker)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("after"), "{body}");
}

/// A replica that sealed waits for a silent co-replica however long it takes: the silent one (it took
/// the lease and never sealed) fails and is replaced, and the sealed one reveals and is paid. Before,
/// every lease lapsed together and the honest replica was judged a missed reveal.
#[tokio::test]
async fn a_silent_co_replica_fails_alone_and_the_sealed_replica_reveals_after_it() {
    let mut cfg = config();
    cfg.lease_ms = -9_800; // spec wall clock 10 s: leases last 200 ms
    let h = Harness::with_config(cfg).await;
    let (honest, silent, spare) = (signer(41), signer(42), signer(43));
    for w in [&honest, &silent] {
        h.add_provider(w, 1, 1, U256::from(ETHER)).await;
        heartbeat(&h, w).await;
    }
    let (_, spec_hash) = h.put_spec(b"m", 2, 1_000).await;
    h.add_job(5, spec_hash, 2, U256::from(ETHER), Address::ZERO).await;
    matcher::tick(&h.state).await.unwrap();
    let digest = keccak256(b"the answer");
    let mine = poll(&h, &honest, 0).await[0]["assignment"].as_i64().unwrap();
    accept_and_seal(&h, &honest, mine, 5, spec_hash, digest).await;
    let theirs = poll(&h, &silent, 0).await[0]["assignment"].as_i64().unwrap();
    let (status, _) = step(&h, &silent, theirs, 5, spec_hash, "accept", digest).await;
    assert_eq!(status, StatusCode::OK, "the silent replica takes the lease, then says nothing");

    // Both leases run out: the silent one fails (it accepted and never sealed), the sealed one stands.
    h.add_provider(&spare, 1, 1, U256::from(ETHER)).await;
    heartbeat(&h, &spare).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    matcher::tick(&h.state).await.unwrap();
    let (_, job) = h.get("/v1/jobs/5").await;
    let status_of = |job: &Value, w: &Signer| {
        let me = format!("{:#x}", w.address());
        job["replicas"].as_array().unwrap().iter().find(|r| r["provider"] == me).map(|r| r["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status_of(&job, &honest).as_deref(), Some("sealed"), "{job}");
    assert_eq!(status_of(&job, &silent).as_deref(), Some("failed"), "{job}");
    let failed = job["timeline"].as_array().unwrap().iter().find(|t| t["kind"] == "failed").unwrap();
    assert!(failed["detail"]["reason"].as_str().unwrap().contains("did not seal"), "{failed}");
    let (_, providers) = h.get("/v1/providers").await;
    let silent_view = providers["providers"].as_array().unwrap().iter().find(|p| p["address"] == format!("{:#x}", silent.address()));
    assert_eq!(silent_view.unwrap()["failedLeases"], 1, "the failure is recorded against the silent provider");

    // The spare takes the silent one's place; once it seals, both reveal and the job completes.
    let spares = poll(&h, &spare, 0).await;
    assert_eq!(spares.len(), 1, "re-leased to the spare: {job}");
    let (status, body) = seal_and_reveal(&h, &spare, spares[0]["assignment"].as_i64().unwrap(), 5, spec_hash, digest).await;
    assert_eq!(status, StatusCode::OK, "every replica has sealed: {body}");
    let path = format!("/v1/worker/assignments/{mine}/receipt");
    let (status, body) = h.json(signed("POST", &path, receipt_body(&honest, 5, spec_hash, digest), &honest)).await;
    assert_eq!(status, StatusCode::OK, "the sealed replica reveals after the silent one failed: {body}");
    let (_, job) = h.get("/v1/jobs/5").await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(status_of(&job, &honest).as_deref(), Some("revealed"));
}

/// Once every replica has sealed, each has `lease_ms` to reveal; one that does not lapses as a missed
/// reveal (its signed acceptance and seal are the evidence the verifier holds it to).
#[tokio::test]
async fn a_sealed_replica_that_never_reveals_lapses_once_every_replica_has_sealed() {
    let mut cfg = config();
    cfg.lease_ms = 150;
    let h = Harness::with_config(cfg).await;
    let (a, b) = (signer(51), signer(52));
    for w in [&a, &b] {
        h.add_provider(w, 1, 1, U256::from(ETHER)).await;
        heartbeat(&h, w).await;
    }
    let (_, spec_hash) = h.put_spec(b"m", 2, 1_000).await;
    h.add_job(6, spec_hash, 2, U256::from(ETHER), Address::ZERO).await;
    matcher::tick(&h.state).await.unwrap();
    let digest = keccak256(b"r");
    let id_a = poll(&h, &a, 0).await[0]["assignment"].as_i64().unwrap();
    let id_b = poll(&h, &b, 0).await[0]["assignment"].as_i64().unwrap();
    accept_and_seal(&h, &a, id_a, 6, spec_hash, digest).await;
    accept_and_seal(&h, &b, id_b, 6, spec_hash, digest).await;
    let path = format!("/v1/worker/assignments/{id_a}/receipt");
    let (status, _) = h.json(signed("POST", &path, receipt_body(&a, 6, spec_hash, digest), &a)).await;
    assert_eq!(status, StatusCode::OK);
    // The wall clock (10 s) no longer counts once sealed: only the reveal window does.
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    matcher::tick(&h.state).await.unwrap();
    let (_, job) = h.get("/v1/jobs/6").await;
    let statuses: Vec<&str> = job["replicas"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["revealed", "lapsed"], "{job}");
    let lapsed = job["timeline"].as_array().unwrap().iter().find(|t| t["kind"] == "lapsed").unwrap();
    assert!(lapsed["detail"]["reason"].as_str().unwrap().contains("did not reveal"), "{lapsed}");
}
