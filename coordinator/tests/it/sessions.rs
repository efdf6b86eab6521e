//! Sign-In with Ethereum: a nonce from the coordinator, a message for this host and chain signed with
//! `personal_sign`, a session that names the account's roles; every way a sign-in can be wrong.

use alloy_primitives::keccak256;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use qor_protocol::eip712::Signer;
use qor_protocol::siwe::SiweMessage;
use serde_json::{Value, json};

use crate::common::{CHAIN_ID, Harness, SIWE_HOST as HOST, signer};

async fn nonce(h: &Harness) -> String {
    let (status, body) = h.get("/v1/auth/nonce").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["nonce"].as_str().unwrap().to_string()
}

fn message(who: &Signer, nonce: &str) -> SiweMessage {
    SiweMessage {
        domain: HOST.into(),
        address: who.address(),
        statement: Some("Sign in to QOR.".into()),
        uri: format!("http://{HOST}"),
        version: "1".into(),
        chain_id: CHAIN_ID,
        nonce: nonce.into(),
        issued_at: chrono::Utc::now().fixed_offset(),
        expiration_time: None,
        not_before: None,
        request_id: None,
        resources: vec![],
    }
}

fn personal_sign(who: &Signer, text: &str) -> String {
    let sig = who.sign_hash(&alloy_primitives::eip191_hash_message(text.as_bytes())).unwrap();
    alloy_primitives::hex::encode_prefixed(sig.as_bytes())
}

async fn sign_in(h: &Harness, text: &str, signature: &str) -> (StatusCode, Value, axum::http::HeaderMap) {
    let body = json!({ "message": text, "signature": signature }).to_string();
    let request = Request::post("/v1/auth/siwe").header(header::HOST, HOST).body(Body::from(body)).unwrap();
    let (status, bytes, headers) = h.send(request).await;
    (status, serde_json::from_slice(&bytes).unwrap(), headers)
}

async fn with_token(h: &Harness, method: &str, path: &str, token: &str) -> (StatusCode, Value) {
    let request =
        Request::builder().method(method).uri(path).header(header::AUTHORIZATION, format!("Bearer {token}")).body(Body::empty()).unwrap();
    let (status, bytes, _) = h.send(request).await;
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_signed_in_wallet_gets_a_session_with_its_roles() {
    let h = Harness::new().await;
    let (buyer, provider) = (signer(70), signer(71));
    h.add_provider(&provider, 1, 1, alloy_primitives::U256::from(1u64)).await;

    let m = message(&buyer, &nonce(&h).await);
    let text = m.to_message();
    assert_eq!(SiweMessage::parse(&text).unwrap(), m, "the text reads back as the message");
    let (status, body, headers) = sign_in(&h, &text, &personal_sign(&buyer, &text)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["roles"], json!(["buyer"]));
    let token = body["token"].as_str().unwrap().to_string();
    let cookie = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with(&format!("qor_session={token};")) && cookie.contains("HttpOnly"), "{cookie}");

    // The same signed message again: its nonce is spent.
    let (status, body, _) = sign_in(&h, &text, &personal_sign(&buyer, &text)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unknown_nonce")), "{body}");

    let (status, me) = with_token(&h, "GET", "/v1/auth/session", &token).await;
    assert_eq!((status, me["address"].clone()), (StatusCode::OK, json!(buyer.address())), "{me}");
    // The cookie works as well as the header (the browser sends that).
    let request = Request::get("/v1/me").header(header::COOKIE, format!("theme=dark; qor_session={token}")).body(Body::empty()).unwrap();
    let (status, workspace) = h.json(request).await;
    assert_eq!(status, StatusCode::OK, "{workspace}");
    assert_eq!(workspace["jobs"], json!([]));

    // A provider signs in as a provider.
    let m = message(&provider, &nonce(&h).await);
    let text = m.to_message();
    let (status, body, _) = sign_in(&h, &text, &personal_sign(&provider, &text)).await;
    assert_eq!((status, body["roles"].clone()), (StatusCode::CREATED, json!(["buyer", "provider"])), "{body}");

    // Signing out ends the session at once.
    assert_eq!(with_token(&h, "DELETE", "/v1/auth/session", &token).await.0, StatusCode::NO_CONTENT);
    let (status, body) = with_token(&h, "GET", "/v1/me", &token).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_session")), "{body}");
    let (status, body) = h.get("/v1/me").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("no_session")), "{body}");
}

