//! Provider daemon benchmarks:
//! - how many trivial `hello` jobs one worker completes per second through a real coordinator over
//!   loopback (the per-job overhead outside the sandbox: poll, fetch, seal, upload, receipt);
//! - how long answering a storage challenge takes on a 1 GiB hosted file (proof read from the on-disk
//!   tree), and how long hosting it takes (tree built, root checked).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, keccak256};
use qor_coordinator::{AppState, Config, db, matcher, router};
use qor_protocol::eip712::Signer;
use qor_protocol::merkle::{chunk_count, verify};
use qor_protocol::spec::{JobSpec, Limits};
use qor_worker::client::{ChainInfo, Coordinator};
use qor_worker::daemon::{Daemon, DaemonConfig};
use qor_worker::hosting::Hosting;

const ESCROW: Address = Address::repeat_byte(0xe5);
const JOBS: usize = 300;
const SLOTS: usize = 2;

fn hello() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/jobs/target/wasm32-wasip1/release/hello.wasm");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (./test.sh builds the examples)", path.display()))
}

async fn jobs_per_second() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = db::open(tmp.path().join("c.db").to_str().unwrap()).await.unwrap();
    let state = AppState::new(pool, &tmp.path().join("data"), Config::new(31337, ESCROW, Address::repeat_byte(0x5e))).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, router(state.clone())).into_future());
    tokio::spawn(matcher::run(state.clone()));

    let worker = Signer::from_bytes(&keccak256("bench-daemon")).unwrap();
    let module = hello();
    let module_hash = keccak256(&module);
    state.blobs.put(module_hash, axum::body::Body::from(module)).await.unwrap();
    sqlx::query(
        "INSERT INTO providers (address, stake, price_per_fuel, capacity, region, registered_block, last_heartbeat)
         VALUES (?, '1000000000000000000', '1', ?, 'bench', 1, ?)",
    )
    .bind(format!("{:#x}", worker.address()))
    .bind(SLOTS as i64)
    .bind(db::now_ms())
    .execute(&state.db)
    .await
    .unwrap();
    let mut tx = state.db.begin().await.unwrap();
    for i in 0..JOBS {
        let spec = JobSpec {
            version: 1,
            module: module_hash,
            entry: "_start".into(),
            args: vec![format!("job-{i}")],
            env: Default::default(),
            inputs: vec![],
            limits: Limits { fuel: 10_000_000, memory_bytes: 16 << 20, output_bytes: 1 << 20, wall_clock_ms: 10_000 },
            redundancy: 1,
        };
        let (hash, json) = (format!("{:#x}", spec.spec_hash()), String::from_utf8(spec.canonical_json()).unwrap());
        sqlx::query(
            "INSERT INTO specs (spec_hash, spec_json, module_hash, redundancy, fuel_limit, wall_clock_ms, uploaded_at, expires_at)
             VALUES (?, ?, ?, 1, 10000000, 10000, 0, 9999999999999)",
        )
        .bind(&hash)
        .bind(json)
        .bind(format!("{module_hash:#x}"))
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO jobs (job_id, spec_hash, buyer, token, budget, deadline, redundancy, preferred, block_number, block_hash, status, updated_at)
             VALUES (?, ?, '0xb1', '0x00', '1000000000000000000', 9999999999, 1, '0x00', 1, '0x00', 'matching', 0)",
        )
        .bind((i + 1).to_string())
        .bind(&hash)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    let info = ChainInfo {
        chain_id: 31337,
        job_escrow: ESCROW,
        provider_registry: Address::ZERO,
        verifier_committee: Address::ZERO,
        deploy_block: 0,
        confirmations: 0,
    };
    let cfg = DaemonConfig {
        data_dir: tmp.path().join("worker"),
        max_jobs: SLOTS,
        storage_quota_bytes: 0,
        grace: Duration::from_secs(5),
        heartbeat: Duration::from_secs(5),
        progress: false,
        corrupt_digest: false,
    };
    let daemon = Daemon::new(cfg, Coordinator::new(&base, worker.clone()), None, info, worker).unwrap();
    let stop = daemon.shutdown.clone();
    let start = Instant::now();
    let task = tokio::spawn(daemon.run());
    loop {
        let done: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = 'completed'").fetch_one(&state.db).await.unwrap();
        if done as usize == JOBS {
            break;
        }
        if start.elapsed() > Duration::from_secs(300) {
            let stuck: Vec<(String, String, Option<String>)> =
                sqlx::query_as("SELECT job_id, status, reason FROM jobs WHERE status != 'completed' LIMIT 5")
                    .fetch_all(&state.db)
                    .await
                    .unwrap();
            let mut report = String::new();
            for (job, status, reason) in &stuck {
                let timeline: Vec<(String, String, String)> =
                    sqlx::query_as("SELECT actor, kind, detail FROM timeline WHERE subject = ? ORDER BY id")
                        .bind(format!("job:{job}"))
                        .fetch_all(&state.db)
                        .await
                        .unwrap();
                report.push_str(&format!("\njob {job} ({status}, {reason:?}): {timeline:?}"));
            }
            panic!("only {done} of {JOBS} jobs completed in 300 s; the others:{report}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    stop.cancel();
    task.await.unwrap().unwrap();
    println!("worker_hello_jobs {:.1} per_s", JOBS as f64 / secs);
    println!("worker_hello_job_wall {:.2} ms", secs * 1e3 * SLOTS as f64 / JOBS as f64);
}

fn storage_challenge_latency() {
    const SIZE: u64 = 1 << 30;
    let tmp = tempfile::tempdir_in(std::env::var_os("QOR_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from)).unwrap();
    let hosting = Hosting::open(tmp.path()).unwrap();
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(hosting.part_path("1")).unwrap());
        let mut block = vec![0u8; 1 << 20];
        for i in 0..(SIZE >> 20) {
            for (j, b) in block.iter_mut().enumerate() {
                *b = (i as usize * 131 + j * 7) as u8;
            }
            f.write_all(&block).unwrap();
        }
        f.flush().unwrap();
    }
    let root =
        qor_protocol::merkle::root_from_reader(std::io::BufReader::new(std::fs::File::open(hosting.part_path("1")).unwrap())).unwrap().0;
    let start = Instant::now();
    let meta = hosting.adopt("1", root).unwrap();
    println!("storage_host_1gib {:.2} s", start.elapsed().as_secs_f64());
    let chunks = chunk_count(meta.size);
    let mut latencies = Vec::new();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let index = x % chunks;
        let t = Instant::now();
        let proof = hosting.prove("1", index).unwrap();
        latencies.push(t.elapsed());
        assert!(verify(&root, chunks, &proof));
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64() * 1e6;
    println!("storage_challenge_proof_1gib_p50 {:.1} us", pct(0.50));
    println!("storage_challenge_proof_1gib_p99 {:.1} us", pct(0.99));
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    jobs_per_second().await;
    tokio::task::spawn_blocking(storage_challenge_latency).await.unwrap();
}
