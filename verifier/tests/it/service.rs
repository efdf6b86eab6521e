//! Compute verification end to end. Four providers run every job they are given in the sandbox; a
//! job's first argument can make the first provider to take it lie (`lie-once`, `tie`), seal and
//! never reveal (`silent-once`), or take the lease and never seal (`mute-once`); and a lying
//! coordinator can list a replica its provider never took. The `qor-verifier` binary judges, records verdicts, settles in
//! batches and finalizes; it is killed right after sending a settlement (before its receipt) and
//! started again next to a second committee member, and each job must be settled exactly once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::network::TransactionBuilder;
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, TransactionRequest};
use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_sol_types::{SolCall, SolEvent};
use qor_protocol::bindings::IJobEscrow::{self, Receipt};
use qor_protocol::bindings::IProviderRegistry::{self, ProviderMetadata};
use qor_protocol::bindings::IVerifierCommittee;
use qor_protocol::eip712::{Signer, escrow_domain};
use qor_protocol::spec::{JobSpec, Limits};
use qor_protocol::worker_requests::{acceptance_body, receipt_body, seal_body};
use qor_testkit::{Anvil, BUYER_KEY, Coordinator, DEPLOYER_KEY, ETHER, PROVIDER_KEY, PROVIDER2_KEY, wait_for};
use qor_worker::client::Coordinator as Client;
use qor_worker::sandbox::{Outcome, Sandbox};
use serde_json::{Value, json};

/// anvil's accounts 0 (the contracts' owner), 5, 6 and 7.
pub(crate) const ACCOUNT0_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const ACCOUNT5_KEY: &str = "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba";
const ACCOUNT6_KEY: &str = "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e";
const ACCOUNT7_KEY: &str = "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356";

pub(crate) fn example(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/jobs/target/wasm32-wasip1/release/{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (./test.sh builds the examples)", path.display()))
}

pub(crate) async fn send(anvil: &Anvil, key: &str, to: Address, input: Vec<u8>, value: U256) -> alloy::rpc::types::TransactionReceipt {
    let tx = TransactionRequest::default().with_to(to).with_input(input).with_value(value);
    let receipt = anvil.wallet(key).send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status(), "transaction reverted");
    receipt
}

pub(crate) async fn call<C: SolCall>(anvil: &Anvil, to: Address, c: C) -> C::Return {
    let out = anvil.wallet(BUYER_KEY).call(TransactionRequest::default().with_to(to).with_input(c.abi_encode())).await.unwrap();
    C::abi_decode_returns(&out).unwrap()
}

/// A `qor-verifier` process with its own config and key.
pub(crate) struct Verifier {
    pub(crate) config: PathBuf,
    pub(crate) log: PathBuf,
    pub(crate) key: &'static str,
    pub(crate) listen: String,
    pub(crate) child: Option<Child>,
}

impl Verifier {
    pub(crate) fn init(dir: &Path, coordinator: &str, anvil: &Anvil, key: &'static str) -> Self {
        Self::init_with(dir, coordinator, anvil, key, &[])
    }

    pub(crate) fn init_with(dir: &Path, coordinator: &str, anvil: &Anvil, key: &'static str, extra: &[&str]) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let listen = format!("127.0.0.1:{}", qor_testkit::free_port());
        let v = Self { config: dir.join("qor-verifier.toml"), log: dir.join("verifier.log"), key, listen, child: None };
        let out = Command::new(env!("CARGO_BIN_EXE_qor-verifier"))
            .arg("--config")
            .arg(&v.config)
            .args(["init", "--coordinator", coordinator, "--rpc-url", &anvil.url, "--listen", &v.listen, "--poll-ms", "200"])
            .arg("--deployment")
            .arg(&anvil.deployment_file)
            .args(["--batch-size", "10", "--batch-max-wait-ms", "500", "--work-dir"])
            .arg(dir.join("work"))
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "init: {out:?}");
        v
    }

    pub(crate) fn start(&mut self, crash: Option<&str>) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_qor-verifier"));
        cmd.arg("--config").arg(&self.config).arg("run").env("QOR_VERIFIER_KEY", self.key).env("RUST_LOG", "qor_verifier=info");
        if let Some(c) = crash {
            cmd.env("QOR_VERIFIER_CRASH", c);
        }
        self.child = Some(cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap());
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.listen);
        alloy::transports::http::reqwest::get(url).await.unwrap().text().await.unwrap()
    }

    pub(crate) fn metric(text: &str, name: &str) -> u64 {
        text.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Honest,
    Liar,
    /// Seals and never reveals: a missed reveal, signed, so a loss.
    Silent,
    /// Takes the lease and never seals: a failure, but nothing signed to slash.
    Mute,
    /// Every taker returns the same wrong digest: settled, and only a challenge catches it.
    Colluder,
}