#[tokio::test]
async fn a_wrong_sign_in_names_what_is_wrong() {
    let h = Harness::new().await;
    let (alice, mallory) = (signer(72), signer(73));
    type Change = Box<dyn Fn(&mut SiweMessage)>;
    let cases: Vec<(&str, Change, &str)> = vec![
        ("another site", Box::new(|m| m.domain = "evil.example".into()), "message.domain"),
        ("a URI on another site", Box::new(|m| m.uri = "https://evil.example/login".into()), "message.URI"),
        ("a URI that is no web page", Box::new(|m| m.uri = "did:pkh:eip155:1:0xabc".into()), "message.URI"),
        ("another chain", Box::new(|m| m.chain_id = 1), "message.Chain ID"),
        (
            "expired",
            Box::new(|m| m.expiration_time = Some(chrono::Utc::now().fixed_offset() - chrono::Duration::minutes(1))),
            "message.Expiration Time",
        ),
        (
            "not yet valid",
            Box::new(|m| m.not_before = Some(chrono::Utc::now().fixed_offset() + chrono::Duration::hours(1))),
            "message.Not Before",
        ),
        ("issued long ago", Box::new(|m| m.issued_at = chrono::Utc::now().fixed_offset() - chrono::Duration::days(2)), "message.Issued At"),
    ];
    for (what, change, field) in cases {
        let mut m = message(&alice, &nonce(&h).await);
        change(&mut m);
        let text = m.to_message();
        let (status, body, _) = sign_in(&h, &text, &personal_sign(&alice, &text)).await;
        assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{what}: {body}");
    }
    // A nonce the coordinator never issued.
    let text = message(&alice, "madeUp123456").to_message();
    let (status, body, _) = sign_in(&h, &text, &personal_sign(&alice, &text)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unknown_nonce")), "{body}");
    // Mallory signs a message that claims to be Alice.
    let text = message(&alice, &nonce(&h).await).to_message();
    let (status, body, _) = sign_in(&h, &text, &personal_sign(&mallory, &text)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("bad_signature")), "{body}");
    // Not an EIP-4361 message at all, and a lowercase (unchecksummed) address.
    let (status, body, _) = sign_in(&h, "hello", "0x00").await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("message.domain")), "{body}");
    let text =
        message(&alice, &nonce(&h).await).to_message().replace(&alice.address().to_checksum(None), &format!("{:#x}", alice.address()));
    let (status, body, _) = sign_in(&h, &text, &personal_sign(&alice, &text)).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("message.address")), "{body}");
    // A token that was never issued.
    let (status, _) = with_token(&h, "GET", "/v1/auth/session", &alloy_primitives::hex::encode(keccak256(b"guess"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// A coordinator that does not know its own domain cannot tell a message meant for it from one a
/// phishing site relayed: it refuses every sign-in, whatever the request's `Host` says.
#[tokio::test]
async fn without_a_configured_domain_no_sign_in_is_taken() {
    let mut cfg = crate::common::config();
    cfg.siwe_domains.clear();
    let h = Harness::with_config(cfg).await;
    let alice = signer(74);
    let mut m = message(&alice, &nonce(&h).await);
    m.domain = "evil.example".into();
    m.uri = "https://evil.example".into();
    let text = m.to_message();
    let body = json!({ "message": text, "signature": personal_sign(&alice, &text) }).to_string();
    let request = Request::post("/v1/auth/siwe").header(header::HOST, "evil.example").body(Body::from(body)).unwrap();
    let (status, bytes, _) = h.send(request).await;
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("siwe_not_configured")), "{body}");
}
