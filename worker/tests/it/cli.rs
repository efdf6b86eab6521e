//! `qor-worker init` and its config and keystore: created, read back, refused when wrong.

use std::process::Command;

use qor_worker::config::{WorkerConfig, parse_amount};
use qor_worker::keys::{self, Passphrase};

const KEY: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";

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
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--passphrase-file",
        pass.to_str().unwrap(),
        "init",
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
    let keystore = cfg.keystore.clone().unwrap();
    let text = std::fs::read_to_string(&keystore).unwrap();
    assert!(text.contains("\"crypto\"") && !text.contains(&KEY[2..]), "encrypted, not the key in clear");
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
        let out = Command::new(env!("CARGO_BIN_EXE_qor-worker"))
            .args(["--config", config.to_str().unwrap(), "init", "--key-from-env", flag, value])
            .env("QOR_WORKER_KEY", KEY)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(named), "{flag} {value}: {err}");
    }
    // Without a key anywhere, commands say how to get one.
    std::fs::write(&config, toml_without_key(tmp.path())).unwrap();
    let out = qor_worker(&["--config", config.to_str().unwrap(), "status"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("QOR_WORKER_KEY"), "{}", String::from_utf8_lossy(&out.stderr));

    assert_eq!(parse_amount("1.5ether").unwrap().to_string(), "1500000000000000000");
    assert_eq!(parse_amount("100gwei").unwrap().to_string(), "100000000000");
    assert_eq!(parse_amount("42").unwrap().to_string(), "42");
    for bad in ["", "1.5", "-1ether", "1e18", "0.0000000000000000001ether"] {
        assert!(parse_amount(bad).is_err(), "{bad}");
    }
}

fn toml_without_key(dir: &std::path::Path) -> String {
    format!(
        "coordinator = \"http://127.0.0.1:1\"\nrpc-url = \"http://127.0.0.1:1\"\ndata-dir = \"{}\"\nprice-per-fuel = \"1\"\nmax-jobs = 1\nstorage-quota-bytes = 1\nregion = \"x\"\n",
        dir.join("data").display()
    )
}