/// Who took which job, in order, and in what role.
type Roles = Arc<Mutex<HashMap<String, Vec<(Address, Role)>>>>;

async fn register_provider(anvil: &Anvil, key: &str) {
    let register = IProviderRegistry::registerCall { metadata: ProviderMetadata { pricePerFuel: 1, capacity: 4, region: "test".into() } };
    send(anvil, key, anvil.address("providerRegistry"), register.abi_encode(), U256::from(ETHER)).await;
}

/// A provider driven by the test: runs each job in the sandbox and plays the role the job's first
/// argument gives the first provider that takes it.
async fn provider(base: String, key: &'static str, module: Vec<u8>, roles: Roles) {
    let signer = Signer::from_bytes(&key.parse().unwrap()).unwrap();
    let me = signer.address();
    let client = Client::new(&base, signer.clone());
    let domain = {
        let chain = client.chain().await.unwrap();
        escrow_domain(chain.chain_id, chain.job_escrow)
    };
    while client.signed("POST", "/v1/worker/register", Some(&json!({}))).await.is_err() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sandbox = Arc::new(Sandbox::new().unwrap());
    let mut receipts: HashMap<i64, (Receipt, Role)> = HashMap::new();
    let tmp = tempfile::tempdir().unwrap();
    loop {
        let Ok(polled) = client.signed("GET", "/v1/worker/assignments?wait_ms=300", None).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        for a in polled["assignments"].as_array().cloned().unwrap_or_default() {
            let id = a["assignment"].as_i64().unwrap();
            let job_id: U256 = a["jobId"].as_str().unwrap().parse().unwrap();
            if let std::collections::hash_map::Entry::Vacant(slot) = receipts.entry(id) {
                let spec = JobSpec::from_json(&serde_json::to_vec(&a["spec"]).unwrap()).unwrap();
                let role = {
                    let mut r = roles.lock().unwrap();
                    let takers = r.entry(job_id.to_string()).or_default();
                    let again = takers.iter().find(|(a, _)| *a == me).map(|(_, role)| *role);
                    let role = match (spec.args.first().map(String::as_str), takers.is_empty()) {
                        _ if again.is_some() => again.unwrap(),
                        (Some("lie-once" | "tie"), true) => Role::Liar,
                        (Some("silent-once"), true) => Role::Silent,
                        (Some("mute-once"), true) => Role::Mute,
                        (Some("collude"), _) => Role::Colluder,
                        _ => Role::Honest,
                    };
                    if again.is_none() {
                        takers.push((me, role));
                    }
                    role
                };
                let spec_hash: B256 = a["specHash"].as_str().unwrap().parse().unwrap();
                let accept = acceptance_body(&signer, &domain, job_id, spec_hash).unwrap();
                if let Err(e) = client.signed("POST", &format!("/v1/worker/assignments/{id}/accept"), Some(&accept)).await {
                    eprintln!("provider {me}: accepting assignment {id} of job {job_id}: {e}");
                    continue;
                }
                if role == Role::Mute {
                    slot.insert((receipt(job_id, spec_hash, me, B256::ZERO, B256::ZERO, 0, 0), role));
                    continue;
                }
                let dir = tmp.path().join(id.to_string());
                std::fs::create_dir_all(dir.join("in")).unwrap();
                std::fs::create_dir_all(dir.join("out")).unwrap();
                let (sb, m) = (sandbox.clone(), module.clone());
                let out = tokio::task::spawn_blocking(move || sb.run(&spec, &m, &dir).unwrap()).await.unwrap();
                let Outcome::Completed { result_digest, stdout_hash, exit_code, fuel_used, .. } = out else { panic!("{out:?}") };
                let digest = match role {
                    Role::Liar => keccak256(format!("made up by {me}")),
                    Role::Colluder => keccak256("agreed beforehand"),
                    Role::Honest | Role::Silent | Role::Mute => result_digest,
                };
                let receipt = receipt(job_id, spec_hash, me, digest, stdout_hash, exit_code, fuel_used);
                let body = seal_body(&signer, &domain, job_id, spec_hash, digest).unwrap();
                // A lease that lapsed while the job ran (a slow machine) is gone; anything else is retried.
                match client.signed("POST", &format!("/v1/worker/assignments/{id}/seal"), Some(&body)).await {
                    Ok(_) => {
                        slot.insert((receipt, role));
                    }
                    Err(e) => eprintln!("provider {me}: sealing assignment {id} of job {job_id}: {e}"),
                }
                continue;
            }
            let Some((receipt, role)) = receipts.get(&id).cloned() else { continue };
            if matches!(role, Role::Silent | Role::Mute) || a["revealable"] != true {
                continue;
            }
            let body = receipt_body(&signer, &domain, &receipt, &[]).unwrap();
            let _ = client.signed("POST", &format!("/v1/worker/assignments/{id}/receipt"), Some(&body)).await;
        }
    }
}

