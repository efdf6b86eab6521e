//! A byzantine worker among three, on the devnet with a 2-of-3 verifier committee: `qor devnet
//! --verifiers 3 --byzantine 1` starts one worker that reports a corrupted digest for every job. A
//! buyer runs a job with `qor job run --wait`; the honest majority wins, the liar is slashed once the batch is released, `qor job verify --reexecute`
//! recomputes the settled digest from the downloaded result and from a local re-run, and the buyer
//! pays only for the two correct replicas.

use std::process::Command;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, U256};
use qor_protocol::bindings::{IJobEscrow, IProviderRegistry, IVerifierCommittee};

use crate::{Devnet, call, qor, qor_try, qor_with_progress};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byzantine_worker_loses_to_the_majority_and_is_slashed() {
    let net = Devnet::start(&["--workers", "3", "--verifiers", "3", "--byzantine", "1", "--challenge-window", "5"]);
    let (tmp, summary) = (&net.tmp, &net.summary);
    assert!(summary.contains("QOR devnet is up") && summary.contains("2 of 3 verifier signatures"), "{summary}");
    assert!(summary.contains("verifier 2"), "three verifiers run:\n{summary}");
    let escrow: Address = net.address("jobEscrow");
    let registry: Address = net.address("providerRegistry");
    let rpc = net.rpc.clone();
    let committee: Address = net.address("verifierCommittee");
    assert_eq!(call(&rpc, committee, IVerifierCommittee::thresholdCall {}).await, U256::from(2), "a settlement needs two of the three");
    assert_eq!(call(&rpc, committee, IVerifierCommittee::membersCall {}).await.len(), 3);
    let coordinator = net.coordinator.clone();
    let deployment = net.tmp.path().join("devnet/deployment.json");
    let deployment = deployment.to_str().unwrap();
    let conn = ["--coordinator", coordinator.as_str(), "--rpc-url", rpc.as_str(), "--deployment", deployment, "--json"];

    let module = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/jobs/target/wasm32-wasip1/release/hello.wasm");
    let run = tokio::task::spawn_blocking({
        let conn = conn.map(str::to_string);
        let (module, out) = (module.clone(), tmp.path().join("out"));
        move || {
            let mut args = vec!["job".to_string(), "run".into(), module.to_string_lossy().into(), "--arg".into(), "byzantine".into()];
            // Funded as given, without the run here first (`--no-quote`: the Python test covers quotes).
            args.extend(
                ["--redundancy", "3", "--no-quote", "--fuel", "100000000", "--budget", "0.01ether", "--wait", "--timeout", "120", "--out"]
                    .map(str::to_string),
            );
            args.push(out.to_string_lossy().into());
            args.extend(conn);
            qor_with_progress(&args.iter().map(String::as_str).collect::<Vec<_>>())
        }
    })
    .await
    .unwrap();
    let (run, progress) = run;
    assert_eq!(run["status"], "settled", "{run}");
    assert!(!progress.contains("ran here"), "--no-quote runs nothing here:\n{progress}");
    // `--wait` followed the job live: funding, the three replicas' reveals with their digests, the
    // committee's verdict and the settlement, in that order.
    let at = |needle: &str| progress.find(needle).unwrap_or_else(|| panic!("no {needle:?} in the progress:\n{progress}"));
    assert!(at("funded") < at("verdict") && at("verdict") < at("settled "), "{progress}");
    assert_eq!(progress.matches("revealed").count(), 3, "{progress}");
    assert!(progress.contains("digest 0x"), "{progress}");
    let id: U256 = run["jobId"].as_str().unwrap().parse().unwrap();
    let job = qor(&[&["job", "status", &id.to_string()][..], &conn[..]].concat());
    let verdict = job["timeline"].as_array().unwrap().iter().find(|t| t["kind"] == "verdict").unwrap().clone();
    let liar: Address = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc".parse().unwrap();
    assert_eq!(verdict["detail"]["losers"], serde_json::json!([format!("{liar:#x}")]), "{job}");
    assert_eq!(verdict["detail"]["winners"].as_array().unwrap().len(), 2, "{job}");

    // Hash it yourself, and re-run it here: the settled digest is the honest one.
    let verified = qor(&[&["job", "verify", &id.to_string(), "--reexecute"][..], &conn[..]].concat());
    assert_eq!(verified["recomputed"], verified["settledDigest"], "{verified}");
    assert_eq!(verified["reexecuted"], verified["settledDigest"], "{verified}");

    // Storage from the terminal: store the job's output, wait for a provider to host it, ask that
    // provider for a proof of a chunk now, and download the file checked chunk by chunk.
    let stored = tmp.path().join("stored.bin");
    std::fs::write(&stored, (0..300_000u32).map(|i| (i * 31 % 253) as u8).collect::<Vec<u8>>()).unwrap();
    let put = qor(&[&["store", "put", stored.to_str().unwrap(), "--periods", "2", "--period-length", "20"][..], &conn[..]].concat());
    let deal = put["dealId"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(90);
    while qor_try(&[&["store", "status", &deal][..], &conn[..]].concat()).is_none_or(|d| d["chainStatus"] != "active") {
        assert!(Instant::now() < deadline, "deal {deal} was not hosted");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // While it runs (2 periods of 20 blocks), a provider that proves its periods cannot be dropped: cancelling or re-opening the deal is refused
    // by the market, with its reason.
    for action in ["cancel", "reopen"] {
        let out = Command::new(env!("CARGO_BIN_EXE_qor")).args([&["store", action, &deal][..], &conn[..]].concat()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("StorageMarket_ProviderInGoodStanding"), "store {action}: {err}");
    }
    let probe = qor(&[&["store", "challenge", &deal, "--chunk", "7"][..], &conn[..]].concat());
    assert_eq!(
        (probe["valid"].as_bool(), probe["chunkIndex"].as_u64(), probe["chunks"].as_u64()),
        (Some(true), Some(7), Some(293)),
        "{probe}"
    );
    assert_eq!(probe["root"], put["root"], "{probe}");
    let random = qor(&[&["store", "challenge", &deal][..], &conn[..]].concat());
    assert_eq!(random["valid"], true, "{random}");
    let got = qor(&[&["store", "get", &deal, "--out", tmp.path().join("got.bin").to_str().unwrap()][..], &conn[..]].concat());
    assert_eq!(got["bytes"], 300_000, "{got}");
    assert_eq!(std::fs::read(tmp.path().join("got.bin")).unwrap(), std::fs::read(&stored).unwrap());
    // A chunk past the end is refused before anything is asked.
    let out = Command::new(env!("CARGO_BIN_EXE_qor"))
        .args([&["store", "challenge", &deal, "--chunk", "293"][..], &conn[..]].concat())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has 293 chunks"), "{}", String::from_utf8_lossy(&out.stderr));

    // A coordinator that names another escrow is refused before the buyer sends anything.
    let mut theirs = qor_protocol::deployment::Deployment::from_json(&std::fs::read(deployment).unwrap()).unwrap();
    theirs.job_escrow = Address::repeat_byte(0x66);
    let fake = qor_testkit::FakeCoordinator::start(theirs).await;
    let jobs_before = call(&rpc, escrow, IJobEscrow::nextJobIdCall {}).await;
    let out = tokio::task::spawn_blocking({
        let args: Vec<String> =
            ["job", "run", module.to_str().unwrap(), "--coordinator", &fake.base, "--rpc-url", &rpc, "--deployment", deployment]
                .map(str::to_string)
                .to_vec();
        move || Command::new(env!("CARGO_BIN_EXE_qor")).args(&args).output().unwrap()
    })
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("names another deployment") && err.contains("jobEscrow 0x6666"), "{err}");
    assert_eq!(call(&rpc, escrow, IJobEscrow::nextJobIdCall {}).await, jobs_before, "nothing was funded");

    // Released after the window: the liar is slashed, the buyer pays the two winners only.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if call(&rpc, escrow, IJobEscrow::computeJobStatusCall { jobId: id }).await as u8 == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "the job was not released");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let p = call(&rpc, registry, IProviderRegistry::getProviderCall { provider: liar }).await;
    assert_eq!((p.jobsFailed, p.timesSlashed), (1, 1), "{p:?}");
    let buyer: Address = "0x90f79bf6eb2c4f870365e785982e1f101e93b906".parse().unwrap();
    let refund = call(&rpc, escrow, IJobEscrow::balanceOfCall { account: buyer, token: Address::ZERO }).await;
    let budget = U256::from(10u64.pow(16));
    let receipts = job["receipts"].as_array().unwrap();
    let fuel = receipts.iter().find(|r| r["worker"] != serde_json::json!(format!("{liar:#x}"))).unwrap()["fuelUsed"].as_u64().unwrap();
    // Two winners at the devnet's price (10^7 wei per fuel) for the fuel they used.
    let price = U256::from(2u64) * U256::from(10_000_000u64) * U256::from(fuel);
    assert_eq!(refund, budget - price, "the buyer pays for two correct replicas, not three");
}
