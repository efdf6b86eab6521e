//! The API in process: blobs, specs, and requests that are malformed, oversized or forged.

use alloy_primitives::{U256, keccak256};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::json;

use crate::common::{Harness, blob_upload, signed, signed_with, signer, uploader};

#[tokio::test]
async fn blobs_are_verified_streamed_and_ranged() {
    let h = Harness::new().await;
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let hash = h.put_blob(&data).await;

    let (status, body, headers) = h.send(Request::get(format!("/v1/blobs/{hash}")).body(Body::empty()).unwrap()).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, data.as_slice()));
    assert_eq!(headers[header::ACCEPT_RANGES], "bytes");

    let ranged = |r: &str| Request::get(format!("/v1/blobs/{hash}")).header(header::RANGE, r).body(Body::empty()).unwrap();
    let (status, body, headers) = h.send(ranged("bytes=100-199")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, &data[100..200]);
    assert_eq!(headers[header::CONTENT_RANGE], "bytes 100-199/10000");
    let (_, body, _) = h.send(ranged("bytes=-10")).await;
    assert_eq!(body, &data[9990..]);
    let (_, body, _) = h.send(ranged("bytes=9995-")).await;
    assert_eq!(body, &data[9995..]);
    let (status, _, _) = h.send(ranged("bytes=20000-30000")).await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);

    // Nobody stores anything anonymously.
    let anonymous = keccak256(b"anonymous");
    let (status, body) = h.json(Request::put(format!("/v1/blobs/{anonymous}")).body(Body::from(&b"anonymous"[..])).unwrap()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unsigned_upload")), "{body}");

    // Bytes that do not hash to the name: refused, nothing stored.
    let other = keccak256(b"something else");
    let (parts, _) = blob_upload(b"something else", &uploader()).into_parts();
    let (status, body) = h.json(Request::from_parts(parts, Body::from(data.clone()))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!((body["error"]["code"].as_str(), body["error"]["field"].as_str()), (Some("hash_mismatch"), Some("hash")));
    assert_eq!(h.get(&format!("/v1/blobs/{other}")).await.0, StatusCode::NOT_FOUND);

    // Past the size limit (64 KiB here): 413, nothing stored, no temporary file left behind.
    let big = vec![7u8; 100 * 1024];
    let big_hash = keccak256(&big);
    let (status, body) = h.json(blob_upload(&big, &uploader())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(h.get(&format!("/v1/blobs/{big_hash}")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(std::fs::read_dir(h.dir.join("data/tmp")).unwrap().count(), 0);

    // Names that are not hashes never reach the filesystem.
    for path in ["/v1/blobs/..%2F..%2Fcoordinator.db", "/v1/blobs/0x1234", "/v1/blobs/blobs"] {
        let (status, body) = h.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_hash");
    }
}

#[tokio::test]
async fn specs_are_validated_and_need_their_blobs() {
    let h = Harness::new().await;
    let module = b"\0asm\x01\0\0\0".to_vec();
    let module_hash = keccak256(&module);
    let spec = json!({
        "version": 1, "module": module_hash, "entry": "_start", "args": [], "env": {}, "inputs": [],
        "limits": { "fuel": 1000000, "memoryBytes": 1048576, "outputBytes": 1024, "wallClockMs": 1000 }, "redundancy": 2
    });
    let post = |body: Vec<u8>| Request::post("/v1/specs").body(Body::from(body)).unwrap();

    // The module is not uploaded yet.
    let (status, body) = h.json(post(spec.to_string().into_bytes())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!((body["error"]["code"].as_str(), body["error"]["field"].as_str()), (Some("missing_blob"), Some("module")));

    h.put_blob(&module).await;
    let (status, body) = h.json(post(spec.to_string().into_bytes())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let spec_hash = body["specHash"].as_str().unwrap().to_string();
    // The same spec again (any key order): the same one, 200.
    let (status, body) = h.json(post(serde_json::to_vec_pretty(&spec).unwrap())).await;
    assert_eq!((status, body["specHash"].as_str()), (StatusCode::OK, Some(spec_hash.as_str())));

    let (status, body) = h.get(&format!("/v1/specs/{spec_hash}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "awaiting_funding");
    assert_eq!(body["timeline"][0]["kind"], "spec_uploaded");

    // Each broken spec names its field.
    let mut unknown = spec.clone();
    unknown["limits"]["gas"] = json!(1);
    let mut too_much = spec.clone();
    too_much["redundancy"] = json!(200);
    let mut escape = spec.clone();
    escape["inputs"] = json!([{ "path": "../../etc/passwd", "hash": module_hash }]);
    for (bad, field, path) in [(unknown, "gas", "limits.gas"), (too_much, "redundancy", "redundancy"), (escape, "inputs", "inputs[0].path")]
    {
        let (status, body) = h.json(post(bad.to_string().into_bytes())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["code"], "invalid_spec");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{field} not named in {message}");
        assert_eq!(body["error"]["field"], path);
    }
    let (status, body) = h.json(post(b"{\"version\": 1, \"version\": 1}".to_vec())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = h.json(post(b"not json".to_vec())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Oversized JSON (16 KiB limit here): 413 before parsing.
    let (status, _) = h.json(post(vec![b' '; 20 * 1024])).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Nothing half-written: still exactly one spec.
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM specs").fetch_one(&h.state.db).await.unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn forged_replayed_and_unregistered_worker_requests_are_refused() {
    let h = Harness::new().await;
    let worker = signer(1);
    let stranger = signer(2);
    h.add_provider(&worker, 1, 2, U256::from(10u64).pow(U256::from(18))).await;
    let code = |v: &serde_json::Value| v["error"]["code"].as_str().unwrap_or_default().to_string();

    // No headers.
    let (status, body) = h.json(Request::post("/v1/worker/heartbeat").body(Body::from("{}")).unwrap()).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "missing_auth".into()));

    // A good request works once; the same nonce again is a replay.
    let ts = qor_coordinator::db::now_ms() as u64;
    let (status, body) = h.json(signed_with("POST", "/v1/worker/heartbeat", b"{}".to_vec(), &worker, "fixed", ts)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = h.json(signed_with("POST", "/v1/worker/heartbeat", b"{}".to_vec(), &worker, "fixed", ts)).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "replayed_nonce".into()));
    // The same nonce from another signer is that signer's own.
    let other = signer(3);
    h.add_provider(&other, 1, 2, U256::from(10u64).pow(U256::from(18))).await;
    let (status, body) = h.json(signed_with("POST", "/v1/worker/heartbeat", b"{}".to_vec(), &other, "fixed", ts)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Signed before the coordinator started (within the clock window): a restart forgot the nonces it
    // might reuse, so it is stale.
    let before = h.state.replays.started_ms as u64 - 1_000;
    let (status, body) = h.json(signed_with("POST", "/v1/worker/heartbeat", b"{}".to_vec(), &worker, "earlier", before)).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "stale_timestamp".into()), "{body}");

    // Signed by one key, claiming another's address.
    let mut forged = signed("POST", "/v1/worker/heartbeat", b"{}".to_vec(), &stranger);
    forged.headers_mut().insert("x-qor-address", worker.address().to_string().parse().unwrap());
    let (status, body) = h.json(forged).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "bad_signature".into()));

    // A body changed after signing.
    let signed_req = signed("POST", "/v1/worker/heartbeat", b"{}".to_vec(), &worker);
    let (parts, _) = signed_req.into_parts();
    let (status, body) = h.json(Request::from_parts(parts, Body::from("{\"x\":1}"))).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "bad_signature".into()));

    // A valid signature from a key that is not a registered provider.
    let (status, body) = h.json(signed("POST", "/v1/worker/heartbeat", b"{}".to_vec(), &stranger)).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "provider_not_registered".into()));

    // A stale timestamp.
    let old = qor_coordinator::db::now_ms() as u64 - 3_600_000;
    let (status, body) = h.json(signed_with("POST", "/v1/worker/heartbeat", b"{}".to_vec(), &worker, "old", old)).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "stale_timestamp".into()));

    // A garbage signature header.
    let mut garbage = signed("POST", "/v1/worker/heartbeat", b"{}".to_vec(), &worker);
    garbage.headers_mut().insert("x-qor-signature", "0x1234".parse().unwrap());
    let (status, body) = h.json(garbage).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "bad_signature".into()));
}