fn receipt(job_id: U256, spec_hash: B256, me: Address, digest: B256, stdout: B256, exit_code: u32, fuel_used: u64) -> Receipt {
    Receipt {
        jobId: job_id,
        specHash: spec_hash,
        worker: me,
        resultDigest: digest,
        stdoutHash: stdout,
        exitCode: exit_code,
        fuelUsed: fuel_used,
    }
}

fn spec(module: B256, first_arg: &str, redundancy: u8) -> JobSpec {
    JobSpec {
        version: 1,
        module,
        entry: "_start".into(),
        args: vec![first_arg.into()],
        env: Default::default(),
        inputs: vec![],
        limits: Limits { fuel: 50_000_000, memory_bytes: 16 << 20, output_bytes: 1 << 20, wall_clock_ms: 1_000 },
        redundancy,
    }
}

async fn fund(anvil: &Anvil, base: &str, job: &JobSpec) -> U256 {
    let http = alloy::transports::http::reqwest::Client::new();
    let put = http.post(format!("{base}/v1/specs")).body(job.canonical_json()).send().await.unwrap();
    assert!(put.status().is_success(), "{}", put.text().await.unwrap());
    let latest = anvil.wallet(BUYER_KEY).get_block_by_number(alloy::eips::BlockNumberOrTag::Latest).await.unwrap().unwrap();
    let budget = U256::from(ETHER / 10);
    let create = IJobEscrow::createComputeJobCall {
        specHash: job.spec_hash(),
        redundancy: job.redundancy,
        token: Address::ZERO,
        budget,
        deadline: latest.header.timestamp + 3_000,
        preferredProvider: Address::ZERO,
    };
    let r = send(anvil, BUYER_KEY, anvil.address("jobEscrow"), create.abi_encode(), budget).await;
    r.inner.logs().iter().find_map(|l| IJobEscrow::ComputeJobCreated::decode_log(&l.inner).ok()).unwrap().data.jobId
}

