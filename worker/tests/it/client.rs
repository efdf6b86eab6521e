//! The coordinator client against a coordinator that answers too much: a JSON answer past 16 MiB and
//! a download past the client's limit are cut off as they stream in (not buffered whole, as a 2 GiB
//! answer once took a verifier to 4 GB), and a cut-off download leaves nothing on disk.

use alloy_primitives::{B256, keccak256};
use futures_util::StreamExt;
use qor_protocol::eip712::Signer;
use qor_testkit::FakeCoordinator;
use qor_testkit::axum::{self, body::Body, routing::get};
use qor_worker::client::{ClientError, Coordinator};

/// A body of `mib` MiB, streamed a MiB at a time.
fn endless(mib: usize) -> Body {
    Body::from_stream(futures_util::stream::iter(0..mib).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 1 << 20]))))
}

#[tokio::test]
async fn oversized_answers_and_downloads_are_cut_off_as_they_stream() {
    let deployment = qor_protocol::deployment::Deployment::from_json(
        br#"{"chainId": 1, "jobEscrow": "0x00000000000000000000000000000000000e5c40",
             "providerRegistry": "0x00000000000000000000000000000000005e5e5e", "verifierCommittee": "0x0000000000000000000000000000000000c0c0c0",
             "storageMarket": "0x0000000000000000000000000000000000057a4e"}"#,
    )
    .unwrap();
    let routes =
        axum::Router::new().route("/v1/jobs", get(|| async { endless(64) })).route("/v1/blobs/{hash}", get(|| async { endless(4) }));
    let fake = FakeCoordinator::start_with(deployment, routes).await;
    let mut client = Coordinator::new(&fake.base, Signer::from_bytes(&keccak256("client")).unwrap());

    let err = client.get("/v1/jobs").await.unwrap_err();
    assert!(matches!(err, ClientError::TooLarge { limit, .. } if limit == 16 << 20), "{err}");

    client.max_download_bytes = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    let err = client.download(B256::repeat_byte(7), &dest, false).await.unwrap_err();
    assert!(matches!(err, ClientError::TooLarge { limit, .. } if limit == 1 << 20), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing of it is kept");
}
