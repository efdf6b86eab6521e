//! The binary's front door: `init` writes a config that `run` reads; bad settings and a key outside
//! the committee are refused with an error that names what is wrong.

use std::process::Command;

use alloy_primitives::Address;
use qor_protocol::deployment::Deployment;
use qor_testkit::{Anvil, Coordinator, DEPLOYER_KEY, FakeCoordinator, PROVIDER_KEY};
use qor_verifier::config::VerifierConfig;

fn qor_verifier(config: &std::path::Path, args: &[&str], key: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_qor-verifier"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("QOR_VERIFIER_KEY", key)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn deployment() -> Deployment {
    Deployment {
        chain_id: 31337,
        deploy_block: 1,
        job_escrow: Address::repeat_byte(0xe5),
        provider_registry: Address::repeat_byte(0x5e),
        verifier_committee: Address::repeat_byte(0xc0),
        storage_market: Address::repeat_byte(0x57),
    }
}

const DEPLOYMENT_TOML: &str = "[deployment]\nchainId = 31337\njobEscrow = \"0xe5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5\"\nproviderRegistry = \"0x5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e\"\nverifierCommittee = \"0xc0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0\"\nstorageMarket = \"0x5757575757575757575757575757575757575757\"\n";

#[test]
fn bad_settings_name_their_field() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("v.toml");
    let ok = VerifierConfig::new("http://127.0.0.1:1", "http://127.0.0.1:2", deployment());
    ok.save(&path, false).unwrap();
    assert_eq!(VerifierConfig::load(&path).unwrap(), ok);
    assert!(ok.save(&path, false).unwrap_err().to_string().contains("--force"), "never overwritten silently");
    for (line, field) in [
        ("batch-size = 0", "batch-size"),
        ("batch-size = 300", "batch-size"),
        ("max-replicas = 12", "max-replicas"),
        ("reexec-fraction = 1.5", "reexec-fraction"),
        ("fee-bump-percent = 5", "fee-bump-percent"),
        ("poll-ms = 0", "poll-ms"),
        ("batch-sise = 3", "batch-sise"),
    ] {
        let text = format!("coordinator = \"http://127.0.0.1:1\"\nrpc-url = \"http://127.0.0.1:2\"\n{line}\n{DEPLOYMENT_TOML}");
        std::fs::write(&path, text).unwrap();
        let err = format!("{:#}", VerifierConfig::load(&path).unwrap_err());
        assert!(err.contains(field), "{line}: {err}");
    }
    std::fs::write(&path, format!("coordinator = \"ftp://x\"\nrpc-url = \"http://127.0.0.1:2\"\n{DEPLOYMENT_TOML}")).unwrap();
    assert!(format!("{:#}", VerifierConfig::load(&path).unwrap_err()).contains("`coordinator`"));
    // A config from before deployments were pinned says how to pin one.
    std::fs::write(&path, "coordinator = \"http://127.0.0.1:1\"\nrpc-url = \"http://127.0.0.1:2\"\n").unwrap();
    assert!(format!("{:#}", VerifierConfig::load(&path).unwrap_err()).contains("--deployment"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_outside_the_committee_is_refused() {
    let anvil = Anvil::start();
    let tmp = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(tmp.path(), &anvil).await;
    let config = tmp.path().join("v.toml");
    let deployment = anvil.deployment_file.to_str().unwrap();
    let out = qor_verifier(
        &config,
        &["init", "--coordinator", &coordinator.base, "--rpc-url", &anvil.url, "--deployment", deployment],
        PROVIDER_KEY,
    );
    assert!(out.status.success(), "{out:?}");
    let config2 = config.clone();
    let out = tokio::task::spawn_blocking(move || qor_verifier(&config2, &["run"], PROVIDER_KEY)).await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("is not a member of the VerifierCommittee"), "{err}");
    let out = tokio::task::spawn_blocking(move || qor_verifier(&config, &["run"], "0x1234")).await.unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("QOR_VERIFIER_KEY"), "{out:?}");
}

/// A coordinator that names other contracts than the pinned ones (its own committee, say) is refused
/// before the verifier signs or sends anything, with what differs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_naming_another_deployment_is_refused() {
    let anvil = Anvil::start();
    let tmp = tempfile::tempdir().unwrap();
    let mut theirs = anvil.pinned();
    theirs.verifier_committee = Address::repeat_byte(0x66);
    let fake = FakeCoordinator::start(theirs).await;
    let config = tmp.path().join("v.toml");
    let deployment = anvil.deployment_file.to_str().unwrap();
    let out =
        qor_verifier(&config, &["init", "--coordinator", &fake.base, "--rpc-url", &anvil.url, "--deployment", deployment], DEPLOYER_KEY);
    assert!(out.status.success(), "{out:?}");
    let out = tokio::task::spawn_blocking(move || qor_verifier(&config, &["run"], DEPLOYER_KEY)).await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("names another deployment") && err.contains("verifierCommittee 0x6666"), "{err}");
}