/// Every ComputeBatchSettled so far: (batch id, its job ids, the outcome).
async fn settled_batches(anvil: &Anvil) -> Vec<IJobEscrow::ComputeBatchSettled> {
    let filter =
        Filter::new().address(anvil.address("jobEscrow")).event_signature(IJobEscrow::ComputeBatchSettled::SIGNATURE_HASH).from_block(0);
    anvil
        .wallet(BUYER_KEY)
        .get_logs(&filter)
        .await
        .unwrap()
        .iter()
        .map(|l| IJobEscrow::ComputeBatchSettled::decode_log(&l.inner).unwrap().data)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_are_judged_settled_once_and_finalized_with_the_liars_slashed() {
    let anvil = Anvil::start();
    let tmp = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start_with(tmp.path(), &anvil, |c| c.lease_ms = 4_000).await;
    let base = coordinator.base.clone();
    let (escrow, registry) = (anvil.address("jobEscrow"), anvil.address("providerRegistry"));

    // A second committee member, for the race.
    let second = Signer::from_bytes(&ACCOUNT7_KEY.parse().unwrap()).unwrap().address();
    let add = IVerifierCommittee::addMemberCall { member: second };
    send(&anvil, ACCOUNT0_KEY, anvil.address("verifierCommittee"), add.abi_encode(), U256::ZERO).await;

    let hello = example("hello");
    let module = keccak256(&hello);
    qor_testkit::upload(&base, BUYER_KEY, &hello).await;
    let roles: Roles = Arc::default();
    let keys = [PROVIDER_KEY, PROVIDER2_KEY, ACCOUNT5_KEY, ACCOUNT6_KEY];
    for key in keys {
        register_provider(&anvil, key).await;
        tokio::spawn(provider(base.clone(), key, hello.clone(), roles.clone()));
    }

    let honest = fund(&anvil, &base, &spec(module, "honest", 3)).await;
    // A lying coordinator lists a replica of the honest job that provider never took: lapsed, with a
    // seal. It signed nothing, so it must be neither paid nor slashed.
    let framed = Signer::from_bytes(&ACCOUNT6_KEY.parse().unwrap()).unwrap().address();
    coordinator.invent_replica(honest, framed, keccak256("a seal it never made")).await;
    let lie = fund(&anvil, &base, &spec(module, "lie-once", 3)).await;
    let tie = fund(&anvil, &base, &spec(module, "tie", 2)).await;
    let silent = fund(&anvil, &base, &spec(module, "silent-once", 3)).await;
    let mute = fund(&anvil, &base, &spec(module, "mute-once", 3)).await;
    let jobs = [honest, lie, tie, silent, mute];

    // The first verifier crashes right after signing its first settlement, then (restarted) right
    // after sending it, before the receipt.
    let mut v1 = Verifier::init(&tmp.path().join("v1"), &base, &anvil, DEPLOYER_KEY);
    for (crash, said) in [("after-sign", "exiting after signing"), ("after-send", "exiting before the receipt")] {
        v1.start(Some(crash));
        let child = std::sync::Mutex::new(v1.child.take().unwrap());
        let exited = wait_for("the verifier to crash", 90, async || child.lock().unwrap().try_wait().unwrap()).await;
        assert_eq!(exited.code(), Some(86), "{}", v1.log());
        assert!(v1.log().contains(said), "{}", v1.log());
        if crash == "after-sign" {
            assert!(settled_batches(&anvil).await.is_empty(), "nothing was sent");
        }
    }
    let first = settled_batches(&anvil).await;
    assert_eq!(first.len(), 1, "the crashed send landed");

    // Restarted, next to a second member: between them every job is settled, each exactly once.
    v1.start(None);
    let mut v2 = Verifier::init(&tmp.path().join("v2"), &base, &anvil, ACCOUNT7_KEY);
    v2.start(None);
    wait_for("every job to be settled", 120, async || {
        for j in jobs {
            let s = call(&anvil, escrow, IJobEscrow::computeJobStatusCall { jobId: j }).await;
            if s as u8 != 2 {
                return None;
            }
        }
        Some(())
    })
    .await;
    let batches = settled_batches(&anvil).await;
    for j in jobs {
        let times = batches.iter().flat_map(|b| &b.outcome.jobIds).filter(|x| **x == j).count();
        assert_eq!(times, 1, "job {j} settled {times} times\nv1:\n{}\nv2:\n{}", v1.log(), v2.log());
    }

    // Each verdict: the settlement's winners and losers, by provider.
    let verdict = |job: U256| {
        let b = batches.iter().find(|b| b.outcome.jobIds.contains(&job)).unwrap();
        let i = b.outcome.jobIds.iter().position(|x| *x == job).unwrap();
        let providers: Vec<Address> = b.outcome.providers.iter().map(|p| p.provider).collect();
        (b.resultDigests[i], providers)
    };
    let takers = roles.lock().unwrap().clone();
    let role_of = |job: U256, role: Role| takers[&job.to_string()].iter().find(|(_, r)| *r == role).map(|(a, _)| *a).unwrap();
    let timeline = |job: U256| {
        let base = base.clone();
        async move { alloy::transports::http::reqwest::get(format!("{base}/v1/jobs/{job}")).await.unwrap().json::<Value>().await.unwrap() }
    };
    for job in jobs {
        let (digest, _) = verdict(job);
        assert_ne!(digest, B256::ZERO, "job {job} settled with a result");
        let t = timeline(job).await;
        let v =
            t["timeline"].as_array().unwrap().iter().filter(|e| e["kind"] == "verdict").map(|e| e["detail"].clone()).collect::<Vec<_>>();
        let last = v.last().unwrap_or_else(|| panic!("job {job} has a verdict: {t}"));
        assert_eq!(last["outcome"], "settle", "{t}");
        let losers: Vec<Address> = serde_json::from_value(last["losers"].clone()).unwrap();
        let winners: Vec<Address> = serde_json::from_value(last["winners"].clone()).unwrap();
        match job {
            j if j == honest => {
                assert_eq!((winners.len(), losers.len()), (3, 0), "{t}");
                assert!(!winners.contains(&framed), "{t}");
            }
            // The one that took the lease and never sealed failed alone: the sealed replicas waited
            // for its replacement, and nobody lost.
            j if j == mute => {
                assert_eq!((winners.len(), losers.len()), (3, 0), "{t}");
                assert!(!winners.contains(&role_of(mute, Role::Mute)), "{t}");
                let failed = t["replicas"].as_array().unwrap().iter().filter(|r| r["status"] == "failed").count();
                assert_eq!(failed, 1, "{t}");
            }
            j if j == lie => assert_eq!(losers, vec![role_of(lie, Role::Liar)], "{t}"),
            j if j == silent => assert_eq!(losers, vec![role_of(silent, Role::Silent)], "a missed reveal is a loss: {t}"),
            _ => {
                // The tie (one liar, one honest) escalated to four replicas; three honest ones win.
                assert_eq!(v[0]["outcome"], "escalate", "{t}");
                assert_eq!(v[0]["replicas"], 4, "{t}");
                assert_eq!((winners.len(), losers), (3, vec![role_of(tie, Role::Liar)]), "{t}");
            }
        }
    }
    let logs = v1.log() + &v2.log();
    assert!(
        logs.lines().any(|l| l.contains("receipt rejected") && l.contains("no receipt revealed") && l.contains("a loss")),
        "the missed reveal is logged with its reason:\n{logs}"
    );
    assert!(
        logs.lines().any(|l| l.contains(&format!("{framed}")) && l.contains("did not run")),
        "the invented replica is logged as one that did not run:\n{logs}"
    );

    // After the challenge window the verifiers finalize; losers are slashed, winners paid.
    let liars = [role_of(lie, Role::Liar), role_of(tie, Role::Liar), role_of(silent, Role::Silent)];
    anvil.advance(3_601).await;
    wait_for("every batch to be finalized", 60, async || {
        for b in &batches {
            let got = call(&anvil, escrow, IJobEscrow::getBatchCall { batchId: b.batchId }).await;
            if !got.finalized {
                return None;
            }
        }
        Some(())
    })
    .await;
    for key in keys {
        let who = Signer::from_bytes(&key.parse().unwrap()).unwrap().address();
        let p = call(&anvil, registry, IProviderRegistry::getProviderCall { provider: who }).await;
        let lost = liars.iter().filter(|l| **l == who).count() as u64;
        assert_eq!(p.jobsFailed, lost, "{who}: {p:?}");
        // Slashed once per batch it lost in (for every loss in it).
        assert_eq!(p.timesSlashed > 0, lost > 0, "{who}: {p:?}");
        if lost > 0 {
            assert!(p.stake < U256::from(ETHER), "{who} lost stake");
        }
        let paid = call(&anvil, escrow, IJobEscrow::balanceOfCall { account: who, token: Address::ZERO }).await;
        assert_eq!(paid.is_zero(), p.jobsCompleted == 0, "{who}: paid iff it won: {paid} {p:?}");
    }

    // What the verifiers report (once the finalizing one has its receipt too).
    // Both counters are bumped after the receipt arrives, each by its own task: wait for both.
    let settled_before = first[0].outcome.jobIds.len() as u64;
    let (m1, m2) = wait_for("the finalizations and settlements to be counted", 30, async || {
        let (m1, m2) = (v1.metrics().await, v2.metrics().await);
        let sum = |name: &str| Verifier::metric(&m1, name) + Verifier::metric(&m2, name);
        let finalized = sum("qor_verifier_batches_finalized_total");
        let sent = sum("qor_verifier_settlements_sent_total");
        (finalized as usize == batches.len() && sent + settled_before >= jobs.len() as u64).then_some((m1, m2))
    })
    .await;
    let sent = Verifier::metric(&m1, "qor_verifier_settlements_sent_total") + Verifier::metric(&m2, "qor_verifier_settlements_sent_total");
    assert_eq!(sent + settled_before, jobs.len() as u64, "each job settled once:\n{m1}\n{m2}");
    assert!(Verifier::metric(&m1, "qor_verifier_gas_used_total") + Verifier::metric(&m2, "qor_verifier_gas_used_total") > 0);
    let health: Value = alloy::transports::http::reqwest::get(format!("http://{}/health", v2.listen)).await.unwrap().json().await.unwrap();
    assert_eq!(health["ok"], true, "{health}");
}

/// The settlement of `job` as sent (decoded from the settling transaction), with the batch's event.
async fn settlement_of(anvil: &Anvil, job: U256) -> (IJobEscrow::ComputeBatchSettled, IJobEscrow::settleComputeJobsCall) {
    let filter =
        Filter::new().address(anvil.address("jobEscrow")).event_signature(IJobEscrow::ComputeBatchSettled::SIGNATURE_HASH).from_block(0);
    let chain = anvil.wallet(BUYER_KEY);
    for log in chain.get_logs(&filter).await.unwrap() {
        let event = IJobEscrow::ComputeBatchSettled::decode_log(&log.inner).unwrap().data;
        if event.outcome.jobIds.contains(&job) {
            let tx = chain.get_transaction_by_hash(log.transaction_hash.unwrap()).await.unwrap().unwrap();
            let input = alloy::consensus::Transaction::input(&tx);
            return (event, IJobEscrow::settleComputeJobsCall::abi_decode(input).unwrap());
        }
    }
    panic!("job {job} was not settled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_of_two_committee_settles_and_resolves_challenges_by_exchanging_signatures() {
    let anvil = Anvil::start();
    let tmp = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(tmp.path(), &anvil).await;
    let base = coordinator.base.clone();
    let (escrow, registry, committee) = (anvil.address("jobEscrow"), anvil.address("providerRegistry"), anvil.address("verifierCommittee"));

    // Two members, both needed.
    let second = Signer::from_bytes(&ACCOUNT7_KEY.parse().unwrap()).unwrap().address();
    send(&anvil, ACCOUNT0_KEY, committee, IVerifierCommittee::addMemberCall { member: second }.abi_encode(), U256::ZERO).await;
    send(&anvil, ACCOUNT0_KEY, committee, IVerifierCommittee::setThresholdCall { threshold: U256::from(2) }.abi_encode(), U256::ZERO).await;

    let hello = example("hello");
    let module = keccak256(&hello);
    let http = alloy::transports::http::reqwest::Client::new();
    qor_testkit::upload(&base, BUYER_KEY, &hello).await;
    let roles: Roles = Arc::default();
    for key in [PROVIDER_KEY, PROVIDER2_KEY] {
        register_provider(&anvil, key).await;
        tokio::spawn(provider(base.clone(), key, hello.clone(), roles.clone()));
    }
    let honest = fund(&anvil, &base, &spec(module, "honest", 2)).await;
    let colluded = fund(&anvil, &base, &spec(module, "collude", 2)).await;

    let mut v1 = Verifier::init(&tmp.path().join("v1"), &base, &anvil, DEPLOYER_KEY);
    // The second member spot-checks every job by running it itself.
    let mut v2 = Verifier::init_with(&tmp.path().join("v2"), &base, &anvil, ACCOUNT7_KEY, &["--reexec-fraction", "1"]);
    v1.start(None);
    v2.start(None);
    wait_for("both jobs to be settled", 120, async || {
        for j in [honest, colluded] {
            if call(&anvil, escrow, IJobEscrow::computeJobStatusCall { jobId: j }).await as u8 != 2 {
                return None;
            }
        }
        Some(())
    })
    .await;
    // Each settled once, with both members' signatures, ascending.
    let batches = settled_batches(&anvil).await;
    for j in [honest, colluded] {
        assert_eq!(batches.iter().flat_map(|b| &b.outcome.jobIds).filter(|x| **x == j).count(), 1, "{}\n{}", v1.log(), v2.log());
        let (_, sent) = settlement_of(&anvil, j).await;
        assert_eq!(sent.signatures.len(), 2, "a 2-of-2 committee signed");
    }
    // The exchange went through the coordinator: a settlement proposal carries both members' signatures.
    let first = Signer::from_bytes(&DEPLOYER_KEY.parse().unwrap()).unwrap().address();
    let proposals: Value = http.get(format!("{base}/v1/verifier/proposals")).send().await.unwrap().json().await.unwrap();
    let both = json!([format!("{:#x}", first.min(second)), format!("{:#x}", first.max(second))]);
    assert!(
        proposals["proposals"].as_array().unwrap().iter().any(|p| p["kind"] == "settlement"
            && json!(p["signatures"].as_array().unwrap().iter().map(|s| s["signer"].clone()).collect::<Vec<_>>()) == both),
        "{proposals}"
    );

    // The buyer challenges both; the committee re-runs them: the honest result stands, the colluded one
    // falls, its providers are slashed and the buyer gets the price back.
    let params = call(&anvil, escrow, IJobEscrow::paramsCall {}).await;
    let buyer = Signer::from_bytes(&BUYER_KEY.parse().unwrap()).unwrap().address();
    let before = call(&anvil, escrow, IJobEscrow::balanceOfCall { account: buyer, token: Address::ZERO }).await;
    let mut prices = HashMap::new();
    for j in [honest, colluded] {
        let (event, sent) = settlement_of(&anvil, j).await;
        let index = sent.batch.settlements.iter().position(|s| s.jobId == j).unwrap();
        let mut hashes = Vec::new();
        for s in &sent.batch.settlements {
            hashes.push(call(&anvil, escrow, IJobEscrow::hashSettlementCall { settlement: s.clone() }).await);
        }
        prices.insert(j, sent.batch.settlements[index].price);
        let proof = IJobEscrow::ChallengeProof {
            batchId: event.batchId,
            job: sent.jobs[index].clone(),
            outcome: event.outcome.clone(),
            settlementHashes: hashes,
            index: U256::from(index),
            settlement: sent.batch.settlements[index].clone(),
        };
        let challenge = IJobEscrow::challengeCall { jobId: j, proof };
        send(&anvil, BUYER_KEY, escrow, challenge.abi_encode(), U256::from(params.challengeBond)).await;
    }
    let resolved = async || {
        let a = call(&anvil, escrow, IJobEscrow::getChallengeCall { jobId: honest }).await.status;
        let b = call(&anvil, escrow, IJobEscrow::getChallengeCall { jobId: colluded }).await.status;
        (a as u8 >= 2 && b as u8 >= 2).then_some((a, b))
    };
    let mut statuses = None;
    for _ in 0..600 {
        statuses = resolved().await;
        if statuses.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let statuses = statuses.unwrap_or_else(|| panic!("the challenges were not resolved in 60 s\n{}\n{}", v1.log(), v2.log()));
    assert_eq!(statuses, (IJobEscrow::ChallengeStatus::Rejected, IJobEscrow::ChallengeStatus::Upheld), "{}\n{}", v1.log(), v2.log());
    let after = call(&anvil, escrow, IJobEscrow::balanceOfCall { account: buyer, token: Address::ZERO }).await;
    let slashed = U256::from(params.minoritySlash) * U256::from(2);
    assert_eq!(
        after - before,
        prices[&colluded] + U256::from(params.challengeBond) + slashed,
        "the price, the bond and both stakes' slash"
    );
    for key in [PROVIDER_KEY, PROVIDER2_KEY] {
        let who = Signer::from_bytes(&key.parse().unwrap()).unwrap().address();
        let p = call(&anvil, registry, IProviderRegistry::getProviderCall { provider: who }).await;
        assert!(p.timesSlashed > 0, "{who} colluded: {p:?}");
    }
    let m2 = v2.metrics().await;
    assert!(Verifier::metric(&m2, "qor_verifier_reexecutions_total") >= 2, "{m2}");
    assert!(
        v2.log().contains("the verifier's own run disagrees with the majority"),
        "the collusion is seen by the spot check: {}",
        v2.log()
    );
    let m = v1.metrics().await + &m2;
    assert!(m.contains("qor_verifier_challenges_resolved_total 1") || m.contains("qor_verifier_challenges_resolved_total 2"), "{m}");
}
