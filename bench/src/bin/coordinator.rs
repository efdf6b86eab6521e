//! The coordinator under load, over real loopback sockets with SQLite (WAL) on disk:
//! - job creations per second through the HTTP API (`POST /v1/specs`, 32 clients at once) and their
//!   latency percentiles;
//! - lease + receipt round trips per second with 100 simulated workers: each round trip is a signed
//!   long poll that returns the lease, the signed acceptance, a signed seal and a signed EIP-712
//!   receipt, with the matcher leasing funded jobs as they come; and the latency percentiles of those
//!   requests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, U256, keccak256};
use qor_coordinator::{AppState, Config, db, matcher, router};
use qor_protocol::auth::sign_request;
use qor_protocol::bindings::IJobEscrow::Receipt;
use qor_protocol::eip712::{Signer, escrow_domain};
use qor_protocol::spec::{JobSpec, Limits};
use qor_worker::client::{acceptance_body, receipt_body, seal_body};
use serde_json::Value;
use tokio::sync::Mutex;

const ESCROW: Address = Address::repeat_byte(0xe5);
const CLIENTS: usize = 32;
const SPECS: usize = 6_000;
const WORKERS: usize = 100;
const JOBS: usize = 6_000;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1e3
}

fn spec(module: alloy_primitives::B256, i: usize) -> JobSpec {
    JobSpec {
        version: 1,
        module,
        entry: "_start".into(),
        args: vec![format!("job-{i}")],
        env: Default::default(),
        inputs: vec![],
        limits: Limits { fuel: 1_000, memory_bytes: 1 << 20, output_bytes: 1 << 20, wall_clock_ms: 60_000 },
        redundancy: 1,
    }
}

