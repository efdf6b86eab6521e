//! The binary's front door: `init` writes a config that `run` reads; bad settings and a key outside
//! the committee are refused with an error that names what is wrong.

use std::process::Command;

use qor_testkit::{Anvil, Coordinator, PROVIDER_KEY};
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

#[test]
fn bad_settings_name_their_field() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("v.toml");
    let ok = VerifierConfig::new("http://127.0.0.1:1", "http://127.0.0.1:2");
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
        std::fs::write(&path, format!("coordinator = \"http://127.0.0.1:1\"\nrpc-url = \"http://127.0.0.1:2\"\n{line}\n")).unwrap();
        let err = format!("{:#}", VerifierConfig::load(&path).unwrap_err());
        assert!(err.contains(field), "{line}: {err}");
    }
    std::fs::write(&path, "coordinator = \"ftp://x\"\nrpc-url = \"http://127.0.0.1:2\"\n").unwrap();
    assert!(format!("{:#}", VerifierConfig::load(&path).unwrap_err()).contains("`coordinator`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_outside_the_committee_is_refused() {
    let anvil = Anvil::start();
    let tmp = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(tmp.path(), &anvil).await;
    let config = tmp.path().join("v.toml");
    let out = qor_verifier(&config, &["init", "--coordinator", &coordinator.base, "--rpc-url", &anvil.url], PROVIDER_KEY);
    assert!(out.status.success(), "{out:?}");
    let config2 = config.clone();
    let out = tokio::task::spawn_blocking(move || qor_verifier(&config2, &["run"], PROVIDER_KEY)).await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("is not a member of the VerifierCommittee"), "{err}");
    let out = tokio::task::spawn_blocking(move || qor_verifier(&config, &["run"], "0x1234")).await.unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("QOR_VERIFIER_KEY"), "{out:?}");
}
