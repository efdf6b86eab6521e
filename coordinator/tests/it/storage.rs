//! Storage deals in process: the file's root recomputed on upload, the deal offered to a provider that
//! re-derives the root (a refusal sends it to another), challenges relayed only by committee members,
//! answers checked against the root; and the verifier's verdicts on compute jobs.

use alloy_primitives::{Address, B256, U256, keccak256};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use qor_coordinator::matcher;
use qor_protocol::merkle::StorageTree;
use serde_json::{Value, json};

use crate::common::{Harness, signer};

const ETHER: u64 = 1_000_000_000_000_000_000;

fn file() -> Vec<u8> {
    (0..5_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

async fn register_file(h: &Harness, bytes: &[u8]) -> Value {
    let blob = h.put_blob(bytes).await;
    let (status, body) =
        h.json(Request::post("/v1/storage/files").body(Body::from(json!({ "blobHash": blob }).to_string())).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn a_deal_is_hosted_challenged_and_answered_with_a_checked_proof() {
    let h = Harness::new().await;
    let (careless, careful, verifier, stranger) = (signer(40), signer(41), signer(42), signer(43));
    h.add_provider(&careless, 1, 4, U256::from(ETHER)).await;
    h.add_provider(&careful, 1, 4, U256::from(ETHER)).await;
    h.add_verifier(&verifier).await;
    for w in [&careless, &careful] {
        assert_eq!(h.call(w, "POST", "/v1/worker/heartbeat", json!({})).await.0, StatusCode::OK);
    }
    let data = file();
    let tree = StorageTree::from_bytes(&data).unwrap();

    // Funded before the file arrived: it waits for the file, and says so.
    h.add_deal(1, tree.root(), data.len() as u64, 3, Address::ZERO).await;
    matcher::tick(&h.state).await.unwrap();
    assert_eq!(h.get("/v1/storage/deals/1").await.1["status"], "awaiting_file");

    // The coordinator recomputes the root; a blob that is not there is named.
    let (status, body) =
        h.json(Request::post("/v1/storage/files").body(Body::from(json!({ "blobHash": keccak256(b"nope") }).to_string())).unwrap()).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("blobHash")), "{body}");
    let registered = register_file(&h, &data).await;
    assert_eq!(registered["root"], json!(tree.root()));
    assert_eq!(registered["chunks"], 5);

    matcher::tick(&h.state).await.unwrap();
    let deal = h.get("/v1/storage/deals/1").await.1;
    assert_eq!(deal["status"], "offered", "{deal}");
    let first: Address = deal["offeredTo"].as_str().unwrap().parse().unwrap();
    let (first, second) = if first == careless.address() { (&careless, &careful) } else { (&careful, &careless) };

    // The offered provider sees it in its long poll (and nobody else does); its copy is corrupt, so
    // the root it reports differs: a refusal, and the deal goes to the other provider.
    let (status, polled) = h.call(first, "GET", "/v1/worker/assignments?wait_ms=0", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(polled["storage"]["deals"][0]["status"], "offered", "{polled}");
    assert_eq!(polled["storage"]["deals"][0]["blobHash"], registered["blobHash"]);
    let (_, other) = h.call(second, "GET", "/v1/worker/storage", Value::Null).await;
    assert_eq!(other["deals"], json!([]), "{other}");
    let (status, _) = h.call(second, "POST", "/v1/worker/storage/1/root", json!({ "root": tree.root() })).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a deal not offered to you is not yours to report");
    let mut corrupt = data.clone();
    corrupt[4_000] ^= 1;
    let wrong = StorageTree::from_bytes(&corrupt).unwrap().root();
    let (status, body) = h.call(first, "POST", "/v1/worker/storage/1/root", json!({ "root": wrong })).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("refused")), "{body}");
    matcher::tick(&h.state).await.unwrap();
    let deal = h.get("/v1/storage/deals/1").await.1;
    assert_eq!(deal["offeredTo"], json!(format!("{:#x}", second.address())), "{deal}");

    let (status, body) = h.call(second, "POST", "/v1/worker/storage/1/root", json!({ "root": tree.root() })).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("hosting")), "{body}");
    assert_eq!(body["next"], "acceptStorageDeal(1)");
    assert_eq!(h.get("/v1/storage/deals/1").await.1["status"], "awaiting_acceptance");

    // Challenges: only an active deal, only a committee member, only a real period and chunks (a
    // period challenges the deal's k chunks at once; here 2).
    let challenge = json!({ "period": 0, "chunkIndexes": [3, 1] });
    let (status, body) = h.call(&verifier, "POST", "/v1/verifier/storage/1/challenges", challenge.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("deal_not_active")), "{body}");
    h.accept_deal(1, second).await;
    let (status, body) = h.call(&stranger, "POST", "/v1/verifier/storage/1/challenges", challenge.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("not_a_verifier")), "{body}");
    let (status, body) = h.call(second, "POST", "/v1/verifier/storage/1/challenges", challenge.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a provider is not a verifier: {body}");
    let (status, body) =
        h.call(&verifier, "POST", "/v1/verifier/storage/1/challenges", json!({ "period": 0, "chunkIndexes": [1, 5] })).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("chunkIndexes")), "{body}");
    let (status, body) = h.call(&verifier, "POST", "/v1/verifier/storage/1/challenges", json!({ "period": 0, "chunkIndexes": [] })).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("chunkIndexes")), "{body}");
    let seventeen = json!({ "period": 0, "chunkIndexes": vec![0; 17] });
    let (status, body) = h.call(&verifier, "POST", "/v1/verifier/storage/1/challenges", seventeen).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("chunkIndexes")), "{body}");
    let (status, body) = h.call(&verifier, "POST", "/v1/verifier/storage/1/challenges", json!({ "period": 3, "chunkIndexes": [1] })).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("period")), "{body}");
    let (status, body) = h.call(&verifier, "POST", "/v1/verifier/storage/1/challenges", challenge.clone()).await;
    assert_eq!((status, body["duplicate"].as_bool()), (StatusCode::OK, Some(false)), "{body}");
    let (status, body) = h.call(&verifier, "POST", "/v1/verifier/storage/1/challenges", challenge.clone()).await;
    assert_eq!((status, body["duplicate"].as_bool()), (StatusCode::OK, Some(true)), "the same challenge twice is one: {body}");
    let (status, body) =
        h.call(&verifier, "POST", "/v1/verifier/storage/1/challenges", json!({ "period": 0, "chunkIndexes": [3, 2] })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("challenge_conflict")), "{body}");

    // The provider sees the challenge; a proof of another chunk, a tampered one, or one chunk short, is
    // refused.
    let (_, work) = h.call(second, "GET", "/v1/worker/storage", Value::Null).await;
    assert_eq!(work["challenges"], json!([{ "dealId": "1", "period": 0, "chunkIndexes": [3, 1] }]), "{work}");
    let answers = |proofs: Vec<qor_protocol::merkle::ChunkProof>| {
        let chunks: Vec<String> = proofs.iter().map(|p| alloy_primitives::hex::encode_prefixed(&p.chunk)).collect();
        let paths: Vec<Vec<B256>> = proofs.into_iter().map(|p| p.path).collect();
        json!({ "chunks": chunks, "paths": paths })
    };
    let prove = |i: u64| tree.prove(&data, i).unwrap();
    let (status, body) = h.call(second, "POST", "/v1/worker/storage/1/challenges/0", answers(vec![prove(3), prove(2)])).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_proof")), "{body}");
    let mut tampered = prove(1);
    tampered.path[0] = B256::repeat_byte(7);
    let (status, body) = h.call(second, "POST", "/v1/worker/storage/1/challenges/0", answers(vec![prove(3), tampered])).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_proof")), "{body}");
    let (status, body) = h.call(second, "POST", "/v1/worker/storage/1/challenges/0", answers(vec![prove(3)])).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("chunks")), "{body}");
    let short = json!({ "chunks": ["0x00", "0x00"], "paths": [[], []] });
    let (status, body) = h.call(second, "POST", "/v1/worker/storage/1/challenges/0", short).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("chunk")), "{body}");
    let (status, _) = h.call(first, "POST", "/v1/worker/storage/1/challenges/0", answers(vec![prove(3), prove(1)])).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "only the deal's provider answers");
    let (status, body) = h.call(second, "POST", "/v1/worker/storage/1/challenges/0", answers(vec![prove(3), prove(1)])).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("answered")), "{body}");

    // The history: every challenge with its answer, and a timeline of who did what.
    let deal = h.get("/v1/storage/deals/1").await.1;
    assert_eq!(deal["status"], "active");
    let c = &deal["challenges"][0];
    assert_eq!((c["status"].as_str(), c["chunkIndexes"].clone()), (Some("answered"), json!([3, 1])), "{deal}");
    assert_eq!(c["paths"], json!([tree.path(3).unwrap(), tree.path(1).unwrap()]));
    let kinds: Vec<&str> = deal["timeline"].as_array().unwrap().iter().map(|t| t["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["offered", "refused", "offered", "root_verified", "challenged", "challenge_answered"], "{deal}");
    let (_, listed) = h.get(&format!("/v1/storage/deals?provider={}", second.address())).await;
    assert_eq!(listed["deals"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(h.get("/v1/storage/deals/7").await.0, StatusCode::NOT_FOUND);
    assert_eq!(h.get("/v1/storage/deals/x").await.0, StatusCode::BAD_REQUEST);

    // A buyer's probe: only the deal's buyer asks, for a real chunk; only the provider answers, with
    // a proof of that chunk; the answer is kept for the buyer to check.
    let buyer = signer(44);
    sqlx::query("UPDATE storage_deals SET buyer = ? WHERE deal_id = '1'")
        .bind(format!("{:#x}", buyer.address()))
        .execute(&h.state.db)
        .await
        .unwrap();
    let (status, body) = h.call(&stranger, "POST", "/v1/storage/deals/1/probes", json!({ "chunkIndex": 4 })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("not_the_buyer")), "{body}");
    let (status, body) = h.call(&buyer, "POST", "/v1/storage/deals/1/probes", json!({ "chunkIndex": 5 })).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("chunkIndex")), "{body}");
    let (status, body) = h.call(&buyer, "POST", "/v1/storage/deals/7/probes", json!({ "chunkIndex": 0 })).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = h.call(&buyer, "POST", "/v1/storage/deals/1/probes", json!({ "chunkIndex": 4 })).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::CREATED, Some("open")), "{body}");
    let probe = body["probeId"].as_i64().unwrap();
    let (_, work) = h.call(second, "GET", "/v1/worker/storage", Value::Null).await;
    assert_eq!(work["probes"], json!([{ "probeId": probe, "dealId": "1", "chunkIndex": 4 }]), "{work}");
    let (_, other) = h.call(first, "GET", "/v1/worker/storage", Value::Null).await;
    assert_eq!(other["probes"], json!([]), "only the deal's provider is asked: {other}");
    let probe_path = format!("/v1/worker/storage/1/probes/{probe}");
    let answer = |proof: qor_protocol::merkle::ChunkProof| json!({ "chunk": alloy_primitives::hex::encode_prefixed(&proof.chunk), "path": proof.path });
    let (status, body) = h.call(second, "POST", &probe_path, answer(tree.prove(&data, 3).unwrap())).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_proof")), "{body}");
    assert_eq!(h.get(&format!("/v1/storage/deals/1/probes/{probe}")).await.1["status"], "open", "a wrong proof is not kept");
    let (status, _) = h.call(first, "POST", &probe_path, answer(tree.prove(&data, 4).unwrap())).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "only the deal's provider answers a probe");
    let (status, body) = h.call(second, "POST", &probe_path, answer(tree.prove(&data, 4).unwrap())).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("answered")), "{body}");
    let (status, answered) = h.get(&format!("/v1/storage/deals/1/probes/{probe}")).await;
    assert_eq!((status, answered["status"].as_str()), (StatusCode::OK, Some("answered")), "{answered}");
    assert_eq!(answered["path"], json!(tree.path(4).unwrap()));
    assert_eq!(h.call(second, "GET", "/v1/worker/storage", Value::Null).await.1["probes"], json!([]));
    // The web app's buyer asks with its Sign-In with Ethereum session instead of a signed request.
    let session = |who: &qor_protocol::eip712::Signer, token: &'static str| {
        let (db, address) = (h.state.db.clone(), format!("{:#x}", who.address()));
        async move {
            sqlx::query("INSERT INTO sessions (token_hash, address, issued_at, expires_at) VALUES (?, ?, 0, ?)")
                .bind(format!("{:#x}", keccak256(token.as_bytes())))
                .bind(address)
                .bind(i64::MAX)
                .execute(&db)
                .await
                .unwrap();
            token
        }
    };
    let by_session = async |token: Option<&str>| {
        let mut request = Request::post("/v1/me/storage/deals/1/probes");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        h.json(request.body(Body::from(json!({ "chunkIndex": 2 }).to_string())).unwrap()).await
    };
    let (status, body) = by_session(None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("no_session")), "{body}");
    let (status, body) = by_session(Some(session(&stranger, "stranger-token").await)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("not_the_buyer")), "{body}");
    let (status, body) = by_session(Some(session(&buyer, "buyer-token").await)).await;
    assert_eq!((status, body["chunkIndex"].as_u64()), (StatusCode::CREATED, Some(2)), "{body}");
    // Unanswered probes are capped per deal: a buyer checks, it does not flood its provider.
    for _ in 0..3 {
        assert_eq!(h.call(&buyer, "POST", "/v1/storage/deals/1/probes", json!({ "chunkIndex": 0 })).await.0, StatusCode::CREATED);
    }
    let (status, body) = h.call(&buyer, "POST", "/v1/storage/deals/1/probes", json!({ "chunkIndex": 0 })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("too_many_probes")), "{body}");
    let kinds: Vec<String> = h.get("/v1/storage/deals/1").await.1["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds[6..8], ["probed", "probe_answered"], "{kinds:?}");
}