#[tokio::test]
async fn service_documents_health_and_metrics() {
    let h = Harness::new().await;
    let (status, body) = h.get("/health").await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (status, doc) = h.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    // Every route the router serves is documented (read from the router's own source).
    let routes: Vec<&str> = include_str!("../../src/lib.rs").split(".route(\"").skip(1).map(|r| r.split('"').next().unwrap()).collect();
    assert!(routes.len() > 25, "{routes:?}");
    for path in routes {
        let path = path.replace("{*path}", "{path}");
        assert!(doc["paths"][path.as_str()].is_object(), "{path} missing from the OpenAPI document");
    }
    h.get("/v1/jobs/not-a-number").await;
    let (status, text, _) = h.send(Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("qor_http_requests_total 3"), "{text}");
    assert!(text.contains("qor_http_client_errors_total 1"), "{text}");
}

/// A second upload of a blob the coordinator already holds, over a real socket and a pooled
/// connection: answered with success every time. (Answering before reading the body used to drop
/// the connection under the client while it was still sending.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploading_a_blob_that_is_already_stored_succeeds_over_a_kept_alive_connection() {
    let mut cfg = crate::common::config();
    cfg.max_blob_bytes = 16 << 20;
    let h = Harness::with_config(cfg).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, h.app.clone()).into_future());

    let data: Vec<u8> = (0..4u32 << 20).map(|i| (i % 253) as u8).collect();
    let hash = keccak256(&data);
    let http = alloy::transports::http::reqwest::Client::new();
    for attempt in 0..20 {
        let path = format!("/v1/blobs/{hash}");
        let mut request = http.put(format!("{base}{path}")).body(data.clone());
        let (signed_parts, _) = signed("PUT", &path, Vec::new(), &uploader()).into_parts();
        for (k, v) in &signed_parts.headers {
            request = request.header(k.as_str(), v.to_str().unwrap());
        }
        let response = request.send().await;
        let response = response.unwrap_or_else(|e| panic!("upload {attempt}: {e:?}"));
        let expected = if attempt == 0 { StatusCode::CREATED } else { StatusCode::OK };
        assert_eq!(response.status(), expected, "upload {attempt}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["size"], 4 << 20, "upload {attempt}");
    }
    // And the bytes served are the bytes sent.
    let served = http.get(format!("{base}/v1/blobs/{hash}")).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(keccak256(&served), hash);
}

