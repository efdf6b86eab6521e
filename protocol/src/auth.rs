//! Signed HTTP requests: how a worker (or the verifier) proves to the coordinator who sent a request.
//!
//! The signer signs, with EIP-191 `personal_sign` (so a wallet can sign it too), the message
//!
//! ```text
//! QOR request
//! <METHOD> <path and query>
//! timestamp: <unix milliseconds>
//! nonce: <nonce>
//! body: <0x keccak256 of the body>
//! ```
//!
//! and sends the address, timestamp, nonce and signature in the [`ADDRESS`], [`TIMESTAMP`], [`NONCE`]
//! and [`SIGNATURE`] headers. The coordinator refuses a timestamp outside its window and a nonce the
//! same address used before, so a captured request cannot be replayed.

use alloy_primitives::{Address, B256, Signature, eip191_hash_message, keccak256};

use crate::eip712::{SignatureError, Signer, recover};

/// Header carrying the signer's address.
pub const ADDRESS: &str = "x-qor-address";
/// Header carrying the request time, unix milliseconds.
pub const TIMESTAMP: &str = "x-qor-timestamp";
/// Header carrying a string the signer never used before (at most 64 characters).
pub const NONCE: &str = "x-qor-nonce";
/// Header carrying the 65-byte signature, 0x-hex.
pub const SIGNATURE: &str = "x-qor-signature";

/// The text that is signed.
pub fn request_message(method: &str, path_and_query: &str, timestamp_ms: u64, nonce: &str, body: &[u8]) -> String {
    format!("QOR request\n{method} {path_and_query}\ntimestamp: {timestamp_ms}\nnonce: {nonce}\nbody: {}", keccak256(body))
}

/// The EIP-191 digest of [`request_message`].
pub fn request_digest(method: &str, path_and_query: &str, timestamp_ms: u64, nonce: &str, body: &[u8]) -> B256 {
    eip191_hash_message(request_message(method, path_and_query, timestamp_ms, nonce, body))
}

/// The four headers for a request, as (name, value) pairs.
pub fn sign_request(
    signer: &Signer,
    method: &str,
    path_and_query: &str,
    timestamp_ms: u64,
    nonce: &str,
    body: &[u8],
) -> Result<[(&'static str, String); 4], SignatureError> {
    let signature = signer.sign_hash(&request_digest(method, path_and_query, timestamp_ms, nonce, body))?;
    Ok([
        (ADDRESS, signer.address().to_string()),
        (TIMESTAMP, timestamp_ms.to_string()),
        (NONCE, nonce.to_string()),
        (SIGNATURE, alloy_primitives::hex::encode_prefixed(signature.as_bytes())),
    ])
}

/// The address that signed a request.
pub fn recover_request(
    method: &str,
    path_and_query: &str,
    timestamp_ms: u64,
    nonce: &str,
    body: &[u8],
    signature: &Signature,
) -> Result<Address, SignatureError> {
    recover(&request_digest(method, path_and_query, timestamp_ms, nonce, body), signature)
}
