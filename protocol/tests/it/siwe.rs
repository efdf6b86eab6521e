//! EIP-4361 messages: the EIP's own example, viem's layout without a statement, optional fields and
//! resources, and the errors that name the wrong line.

use alloy_primitives::{Address, eip191_hash_message};
use qor_protocol::eip712::Signer;
use qor_protocol::siwe::{SiweError, SiweMessage, recover_signer};

/// The example message of EIP-4361.
const EIP_EXAMPLE: &str = "service.org wants you to sign in with your Ethereum account:
0xe5A12547fe4E872D192E3eCecb76F2Ce1aeA4946

I accept the ServiceOrg Terms of Service: https://service.org/tos

URI: https://service.org/login
Version: 1
Chain ID: 1
Nonce: 32891756
Issued At: 2021-09-30T16:25:24Z
Resources:
- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/
- https://example.com/my-web2-claim.json";

#[test]
fn the_eip_example_reads_and_writes_back_the_same() {
    let m = SiweMessage::parse(EIP_EXAMPLE).unwrap();
    assert_eq!(m.domain, "service.org");
    assert_eq!(m.address, "0xe5A12547fe4E872D192E3eCecb76F2Ce1aeA4946".parse::<Address>().unwrap());
    assert_eq!(m.statement.as_deref(), Some("I accept the ServiceOrg Terms of Service: https://service.org/tos"));
    assert_eq!((m.chain_id, m.nonce.as_str()), (1, "32891756"));
    assert_eq!(m.resources.len(), 2);
    assert_eq!(m.to_message(), EIP_EXAMPLE);
}

#[test]
fn viem_layout_without_a_statement_and_optional_fields() {
    // viem's createSiweMessage: no blank line for a missing statement, ISO times with milliseconds.
    let text = "localhost:5173 wants you to sign in with your Ethereum account:
0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266

URI: http://localhost:5173
Version: 1
Chain ID: 31337
Nonce: a1b2c3d4e5f6
Issued At: 2026-11-22T17:00:00.123Z
Expiration Time: 2026-11-22T18:00:00.000Z
Not Before: 2026-11-22T16:59:00.000Z
Request ID: req-7";
    let m = SiweMessage::parse(text).unwrap();
    assert_eq!(m.statement, None);
    assert_eq!(m.issued_at.timestamp_millis() % 1000, 123);
    assert!(m.expiration_time.is_some() && m.not_before.is_some());
    assert_eq!(m.request_id.as_deref(), Some("req-7"));
}

#[test]
fn a_signature_recovers_its_signer() {
    let who = Signer::from_bytes(&alloy_primitives::keccak256(b"siwe")).unwrap();
    let sig = who.sign_hash(&eip191_hash_message(EIP_EXAMPLE.as_bytes())).unwrap();
    assert_eq!(recover_signer(EIP_EXAMPLE, &sig).unwrap(), who.address());
    assert_ne!(recover_signer(&EIP_EXAMPLE.replace("Chain ID: 1", "Chain ID: 2"), &sig).unwrap(), who.address());
}

#[test]
fn errors_name_the_wrong_line() {
    let cases = [
        (EIP_EXAMPLE.replace(" wants you to sign in", " would like you to sign in"), "domain"),
        (EIP_EXAMPLE.replace("0xe5A12547fe4E872D192E3eCecb76F2Ce1aeA4946", "0xe5a12547fe4e872d192e3ececb76f2ce1aea4946"), "address"),
        (EIP_EXAMPLE.replace("Version: 1", "Version: 2"), "Version"),
        (EIP_EXAMPLE.replace("Chain ID: 1", "Chain ID: one"), "Chain ID"),
        (EIP_EXAMPLE.replace("Nonce: 32891756", "Nonce: 123"), "Nonce"),
        (EIP_EXAMPLE.replace("2021-09-30T16:25:24Z", "yesterday"), "Issued At"),
        (EIP_EXAMPLE.replace("URI: ", "Url: "), "URI"),
        (EIP_EXAMPLE.replace("- ipfs", "ipfs"), "Resources"),
        (EIP_EXAMPLE.replace("Resources:", "Extra: 1\nResources:"), "message"),
    ];
    for (text, field) in cases {
        let err = SiweMessage::parse(&text).unwrap_err();
        assert_eq!(err.field(), field, "{err}");
    }
    assert_eq!(SiweMessage::parse(&EIP_EXAMPLE[..200]).unwrap_err(), SiweError::Missing("Version"));
}