#[tokio::test]
async fn the_web_app_is_served_next_to_the_api_and_told_where_the_chain_is() {
    let web = tempfile::tempdir().unwrap();
    std::fs::write(web.path().join("index.html"), "<!doctype html><title>QOR</title>").unwrap();
    std::fs::create_dir(web.path().join("assets")).unwrap();
    std::fs::write(web.path().join("assets/app.js"), "console.log('qor')").unwrap();
    let mut cfg = crate::common::config();
    cfg.web_dir = Some(web.path().to_path_buf());
    cfg.public_rpc_url = Some("http://127.0.0.1:8545".into());
    cfg.confirmations = 2;
    let h = Harness::with_config(cfg).await;

    let (status, body, headers) = h.send(Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(String::from_utf8_lossy(&body), "<!doctype html><title>QOR</title>");
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"), "{headers:?}");
    let (status, _, headers) = h.send(Request::get("/assets/app.js").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"].to_str().unwrap().contains("javascript"), "{headers:?}");
    assert_eq!(h.send(Request::get("/nothing-here.js").body(Body::empty()).unwrap()).await.0, StatusCode::NOT_FOUND);
    assert_eq!(h.send(Request::get("/../Cargo.toml").body(Body::empty()).unwrap()).await.0, StatusCode::NOT_FOUND);
    // The API still answers its own routes, and the chain info tells the browser what it needs.
    let (status, chain) = h.get("/v1/chain").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (chain["rpcUrl"].as_str(), chain["confirmations"].as_u64(), chain["walletConnectProjectId"].is_null()),
        (Some("http://127.0.0.1:8545"), Some(2), true),
        "{chain}"
    );

    // Without a web folder, `/` is not found.
    let bare = Harness::new().await;
    assert_eq!(bare.send(Request::get("/").body(Body::empty()).unwrap()).await.0, StatusCode::NOT_FOUND);
}