#[tokio::test]
async fn a_verdict_is_checked_against_the_receipts_and_escalation_adds_replicas() {
    let h = Harness::new().await;
    let (a, b, c, verifier) = (signer(50), signer(51), signer(52), signer(53));
    h.add_verifier(&verifier).await;
    for w in [&a, &b, &c] {
        h.add_provider(w, 1, 2, U256::from(ETHER)).await;
        assert_eq!(h.call(w, "POST", "/v1/worker/heartbeat", json!({})).await.0, StatusCode::OK);
    }
    let (_, spec_hash) = h.put_spec(b"verdict", 2, 1_000).await;
    h.add_job(60, spec_hash, 2, U256::from(ETHER), Address::ZERO).await;
    // Two receipts that disagree, as the worker flow stores them.
    let (d1, d2) = (keccak256(b"one"), keccak256(b"two"));
    for (w, d) in [(&a, d1), (&b, d2)] {
        sqlx::query(
            "INSERT INTO receipts (job_id, worker, result_digest, stdout_hash, exit_code, fuel_used, signature, outputs, received_at)
                     VALUES ('60', ?, ?, ?, 0, 1, '0x', '[]', 0)",
        )
        .bind(format!("{:#x}", w.address()))
        .bind(format!("{d:#x}"))
        .bind(format!("{d:#x}"))
        .execute(&h.state.db)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO assignments (job_id, provider, status, lease_expires_at, seal, created_at, updated_at)
                     VALUES ('60', ?, 'revealed', 0, '0x', 0, 0)",
        )
        .bind(format!("{:#x}", w.address()))
        .execute(&h.state.db)
        .await
        .unwrap();
    }
    let path = "/v1/verifier/jobs/60/verdict";
    let settle = json!({ "outcome": "settle", "resultDigest": d1, "winners": [a.address()], "losers": [b.address()] });
    let (status, body) = h.call(&verifier, "POST", path, settle.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("not_completed")), "{body}");
    sqlx::query("UPDATE jobs SET status = 'completed' WHERE job_id = '60'").execute(&h.state.db).await.unwrap();

    let (status, body) = h.call(&a, "POST", path, settle.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("not_a_verifier")), "{body}");
    let lying = json!({ "outcome": "settle", "resultDigest": d1, "winners": [b.address()], "losers": [] });
    let (status, body) = h.call(&verifier, "POST", path, lying).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("winners[0]")), "{body}");
    // A replica the coordinator holds no signed evidence for (a lapse with a seal, but no signed
    // acceptance and seal) cannot be named a loser.
    let invented = signer(54);
    sqlx::query(
        "INSERT INTO assignments (job_id, provider, status, lease_expires_at, seal, created_at, updated_at)
                 VALUES ('60', ?, 'lapsed', 0, '0x01', 0, 0)",
    )
    .bind(format!("{:#x}", invented.address()))
    .execute(&h.state.db)
    .await
    .unwrap();
    let framed = json!({ "outcome": "settle", "resultDigest": d1, "winners": [a.address()], "losers": [b.address(), invented.address()] });
    let (status, body) = h.call(&verifier, "POST", path, framed).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("losers[1]")), "{body}");
    let too_many = json!({ "outcome": "escalate", "replicas": 10 });
    let (status, body) = h.call(&verifier, "POST", path, too_many).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("replicas")), "{body}");

    // No majority (1 vs 1): escalate to three replicas; the third goes to the provider that has not run it.
    let (status, body) = h.call(&verifier, "POST", path, json!({ "outcome": "escalate", "replicas": 3 })).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("matching")), "{body}");
    matcher::tick(&h.state).await.unwrap();
    let job = h.get("/v1/jobs/60").await.1;
    assert_eq!(job["redundancy"], 3);
    let leased: Vec<&str> =
        job["replicas"].as_array().unwrap().iter().filter(|r| r["status"] == "leased").map(|r| r["provider"].as_str().unwrap()).collect();
    assert_eq!(leased, [format!("{:#x}", c.address())], "{job}");
    let kinds: Vec<&str> = job["timeline"].as_array().unwrap().iter().map(|t| t["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"verdict"), "{job}");
}

async fn event(h: &Harness, block: i64, index: i64, name: &str, detail: Value) {
    sqlx::query("INSERT INTO chain_events (block_number, log_index, block_hash, tx_hash, name, detail) VALUES (?, ?, '0x', '0x', ?, ?)")
        .bind(block)
        .bind(index)
        .bind(name)
        .bind(detail.to_string())
        .execute(&h.state.db)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_reorg_undoes_settlements_deal_acceptance_and_committee_changes_above_its_base() {
    let h = Harness::new().await;
    let (worker, old_member, new_member) = (signer(80), signer(81), signer(82));
    let (_, spec_hash) = h.put_spec(b"reorg", 1, 1_000).await;
    h.add_job(1, spec_hash, 1, U256::from(ETHER), Address::ZERO).await;
    sqlx::query(
        "INSERT INTO receipts (job_id, worker, result_digest, stdout_hash, exit_code, fuel_used, signature, outputs, received_at)
                 VALUES ('1', ?, '0x01', '0x01', 0, 1, '0x', '[]', 0)",
    )
    .bind(format!("{:#x}", worker.address()))
    .execute(&h.state.db)
    .await
    .unwrap();
    // Block 5: the committee's first member. Block 10 (to be reorged out): the job settles, the member
    // is replaced, and the provider accepts the deal that was funded at block 1.
    let (old, new) = (format!("{:#x}", old_member.address()), format!("{:#x}", new_member.address()));
    event(&h, 5, 0, "MemberAdded", json!({ "member": old })).await;
    event(&h, 10, 0, "ComputeBatchSettled", json!({ "batchId": "1", "windowEnd": 0, "jobIds": ["1"] })).await;
    event(&h, 10, 1, "MemberRemoved", json!({ "member": old })).await;
    event(&h, 10, 2, "MemberAdded", json!({ "member": new })).await;
    event(&h, 10, 3, "StorageDealAccepted", json!({ "dealId": "4", "provider": format!("{:#x}", worker.address()), "startBlock": 11 }))
        .await;
    sqlx::query("UPDATE jobs SET status = 'settled' WHERE job_id = '1'").execute(&h.state.db).await.unwrap();
    sqlx::query("INSERT INTO settlements (batch_id, detail, block_number) VALUES ('1', '{}', 10)").execute(&h.state.db).await.unwrap();
    h.add_verifier(&new_member).await;
    h.add_deal(4, B256::repeat_byte(4), 2_048, 2, Address::ZERO).await;
    h.accept_deal(4, &worker).await;
    sqlx::query("UPDATE storage_deals SET offered_to = ? WHERE deal_id = '4'")
        .bind(format!("{:#x}", worker.address()))
        .execute(&h.state.db)
        .await
        .unwrap();

    qor_coordinator::chain::rollback(&h.state, 9).await.unwrap();

    let job = h.get("/v1/jobs/1").await.1;
    assert_eq!(job["status"], "completed", "back to what its receipts say: {job}");
    assert_eq!(job["timeline"].as_array().unwrap().last().unwrap()["kind"], "reorged_out");
    let settlements: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM settlements").fetch_one(&h.state.db).await.unwrap();
    assert_eq!(settlements, 0);
    let members: Vec<String> = sqlx::query_scalar("SELECT address FROM committee_members").fetch_all(&h.state.db).await.unwrap();
    assert_eq!(members, [old], "the committee as of block 9");
    let deal = h.get("/v1/storage/deals/4").await.1;
    assert_eq!((deal["chainStatus"].as_str(), deal["provider"].is_null()), (Some("open"), true), "{deal}");
    assert_eq!(deal["offeredTo"], json!(format!("{:#x}", worker.address())), "hosting progress off chain stays: {deal}");
}
