//! What anonymous and abusive callers can make the coordinator do or keep, in process: uploads are
//! signed and within quotas, stalled ones leave nothing behind, unreferenced blobs and unfunded specs
//! are deleted, a registered file is not hashed twice, and bodies, event streams and sign-in nonces
//! are bounded. (The socket-level limits, connections and rates, are driven against a real process in
//! `dos.rs`.)

use std::time::Duration;

use alloy_primitives::{Address, U256, keccak256};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures_util::StreamExt;
use qor_coordinator::gc;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common::{Harness, blob_upload, config, signer, uploader};

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

/// A request whose body sends `first` and then nothing more (the sender is returned, to hold the body
/// open).
fn stalled(method: &str, path: &str, first: Vec<u8>, declared: usize) -> (Request<Body>, tokio::sync::mpsc::Sender<Vec<u8>>) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(bytes::Bytes::from(first)) })
        .chain(tokio_stream::wrappers::ReceiverStream::new(rx).map(|b| Ok(bytes::Bytes::from(b))));
    let request = Request::builder().method(method).uri(path).header("content-length", declared).body(Body::from_stream(stream)).unwrap();
    (request, tx)
}

#[tokio::test]
async fn uploads_count_against_their_accounts_quota_and_everyones() {
    let mut cfg = config();
    cfg.limits.max_unclaimed_bytes_per_account = 100 * 1024;
    cfg.limits.max_unclaimed_bytes = 150 * 1024;
    let h = Harness::with_config(cfg).await;
    let (alice, bob) = (signer(90), signer(91));
    let blob = |tag: u8| vec![tag; 60 * 1024];

    let (status, body) = h.json(blob_upload(&blob(1), &alice)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = h.json(blob_upload(&blob(2), &alice)).await;
    assert_eq!((status, code(&body)), (StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded"), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(&format!("{:#x}", alice.address())), "{body}");
    // The same bytes again cost nothing: they are stored already.
    let (status, _) = h.json(blob_upload(&blob(1), &alice)).await;
    assert_eq!(status, StatusCode::OK);
    // Bob has his own quota, but everyone together has theirs too.
    let (status, body) = h.json(blob_upload(&blob(3), &bob)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = h.json(blob_upload(&blob(4), &signer(92))).await;
    assert_eq!((status, code(&body)), (StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded"), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("the coordinator holds"), "{body}");
    assert_eq!(std::fs::read_dir(h.dir.join("data/tmp")).unwrap().count(), 0, "nothing half-stored");
}

#[tokio::test]
async fn a_stalled_upload_is_cut_off_and_leaves_no_file() {
    let mut cfg = config();
    cfg.limits.body_timeout_ms = 200;
    let h = Harness::with_config(cfg).await;
    let data = vec![9u8; 10_000];
    let (parts, _) = blob_upload(&data, &uploader()).into_parts();
    let (request, _hold) = stalled("PUT", parts.uri.path(), data[..1000].to_vec(), data.len());
    let (mut request_parts, body) = request.into_parts();
    request_parts.headers.extend(parts.headers);
    let started = std::time::Instant::now();
    let (status, body) = h.json(Request::from_parts(request_parts, body)).await;
    assert_eq!((status, code(&body)), (StatusCode::REQUEST_TIMEOUT, "body_timeout"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(std::fs::read_dir(h.dir.join("data/tmp")).unwrap().count(), 0, "its temporary file is gone");
    assert_eq!(h.get(&format!("/v1/blobs/{}", keccak256(&data))).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn nothing_unreferenced_is_kept_past_its_grace_and_claimed_results_are() {
    let mut cfg = config();
    cfg.limits.blob_grace_ms = 100;
    cfg.spec_ttl_ms = 100;
    let h = Harness::with_config(cfg).await;
    let orphan = h.put_blob(b"nobody needs me").await;
    // A spec waits for funding: its module is kept while the spec lives, and both go when it expires.
    let (_, spec_hash) = h.put_spec(b"a module nobody funds", 1, 1_000).await;
    // A job that was funded and reveals a receipt: its result is kept past the grace period.
    let worker = signer(93);
    h.add_provider(&worker, 1, 1, U256::from(1u64 << 60)).await;
    let (status, _) = h.call(&worker, "POST", "/v1/worker/heartbeat", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let output = h.put_blob(b"the job's output").await;
    let stdout = keccak256(b"");
    h.put_blob(b"").await;
    let (_, funded_spec) = h.put_spec(b"a funded module", 1, 1_000).await;
    h.add_job(1, funded_spec, 1, U256::from(1u64 << 60), Address::ZERO).await;
    qor_coordinator::matcher::tick(&h.state).await.unwrap();
    let (_, polled) = h.call(&worker, "GET", "/v1/worker/assignments", Value::Null).await;
    let id = polled["assignments"][0]["assignment"].as_i64().unwrap();
    let domain = qor_protocol::eip712::escrow_domain(crate::common::CHAIN_ID, crate::common::ESCROW);
    let digest = keccak256(b"digest");
    for (step, body) in [
        ("accept", qor_protocol::worker_requests::acceptance_body(&worker, &domain, U256::from(1), funded_spec).unwrap()),
        ("seal", qor_protocol::worker_requests::seal_body(&worker, &domain, U256::from(1), funded_spec, digest).unwrap()),
    ] {
        let (status, body) = h.call(&worker, "POST", &format!("/v1/worker/assignments/{id}/{step}"), body).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let receipt = qor_protocol::bindings::IJobEscrow::Receipt {
        jobId: U256::from(1),
        specHash: funded_spec,
        worker: worker.address(),
        resultDigest: digest,
        stdoutHash: stdout,
        exitCode: 0,
        fuelUsed: 1,
    };
    let outputs = [json!({ "path": "out.txt", "hash": output })];
    let body = qor_protocol::worker_requests::receipt_body(&worker, &domain, &receipt, &outputs).unwrap();
    let (status, body) = h.call(&worker, "POST", &format!("/v1/worker/assignments/{id}/receipt"), body).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    tokio::time::sleep(Duration::from_millis(250)).await;
    let swept = gc::pass(&h.state).await.unwrap();
    assert_eq!(h.get(&format!("/v1/blobs/{orphan}")).await.0, StatusCode::NOT_FOUND, "{swept:?}");
    assert_eq!(h.get(&format!("/v1/specs/{spec_hash}")).await.0, StatusCode::NOT_FOUND, "the unfunded spec expired: {swept:?}");
    assert_eq!(swept.specs, 1, "{swept:?}");
    for kept in [output, stdout] {
        assert_eq!(h.get(&format!("/v1/blobs/{kept}")).await.0, StatusCode::OK, "a result is kept past its grace: {swept:?}");
    }
    assert_eq!(h.get(&format!("/v1/specs/{funded_spec}")).await.0, StatusCode::OK, "a funded spec stays");
    assert!(swept.blobs >= 2, "the orphan and the unfunded module: {swept:?}");
}

#[tokio::test]
async fn a_storage_file_is_kept_while_its_deal_lives_and_hashed_once() {
    let mut cfg = config();
    cfg.limits.blob_grace_ms = 100;
    let h = Harness::with_config(cfg).await;
    let data: Vec<u8> = (0..5_000u32).map(|i| (i % 7) as u8).collect();
    let blob = h.put_blob(&data).await;
    let register = || Request::post("/v1/storage/files").body(Body::from(json!({ "blobHash": blob }).to_string())).unwrap();
    let (status, first) = h.json(register()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let root: alloy_primitives::B256 = first["root"].as_str().unwrap().parse().unwrap();
    h.add_deal(3, root, data.len() as u64, 2, Address::ZERO).await;

    // Past its grace, the file of an open deal stays.
    tokio::time::sleep(Duration::from_millis(250)).await;
    gc::pass(&h.state).await.unwrap();
    assert_eq!(h.get(&format!("/v1/blobs/{blob}")).await.0, StatusCode::OK);

    // Registering it again answers the root computed the first time: the file is not read again (here
    // it cannot be: its bytes are gone from the disk).
    std::fs::remove_file(h.dir.join(format!("data/blobs/{blob:x}"))).unwrap();
    let (status, again) = h.json(register()).await;
    assert_eq!((status, again["root"].clone()), (StatusCode::OK, first["root"].clone()), "{again}");

    // Once the deal is over, the file goes with the next pass after its grace.
    sqlx::query("UPDATE storage_deals SET status = 'completed' WHERE deal_id = '3'").execute(&h.state.db).await.unwrap();
    gc::pass(&h.state).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM blobs").fetch_one(&h.state.db).await.unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn oversized_specs_are_refused_before_they_are_read() {
    let mut cfg = config();
    cfg.limits.max_spec_bytes = 1024;
    let h = Harness::with_config(cfg).await;
    let module = h.put_blob(b"m").await;
    let spec = json!({
        "version": 1, "module": module, "entry": "_start", "args": ["x".repeat(2_000)], "env": {}, "inputs": [],
        "limits": { "fuel": 1000, "memoryBytes": 1048576, "outputBytes": 1024, "wallClockMs": 1000 }, "redundancy": 1
    });
    let (status, body) = h.json(Request::post("/v1/specs").body(Body::from(spec.to_string())).unwrap()).await;
    assert_eq!((status, code(&body)), (StatusCode::PAYLOAD_TOO_LARGE, "spec_too_large"), "{body}");
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM specs").fetch_one(&h.state.db).await.unwrap();
    assert_eq!(count, 0);
}

/// Bodies are read out of one shared budget: a caller that starts many bodies and never finishes
/// them holds at most that, and others are told to retry rather than the server filling its memory.
#[tokio::test]
async fn half_sent_bodies_share_one_budget_and_end_at_their_deadline() {
    let mut cfg = config();
    cfg.limits.max_buffered_body_bytes = 8 * 1024;
    cfg.limits.body_timeout_ms = 300;
    let h = Harness::with_config(cfg).await;
    let worker = signer(94);
    h.add_provider(&worker, 1, 1, U256::from(1u64)).await;
    // Two requests that send 4 KiB of a 10 KiB body and stall: the budget (8 KiB) is spent.
    let (first, _hold1) = stalled("POST", "/v1/storage/files", vec![b' '; 4 * 1024], 10 * 1024);
    let (second, _hold2) = stalled("POST", "/v1/storage/files", vec![b' '; 4 * 1024], 10 * 1024);
    let app = h.app.clone();
    let a = tokio::spawn(app.clone().oneshot(first));
    let b = tokio::spawn(app.clone().oneshot(second));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, body) = h.call(&worker, "POST", "/v1/worker/heartbeat", json!({ "padding": "y".repeat(2_000) })).await;
    assert_eq!((status, code(&body)), (StatusCode::SERVICE_UNAVAILABLE, "busy"), "{body}");
    // The stalled ones end at their deadline, and the budget is free again.
    for stalled in [a, b] {
        let response = stalled.await.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    }
    let (status, body) = h.call(&worker, "POST", "/v1/worker/heartbeat", json!({ "padding": "y".repeat(2_000) })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn event_streams_and_sign_in_nonces_are_counted() {
    let mut cfg = config();
    cfg.limits.max_event_streams = 2;
    cfg.limits.max_siwe_nonces = 2;
    let h = Harness::with_config(cfg).await;
    let open = || h.app.clone().oneshot(Request::get("/v1/events").body(Body::empty()).unwrap());
    let (one, two) = (open().await.unwrap(), open().await.unwrap());
    assert_eq!((one.status(), two.status()), (StatusCode::OK, StatusCode::OK));
    let third = open().await.unwrap();
    assert_eq!(third.status(), StatusCode::SERVICE_UNAVAILABLE);
    // A subscriber that goes away gives its place back.
    drop(one);
    assert_eq!(open().await.unwrap().status(), StatusCode::OK);

    for _ in 0..2 {
        assert_eq!(h.get("/v1/auth/nonce").await.0, StatusCode::OK);
    }
    let (status, body) = h.get("/v1/auth/nonce").await;
    assert_eq!((status, code(&body)), (StatusCode::SERVICE_UNAVAILABLE, "too_many_nonces"), "{body}");
    drop(two);
}
