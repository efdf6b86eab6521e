//! Storage verification end to end: two `qor-worker` daemons host a file each; one then loses its
//! copy. The `qor-verifier` binary challenges every period at the chunk the storage market derives, checks the
//! answers against the deals' roots, attests the passed periods and settles: the honest provider is
//! paid for every period, the other misses every one and is slashed.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy_primitives::U256;
use alloy_sol_types::SolEvent;
use qor_protocol::bindings::IProviderRegistry;
use qor_protocol::bindings::IStorageMarket::{self, StorageDealStatus};
use qor_protocol::eip712::Signer;
use qor_testkit::{Anvil, BUYER_KEY, Coordinator, DEPLOYER_KEY, ETHER, PROVIDER_KEY, PROVIDER2_KEY, wait_for, workspace_binary};

use crate::service::{Verifier, call};

struct Worker {
    config: std::path::PathBuf,
    key: &'static str,
    child: Option<Child>,
}

impl Worker {
    fn cli(&self, args: &[&str]) {
        let out = Command::new(workspace_binary("qor-worker"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("QOR_WORKER_KEY", self.key)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "qor-worker {args:?}: {out:?}");
    }

    fn init(dir: &Path, base: &str, anvil: &Anvil, key: &'static str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let w = Self { config: dir.join("qor-worker.toml"), key, child: None };
        let data = dir.join("data");
        let deployment = anvil.deployment_file.to_str().unwrap();
        w.cli(&[
            "init",
            "--coordinator",
            base,
            "--rpc-url",
            &anvil.url,
            "--deployment",
            deployment,
            "--data-dir",
            data.to_str().unwrap(),
            "--key-from-env",
        ]);
        w.cli(&["register", "--stake", "1ether"]);
        w
    }

    fn start(&mut self, log: &Path) {
        let log = std::fs::File::create(log).unwrap();
        let child = Command::new(workspace_binary("qor-worker"))
            .arg("--config")
            .arg(&self.config)
            .arg("run")
            .env("QOR_WORKER_KEY", self.key)
            .env("RUST_LOG", "qor_worker=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_periods_are_challenged_attested_and_a_lost_file_is_slashed() {
    let anvil = Anvil::start();
    let tmp = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(tmp.path(), &anvil).await;
    let base = coordinator.base.clone();
    let (market, registry) = (anvil.address("storageMarket"), anvil.address("providerRegistry"));
    let address = |key: &str| Signer::from_bytes(&key.parse().unwrap()).unwrap().address();
    let (honest, careless) = (address(PROVIDER_KEY), address(PROVIDER2_KEY));

    let mut w1 = Worker::init(&tmp.path().join("w1"), &base, &anvil, PROVIDER_KEY);
    let mut w2 = Worker::init(&tmp.path().join("w2"), &base, &anvil, PROVIDER2_KEY);
    w1.start(&tmp.path().join("w1.log"));
    w2.start(&tmp.path().join("w2.log"));

    // One chunk each (the chunk is 1 KiB): two periods of four blocks.
    let a: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let b: Vec<u8> = (0..1000u32).map(|i| (i % 13) as u8).collect();
    let (_, kept) = anvil.fund_storage_deal_for(&base, BUYER_KEY, &a, 2, honest).await;
    let (_, lost) = anvil.fund_storage_deal_for(&base, BUYER_KEY, &b, 2, careless).await;
    for deal in [kept, lost] {
        wait_for("the deals to be active", 60, async || {
            let d = call(&anvil, market, IStorageMarket::getStorageDealCall { dealId: deal }).await;
            (d.status == StorageDealStatus::Active).then_some(())
        })
        .await;
    }
    // The careless provider loses its copy: the chunk is gone (zeros on disk).
    let hosted = tmp.path().join(format!("w2/data/storage/{lost}.bin"));
    let len = std::fs::metadata(&hosted).unwrap_or_else(|e| panic!("{}: {e}", hosted.display())).len();
    std::fs::write(&hosted, vec![0u8; len as usize]).unwrap();
    let stake_before = call(&anvil, registry, IProviderRegistry::getProviderCall { provider: careless }).await.stake;
    let buyer = address(BUYER_KEY);
    let buyer_before = call(&anvil, market, IStorageMarket::balanceOfCall { account: buyer }).await;

    let mut v = Verifier::init(&tmp.path().join("v"), &base, &anvil, DEPLOYER_KEY);
    v.start(None);
    // Blocks come one every 300 ms until both deals are settled to the end.
    wait_for("both deals to be completed", 120, async || {
        anvil.mine(1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let k = call(&anvil, market, IStorageMarket::getStorageDealCall { dealId: kept }).await;
        let l = call(&anvil, market, IStorageMarket::getStorageDealCall { dealId: lost }).await;
        (k.status == StorageDealStatus::Completed && l.status == StorageDealStatus::Completed).then_some(())
    })
    .await;

    // The honest provider was paid for both periods (1,000 wei each, less the 10% fee).
    let paid = call(&anvil, market, IStorageMarket::balanceOfCall { account: honest }).await;
    assert_eq!(paid, U256::from(1_800), "{}", v.log());
    // The careless one earned nothing and was slashed for both periods; the buyer got the price back
    // and the slashed stake.
    let unpaid = call(&anvil, market, IStorageMarket::balanceOfCall { account: careless }).await;
    assert_eq!(unpaid, U256::ZERO);
    let p = call(&anvil, registry, IProviderRegistry::getProviderCall { provider: careless }).await;
    assert!(p.timesSlashed > 0 && p.stake < stake_before, "{p:?}");
    assert_eq!(p.jobsFailed, 2, "{p:?}");
    let buyer_after = call(&anvil, market, IStorageMarket::balanceOfCall { account: buyer }).await;
    assert!(buyer_after >= buyer_before + U256::from(2_000), "refund and slashed stake: {buyer_before} -> {buyer_after}");
    assert!(buyer_after > buyer_before + U256::from(2_000), "the slashed stake went to the buyer");
    let log = v.log();
    assert!(log.contains("storage period missed"), "{log}");
    let m = v.metrics().await;
    // Each of the honest provider's periods was covered on chain: attested by the committee, or (when
    // the attestation was late in the period's proof window) proven by the provider itself.
    let filter = Filter::new().address(market).event_signature(IStorageMarket::StoragePeriodProven::SIGNATURE_HASH).from_block(0);
    let proven = anvil.wallet(BUYER_KEY).get_logs(&filter).await.unwrap().len() as u64;
    let attested = Verifier::metric(&m, "qor_verifier_storage_periods_attested_total");
    assert!(attested + proven >= 2 && attested <= 2, "attested {attested}, proven by the provider {proven}: {m}");
    assert_eq!(Verifier::metric(&m, "qor_verifier_storage_periods_missed_total"), 2, "{m}");
    let _ = ETHER;
}
