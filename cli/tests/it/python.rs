//! A Python job on the devnet: `qor job quote analysis.py --input data.csv` runs it here on the pinned
//! CPython and prices the exact fuel; `qor job run` funds it with that fuel as its limit, three workers
//! run it to a settled digest, and every replica's signed receipt reports the quoted fuel.

use std::path::PathBuf;

use serde_json::Value;

use crate::{Devnet, qor, qor_with_progress};

/// Runs on a devnet of three honest workers another test already started (one devnet for both).
pub(crate) async fn a_python_job_settles_at_the_fuel_it_was_quoted(net: &Devnet) {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/python");
    let (script, data) = (examples.join("analysis.py"), examples.join("data.csv"));
    let deployment = net.tmp.path().join("devnet/deployment.json");
    let conn: Vec<String> =
        ["--coordinator", &net.coordinator, "--rpc-url", &net.rpc, "--deployment", deployment.to_str().unwrap(), "--json"]
            .map(str::to_string)
            .to_vec();
    let job = |verb: &str, extra: &[&str]| -> Vec<String> {
        let mut args =
            vec!["job".to_string(), verb.into(), script.to_string_lossy().into(), "--input".into(), data.to_string_lossy().into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(conn.iter().cloned());
        args
    };
    let quote = tokio::task::spawn_blocking({
        let args = job("quote", &[]);
        move || qor(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert_eq!(quote["runtime"], "python 3.12.0", "{quote}");
    assert_eq!(quote["exitCode"], 0, "{quote}");
    let fuel = quote["fuel"].as_u64().unwrap();
    assert!(fuel > 100_000_000, "CPython starting up alone takes more: {quote}");
    assert_eq!(quote["providers"].as_array().unwrap().len(), 3, "{quote}");
    // The fuel limit is one more than the fuel used, and the price covers it: each of the three at the
    // highest winner's price per fuel (read from the registry).
    let per_fuel: u128 = quote["pricePerFuel"].as_str().unwrap().parse().unwrap();
    assert!(per_fuel > 0, "{quote}");
    assert_eq!(quote["price"], (per_fuel * u128::from(fuel + 1) * 3).to_string(), "{quote}");

    let out = net.tmp.path().join("python-out");
    let (run, progress) = tokio::task::spawn_blocking({
        let args = job("run", &["--wait", "--timeout", "300", "--out", out.to_str().unwrap()]);
        move || qor_with_progress(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert_eq!(run["status"], "settled", "{run}\n{progress}");
    assert!(progress.contains(&format!("{fuel} fuel")), "run showed the quote first:\n{progress}");
    let id = run["jobId"].as_str().unwrap();
    let status: Value = qor(&[&["job", "status", id][..], &conn.iter().map(String::as_str).collect::<Vec<_>>()[..]].concat());
    let receipts = status["receipts"].as_array().unwrap();
    assert_eq!(receipts.len(), 3, "{status}");
    for r in receipts {
        assert_eq!(r["fuelUsed"].as_u64(), Some(fuel), "every replica's receipt reports the quoted fuel: {status}");
        assert_eq!(r["resultDigest"], quote["resultDigest"], "{status}");
    }
    let summary: Value = serde_json::from_slice(&std::fs::read(out.join(id).join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["sites"].as_object().unwrap().len(), 3, "{summary}");
}
