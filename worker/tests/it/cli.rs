//! `qor-worker init` and its config and keystore: created, read back, refused when wrong.

use std::process::Command;

use qor_worker::config::{WorkerConfig, parse_amount};
use qor_worker::keys::{self, Passphrase};

const KEY: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";

/// A deployment file, as `anvil/deploy.sh` writes one.
fn deployment_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("31337.json");
    std::fs::write(
        &path,
        r#"{"chainId": 31337, "deployBlock": 1, "owner": "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
            "jobEscrow": "0x948b3c65b89df0b4894abe91e6d02fe579834f8f", "providerRegistry": "0x8464135c8f25da09e49bc8782676a84730c318bc",
            "verifierCommittee": "0x71c95911e9a5d330f4d621842ec243ee1343292e",
            "storageMarket": "0x712516e61c8b383df4a63cfe83d7701bce54b03e"}"#,
    )
    .unwrap();
    path
}

fn qor_worker(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_qor-worker"))
        .args(args)
        .env_remove("QOR_WORKER_KEY")
        .env_remove("QOR_WORKER_PASSPHRASE")
        .output()
        .unwrap()
}

#[test]
fn init_imports_a_key_into_an_encrypted_keystore() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, pass) = (tmp.path().join("w.toml"), tmp.path().join("pass"));
    std::fs::write(&pass, "correct horse\n").unwrap();
    let data = tmp.path().join("data");
    let deployment = deployment_file(tmp.path());
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--passphrase-file",
        pass.to_str().unwrap(),
        "init",
        "--deployment",
        deployment.to_str().unwrap(),
        "--import-key",
        KEY,
        "--data-dir",
        data.to_str().unwrap(),
        "--storage-quota",
        "512MiB",
        "--max-jobs",
        "3",
        "--region",
        "eu-west",
    ];
    let out = qor_worker(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"));

    let cfg = WorkerConfig::load(&config).unwrap();
    assert_eq!((cfg.max_jobs, cfg.storage_quota_bytes, cfg.region.as_str()), (3, 512 << 20, "eu-west"));
    assert_eq!(format!("{:#x}", cfg.deployment.provider_registry), "0x8464135c8f25da09e49bc8782676a84730c318bc", "pinned at init");
    let keystore = cfg.keystore.clone().unwrap();
    let text = std::fs::read_to_string(&keystore).unwrap();
    assert!(text.contains("\"crypto\"") && !text.contains(&KEY[2..]), "encrypted, not the key in clear");
    // Only its owner can read it, in a folder only its owner can enter, behind geth's standard scrypt
    // cost (about a second and 256 MiB per passphrase tried).
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&keystore).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(keystore.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!((doc["crypto"]["kdfparams"]["n"].as_u64(), doc["crypto"]["kdfparams"]["r"].as_u64()), (Some(1 << 18), Some(8)), "{doc}");
    let signer = keys::load(Some(&keystore), &Passphrase { file: Some(pass.clone()) }).unwrap();
    assert_eq!(format!("{:#x}", signer.address()), "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc");

    std::fs::write(&pass, "wrong\n").unwrap();
    let err = keys::load(Some(&keystore), &Passphrase { file: Some(pass.clone()) }).unwrap_err();
    assert!(format!("{err:#}").contains("wrong passphrase"), "{err:#}");

    // A second init does not overwrite without --force.
    let out = qor_worker(&args);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--force"));
}

#[test]
fn bad_settings_and_amounts_name_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("w.toml");
    for (flag, value, named) in [
        ("--max-jobs", "0", "max-jobs"),
        ("--coordinator", "ftp://x", "coordinator"),
        ("--price-per-fuel", "cheap", "price-per-fuel"),
        ("--storage-quota", "lots", "lots"),
    ] {
        let deployment = deployment_file(tmp.path());
        let out = Command::new(env!("CARGO_BIN_EXE_qor-worker"))
            .args([
                "--config",
                config.to_str().unwrap(),
                "init",
                "--key-from-env",
                "--deployment",
                deployment.to_str().unwrap(),
                flag,
                value,
            ])
            .env("QOR_WORKER_KEY", KEY)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(named), "{flag} {value}: {err}");
    }
    // A config from before deployments were pinned says how to pin one.
    std::fs::write(&config, toml_without_key(tmp.path())).unwrap();
    let out = qor_worker(&["--config", config.to_str().unwrap(), "status"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--deployment"), "{}", String::from_utf8_lossy(&out.stderr));
    // A deployment file that is not one is named.
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, r#"{"chainId": 1}"#).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_qor-worker"))
        .args(["--config", tmp.path().join("w2.toml").to_str().unwrap(), "init", "--key-from-env", "--deployment", bad.to_str().unwrap()])
        .env("QOR_WORKER_KEY", KEY)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("jobEscrow"), "{err}");
    // Without a key anywhere, commands say how to get one.
    std::fs::write(&config, toml_without_key(tmp.path()) + DEPLOYMENT_TOML).unwrap();
    let out = qor_worker(&["--config", config.to_str().unwrap(), "status"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("QOR_WORKER_KEY"), "{}", String::from_utf8_lossy(&out.stderr));

    assert_eq!(parse_amount("1.5ether").unwrap().to_string(), "1500000000000000000");
    assert_eq!(parse_amount("100gwei").unwrap().to_string(), "100000000000");
    assert_eq!(parse_amount("42").unwrap().to_string(), "42");
    for bad in ["", "1.5", "-1ether", "1e18", "0.0000000000000000001ether"] {
        assert!(parse_amount(bad).is_err(), "{bad}");
    }
}

const DEPLOYMENT_TOML: &str = "[deployment]\nchainId = 31337\njobEscrow = \"0xe5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5\"\nproviderRegistry = \"0x5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e\"\nverifierCommittee = \"0xc0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0\"\nstorageMarket = \"0x5757575757575757575757575757575757575757\"\n";

fn toml_without_key(dir: &std::path::Path) -> String {
    format!(
        "coordinator = \"http://127.0.0.1:1\"\nrpc-url = \"http://127.0.0.1:1\"\ndata-dir = \"{}\"\nprice-per-fuel = \"1\"\nmax-jobs = 1\nstorage-quota-bytes = 1\nregion = \"x\"\n",
        dir.join("data").display()
    )
}