async fn signed(http: &reqwest::Client, base: &str, w: &Signer, method: &str, path: &str, body: Vec<u8>, n: u64) -> Value {
    let mut req = http.request(method.parse().unwrap(), format!("{base}{path}")).body(body.clone());
    for (k, v) in sign_request(w, method, path, db::now_ms() as u64, &n.to_string(), &body).unwrap() {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let bytes = resp.bytes().await.unwrap();
    assert!(status.is_success(), "{method} {path}: {status} {}", String::from_utf8_lossy(&bytes));
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // What the signatures alone cost (measured first, on an idle machine): each round trip signs three requests and a receipt (the
    // simulated workers, on the same two cores) and recovers the same four (the coordinator).
    let key = Signer::from_bytes(&keccak256("bench-ecdsa")).unwrap();
    let digests: Vec<_> = (0..500u32).map(|i| keccak256(i.to_be_bytes())).collect();
    let t = Instant::now();
    let sigs: Vec<_> = digests.iter().map(|d| key.sign_hash(d).unwrap()).collect();
    let sign_us = t.elapsed().as_secs_f64() * 1e6 / digests.len() as f64;
    let t = Instant::now();
    for (d, s) in digests.iter().zip(&sigs) {
        assert_eq!(qor_protocol::eip712::recover(d, s).unwrap(), key.address());
    }
    let recover_us = t.elapsed().as_secs_f64() * 1e6 / digests.len() as f64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    println!("ecdsa_sign {sign_us:.1} us");
    println!("ecdsa_recover {recover_us:.1} us");
    println!("coordinator_round_trip_ceiling_from_signatures {:.0} per_s", cores * 1e6 / (4.0 * sign_us + 4.0 * recover_us));

    let tmp = tempfile::tempdir().unwrap();
    let pool = db::open(tmp.path().join("bench.db").to_str().unwrap()).await.unwrap();
    let state = AppState::new(pool, &tmp.path().join("data"), Config::new(31337, ESCROW, Address::repeat_byte(0x5e))).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, router(state.clone())).into_future());
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();

    // Job creations.
    let module = b"\0asm\x01\0\0\0".to_vec();
    let module_hash = keccak256(&module);
    qor_testkit::upload(&base, qor_testkit::BUYER_KEY, &module).await;
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new((0..SPECS).map(|i| spec(module_hash, i).canonical_json()).collect());
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(SPECS)));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (http, base, bodies, latencies) = (http.clone(), base.clone(), bodies.clone(), latencies.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for body in bodies.iter().skip(c).step_by(CLIENTS) {
                let t = Instant::now();
                let resp = http.post(format!("{base}/v1/specs")).body(body.clone()).send().await.unwrap();
                assert_eq!(resp.status(), 201);
                mine.push(t.elapsed());
            }
            latencies.lock().await.extend(mine);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let mut lat = latencies.lock().await.clone();
    lat.sort();
    println!("coordinator_job_creations {:.0} per_s", SPECS as f64 / secs);
    println!("coordinator_job_creation_p50 {:.2} ms", percentile(&lat, 0.50));
    println!("coordinator_job_creation_p99 {:.2} ms", percentile(&lat, 0.99));

    // Lease + receipt round trips: 100 providers, JOBS funded jobs (what the chain watcher records).
    let workers: Vec<Signer> = (0..WORKERS).map(|i| Signer::from_bytes(&keccak256(format!("bench-worker-{i}"))).unwrap()).collect();
    let now = db::now_ms();
    for w in &workers {
        sqlx::query(
            "INSERT INTO providers (address, stake, price_per_fuel, capacity, region, registered_block, last_heartbeat)
                     VALUES (?, '1000000000000000000', '1', 4, 'bench', 1, ?)",
        )
        .bind(format!("{:#x}", w.address()))
        .bind(now)
        .execute(&state.db)
        .await
        .unwrap();
    }
    let spec_hashes: Vec<String> = (0..JOBS).map(|i| format!("{:#x}", spec(module_hash, i).spec_hash())).collect();
    let mut tx = state.db.begin().await.unwrap();
    for (i, h) in spec_hashes.iter().enumerate() {
        sqlx::query(
            "INSERT INTO jobs (job_id, spec_hash, buyer, token, budget, deadline, redundancy, preferred, block_number,
                       block_hash, status, updated_at)
                     VALUES (?, ?, '0xb1', '0x00', '1000000000000000000', ?, 1, '0x00', 1, '0x00', 'matching', 0)",
        )
        .bind((i + 1).to_string())
        .bind(h)
        .bind(now / 1000 + 3600)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    // One matching pass over every funded job: leases the 400 free slots, says why for the rest.
    let t = Instant::now();
    matcher::tick(&state).await.unwrap();
    println!("coordinator_matching_pass_{JOBS}_jobs {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    let t = Instant::now();
    matcher::tick(&state).await.unwrap();
    println!("coordinator_matching_pass_{JOBS}_jobs_no_change {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    let matcher_task = tokio::spawn(matcher::run(state.clone()));
    let domain = escrow_domain(31337, ESCROW);
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let request_latencies = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (wi, w) in workers.into_iter().enumerate() {
        let (http, base, done, domain, request_latencies) =
            (http.clone(), base.clone(), done.clone(), domain.clone(), request_latencies.clone());
        tasks.push(tokio::spawn(async move {
            let mut nonce = (wi as u64) << 32;
            let mut lat = Vec::new();
            while done.load(std::sync::atomic::Ordering::Relaxed) < JOBS {
                nonce += 1;
                let t = Instant::now();
                let polled = signed(&http, &base, &w, "GET", "/v1/worker/assignments?wait_ms=200", vec![], nonce).await;
                lat.push(t.elapsed());
                for a in polled["assignments"].as_array().unwrap() {
                    let id = a["assignment"].as_i64().unwrap();
                    let job_id: U256 = a["jobId"].as_str().unwrap().parse().unwrap();
                    let spec_hash = a["specHash"].as_str().unwrap().parse().unwrap();
                    let digest = keccak256(job_id.to_be_bytes::<32>());
                    for (step, body) in [
                        ("accept", acceptance_body(&w, &domain, job_id, spec_hash).unwrap()),
                        ("seal", seal_body(&w, &domain, job_id, spec_hash, digest).unwrap()),
                    ] {
                        nonce += 1;
                        let t = Instant::now();
                        let body = serde_json::to_vec(&body).unwrap();
                        signed(&http, &base, &w, "POST", &format!("/v1/worker/assignments/{id}/{step}"), body, nonce).await;
                        lat.push(t.elapsed());
                    }
                    let receipt = Receipt {
                        jobId: job_id,
                        specHash: spec_hash,
                        worker: w.address(),
                        resultDigest: digest,
                        stdoutHash: digest,
                        exitCode: 0,
                        fuelUsed: 1,
                    };
                    let body = serde_json::to_vec(&receipt_body(&w, &domain, &receipt, &[]).unwrap()).unwrap();
                    nonce += 1;
                    let t = Instant::now();
                    signed(&http, &base, &w, "POST", &format!("/v1/worker/assignments/{id}/receipt"), body, nonce).await;
                    lat.push(t.elapsed());
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            request_latencies.lock().await.extend(lat);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    matcher_task.abort();
    let completed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = 'completed'").fetch_one(&state.db).await.unwrap();
    assert_eq!(completed as usize, JOBS, "every job leased once and revealed once");
    let mut lat = request_latencies.lock().await.clone();
    lat.sort();
    println!("coordinator_lease_receipt_round_trips {:.0} per_s", JOBS as f64 / secs);
    println!("coordinator_worker_request_p50 {:.2} ms", percentile(&lat, 0.50));
    println!("coordinator_worker_request_p99 {:.2} ms", percentile(&lat, 0.99));
}
