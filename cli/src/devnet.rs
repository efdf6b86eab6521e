//! `qor devnet`: the whole market on one machine. anvil (one block a second), the contracts deployed
//! by `anvil/deploy.sh`, a coordinator, one verifier (or a 2-of-3 committee), and N workers, each
//! registered and staked, every one a supervised child process with its log under the data folder.
//! A child that exits is reported; Ctrl-C (or the end of `--demo --exit`) stops them all, workers and
//! verifiers first with SIGTERM so they wind down cleanly.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy_primitives::Address;
use anyhow::{Context, anyhow, bail};
use qor_protocol::deployment::Deployment;
use serde_json::Value;

use crate::accounts::{self, KEYS};

/// Settings of `qor devnet`.
#[derive(Debug, Clone)]
pub(crate) struct DevnetConfig {
    /// Workers to start (at most 4).
    pub(crate) workers: usize,
    /// Of them, how many report corrupted digests (a test fault: byzantine providers).
    pub(crate) byzantine: usize,
    /// Verifiers: 1, or 3 for a 2-of-3 committee.
    pub(crate) verifiers: usize,
    /// anvil's port.
    pub(crate) chain_port: u16,
    /// The coordinator's port.
    pub(crate) coordinator_port: u16,
    /// Seconds between settlement and release.
    pub(crate) challenge_window: u64,
    /// Blocks on top of an event before the coordinator applies it.
    pub(crate) confirmations: u64,
    /// Logs, databases and the workers' data; emptied at start.
    pub(crate) data_dir: PathBuf,
    /// The built web app the coordinator serves (default: the repository's `web/dist`, if built).
    pub(crate) web_dir: Option<PathBuf>,
}

/// Restarts a child that dies gets, before it is left down.
const MAX_RESTARTS: u32 = 5;

/// A child's command line: program, arguments, environment.
type Launch = (PathBuf, Vec<OsString>, Vec<(OsString, OsString)>);

struct Proc {
    name: String,
    child: Child,
    reported: bool,
    /// How to start it again; `None`: not restarted (the chain, whose state would be gone).
    again: Option<Launch>,
    restarts: u32,
}

/// A running devnet; stopping it (or dropping it) stops every child.
pub(crate) struct Devnet {
    procs: Vec<Proc>,
    /// The chain's JSON-RPC URL.
    pub(crate) rpc_url: String,
    /// The coordinator's base URL.
    pub(crate) coordinator: String,
    /// The deployment (chain id, addresses), as deployed.
    pub(crate) deployment: Value,
    /// The same, as every client pins it (`deployment.json` in the data folder).
    pub(crate) pinned: Deployment,
    /// Where the logs are.
    pub(crate) data_dir: PathBuf,
    /// The verifiers' `/metrics` URLs.
    pub(crate) verifier_urls: Vec<String>,
    /// The workers' accounts.
    pub(crate) providers: Vec<usize>,
    /// Blocks on top of an event before the coordinator applies it.
    pub(crate) confirmations: u64,
    /// The web app the coordinator serves, or why there is none.
    pub(crate) web: Result<PathBuf, String>,
}

impl std::fmt::Debug for Devnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devnet").field("rpc_url", &self.rpc_url).field("coordinator", &self.coordinator).finish_non_exhaustive()
    }
}

/// The repository (for `anvil/deploy.sh`, the pinned Foundry binaries and the example jobs):
/// `QOR_ROOT`, else the folder above the `target` this binary was built in, else the current one.
pub(crate) fn repo_root() -> anyhow::Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(root) = std::env::var("QOR_ROOT") {
        candidates.push(PathBuf::from(root));
    }
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    candidates.push(std::env::current_dir()?);
    candidates
        .into_iter()
        .find(|c| c.join("anvil/deploy.sh").exists())
        .ok_or_else(|| anyhow!("cannot find the QOR repository (anvil/deploy.sh); set QOR_ROOT"))
}

/// The web app to serve: `--web-dir` (which must hold index.html), else the repository's `web/dist`
/// when it is built; otherwise why there is none.
fn web_dir(chosen: Option<PathBuf>, root: &Path) -> Result<PathBuf, String> {
    let built = |dir: &Path| dir.join("index.html").is_file();
    match chosen {
        Some(dir) if built(&dir) => Ok(std::fs::canonicalize(&dir).unwrap_or(dir)),
        Some(dir) => Err(format!("--web-dir {} has no index.html", dir.display())),
        None if built(&root.join("web/dist")) => Ok(root.join("web/dist")),
        None => Err("web/dist is not built (`npm --prefix web ci && npm --prefix web run build`)".into()),
    }
}

/// A sibling binary of this one (`qor-coordinator`, `qor-worker`, `qor-verifier`).
fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("the binary's folder")?.join(name);
    if !path.exists() {
        bail!("{} is missing: build the workspace (`cargo build --release`)", path.display());
    }
    Ok(path)
}

fn run(name: &str, cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("starting {name}"))?;
    if !out.status.success() {
        bail!("{name} failed ({}):\n{}{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn wait_http(url: &str, secs: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let http = reqwest::Client::new();
    loop {
        if http.get(url).send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{url} did not answer within {secs} s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Devnet {
    /// `why` a child did not come up, with whether it is still running and the end of its log.
    fn not_up(&mut self, name: &str, why: anyhow::Error) -> anyhow::Error {
        let log = std::fs::read_to_string(self.data_dir.join(format!("{name}.log"))).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
        let state = match self.procs.iter_mut().find(|p| p.name == name).map(|p| p.child.try_wait()) {
            Some(Ok(Some(status))) => format!("it exited ({status})"),
            Some(Ok(None)) => "it is still running".to_string(),
            _ => "its state is unknown".to_string(),
        };
        anyhow::anyhow!("{why}; {state}; the end of {name}.log:\n{}", tail.join("\n"))
    }

    fn spawn(&mut self, name: &str, cmd: &mut Command) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.data_dir.join(format!("{name}.log")))?;
        let child = cmd.stdout(log.try_clone()?).stderr(log).spawn().with_context(|| format!("starting {name}"))?;
        // Everything but the chain is started again if it dies: each keeps its state on disk.
        let again = (name != "anvil").then(|| {
            (
                PathBuf::from(cmd.get_program()),
                cmd.get_args().map(ToOwned::to_owned).collect(),
                cmd.get_envs().filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))).collect(),
            )
        });
        self.procs.push(Proc { name: name.to_string(), child, reported: false, again, restarts: 0 });
        Ok(())
    }

    /// Starts a dead child again, its output appended to its log.
    fn respawn(data_dir: &Path, p: &mut Proc) -> anyhow::Result<()> {
        let Some((program, args, envs)) = &p.again else { bail!("{} is not restarted", p.name) };
        let log = std::fs::OpenOptions::new().append(true).create(true).open(data_dir.join(format!("{}.log", p.name)))?;
        p.child = Command::new(program)
            .args(args)
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} again", p.name))?;
        p.restarts += 1;
        p.reported = false;
        Ok(())
    }

    /// Starts everything and waits until it answers.
    pub(crate) async fn start(cfg: &DevnetConfig) -> anyhow::Result<Self> {
        if !(1..=accounts::PROVIDERS.len()).contains(&cfg.workers) {
            bail!("--workers must be 1 to {} (the devnet's well-known provider accounts)", accounts::PROVIDERS.len());
        }
        if cfg.byzantine >= cfg.workers {
            bail!("--byzantine must leave at least one honest worker");
        }
        if cfg.verifiers != 1 && cfg.verifiers != 3 {
            bail!("--verifiers must be 1 or 3 (a 2-of-3 committee)");
        }
        // Every port a child will listen on, free now: a taken one would otherwise show as a child
        // that never answers.
        let mut ports = vec![(cfg.chain_port, "--chain-port".to_string()), (cfg.coordinator_port, "--coordinator-port".to_string())];
        ports.extend(
            (0..cfg.verifiers as u16).map(|n| (cfg.coordinator_port + 100 + n, format!("verifier {n} (--coordinator-port + {})", 100 + n))),
        );
        for (port, what) in ports {
            if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", port)) {
                bail!("port {port} ({what}) cannot be listened on: {e}; pick other ports with --chain-port and --coordinator-port");
            }
        }
        let root = repo_root()?;
        let _ = std::fs::remove_dir_all(&cfg.data_dir);
        std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("creating {}", cfg.data_dir.display()))?;
        let data_dir = std::fs::canonicalize(&cfg.data_dir)?;
        let rpc_url = format!("http://127.0.0.1:{}", cfg.chain_port);
        let coordinator = format!("http://127.0.0.1:{}", cfg.coordinator_port);
        let mut net = Self {
            procs: Vec::new(),
            rpc_url: rpc_url.clone(),
            coordinator: coordinator.clone(),
            deployment: Value::Null,
            pinned: Deployment {
                chain_id: 0,
                deploy_block: 0,
                job_escrow: Address::ZERO,
                provider_registry: Address::ZERO,
                verifier_committee: Address::ZERO,
                storage_market: Address::ZERO,
            },
            data_dir: data_dir.clone(),
            verifier_urls: Vec::new(),
            providers: accounts::PROVIDERS[..cfg.workers].to_vec(),
            confirmations: cfg.confirmations,
            web: web_dir(cfg.web_dir.clone(), &root),
        };
        if let (Some(_), Err(why)) = (&cfg.web_dir, &net.web) {
            bail!("{why}");
        }

        // The chain: one block a second, so storage periods and challenge windows pass on their own.
        let anvil = root.join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
        if !anvil.exists() {
            bail!("{} is missing: run `npm ci` in {}", anvil.display(), root.display());
        }
        let port = cfg.chain_port.to_string();
        net.spawn(
            "anvil",
            Command::new(&anvil).args(["--host", "127.0.0.1", "--port", &port, "--chain-id", "31337", "--accounts", "20"]).args([
                "--balance",
                "10000",
                "--block-time",
                "1",
            ]),
        )?;
        let committee: Vec<String> = accounts::VERIFIERS[..cfg.verifiers].iter().map(|i| format!("{:#x}", accounts::address(*i))).collect();
        let out = run(
            "anvil/deploy.sh",
            Command::new("bash")
                .arg(root.join("anvil/deploy.sh"))
                .args(["--rpc-url", &rpc_url, "--name-prefix", &format!("devnet-{}-", cfg.chain_port)])
                .env("QOR_CHALLENGE_WINDOW", cfg.challenge_window.to_string())
                .env("QOR_COMMITTEE", committee.join(","))
                .env("QOR_THRESHOLD", if cfg.verifiers == 3 { "2" } else { "1" }),
        )?;
        let file =
            out.lines().find_map(|l| l.strip_prefix("deployed on chain 31337: ")).context("deploy.sh did not say where")?.to_string();
        let pinned = data_dir.join("deployment.json");
        std::fs::copy(&file, &pinned)?;
        let bytes = std::fs::read(&file)?;
        net.deployment = serde_json::from_slice(&bytes)?;
        net.pinned = Deployment::from_json(&bytes).with_context(|| format!("the deployment {file}"))?;

        net.spawn(
            "coordinator",
            Command::new(sibling("qor-coordinator")?)
                .arg("--database-url")
                .arg(data_dir.join("coordinator.db"))
                .arg("--data-dir")
                .arg(data_dir.join("coordinator"))
                .args(["--listen", &format!("127.0.0.1:{}", cfg.coordinator_port), "--rpc-url", &rpc_url, "--poll-ms", "200"])
                // Every client of a devnet is on this machine, one address: the per-address rate of
                // anonymous writes is for strangers on a public coordinator, not for the benchmarks here.
                .args(["--writes-per-second-per-ip", "100000"])
                // Sign-In with Ethereum messages must name this coordinator as the page's host.
                .args(["--siwe-domain", &format!("127.0.0.1:{}", cfg.coordinator_port)])
                .args(["--siwe-domain", &format!("localhost:{}", cfg.coordinator_port)])
                .args(["--confirmations", &cfg.confirmations.to_string()])
                .arg("--deployment")
                .arg(data_dir.join("deployment.json"))
                .args(net.web.as_ref().map(|dir| [OsString::from("--web-dir"), dir.clone().into_os_string()]).into_iter().flatten())
                .env("RUST_LOG", "qor_coordinator=info"),
        )?;
        if let Err(e) = wait_http(&format!("{coordinator}/health"), 30).await {
            return Err(net.not_up("coordinator", e));
        }

        for (n, account) in accounts::VERIFIERS[..cfg.verifiers].iter().enumerate() {
            let dir = data_dir.join(format!("verifier-{n}"));
            std::fs::create_dir_all(&dir)?;
            let config = dir.join("qor-verifier.toml");
            let listen = format!("127.0.0.1:{}", cfg.coordinator_port + 100 + n as u16);
            run(
                "qor-verifier init",
                Command::new(sibling("qor-verifier")?)
                    .arg("--config")
                    .arg(&config)
                    .args(["init", "--coordinator", &coordinator, "--rpc-url", &rpc_url, "--listen", &listen, "--poll-ms", "500"])
                    .arg("--deployment")
                    .arg(&pinned)
                    .args(["--batch-size", "150", "--batch-max-wait-ms", "1000", "--work-dir"])
                    .arg(dir.join("work")),
            )?;
            net.spawn(
                &format!("verifier-{n}"),
                Command::new(sibling("qor-verifier")?)
                    .arg("--config")
                    .arg(&config)
                    .arg("run")
                    .env("QOR_VERIFIER_KEY", KEYS[*account])
                    .env("RUST_LOG", "qor_verifier=info"),
            )?;
            net.verifier_urls.push(format!("http://{listen}"));
        }

        for (n, account) in net.providers.clone().into_iter().enumerate() {
            let dir = data_dir.join(format!("worker-{n}"));
            std::fs::create_dir_all(&dir)?;
            let config = dir.join("qor-worker.toml");
            let worker = |args: &[&str]| {
                let mut c = Command::new(sibling("qor-worker").expect("checked"));
                c.arg("--config").arg(&config).args(args).env("QOR_WORKER_KEY", KEYS[account]).env("RUST_LOG", "qor_worker=info");
                c
            };
            sibling("qor-worker")?;
            let data = dir.join("data");
            run(
                "qor-worker init",
                worker(&[
                    "init",
                    "--coordinator",
                    &coordinator,
                    "--rpc-url",
                    &rpc_url,
                    "--key-from-env",
                    "--price-per-fuel",
                    "10000000",
                    "--max-jobs",
                    "32",
                ])
                .arg("--data-dir")
                .arg(&data)
                .arg("--deployment")
                .arg(&pinned),
            )?;
            run("qor-worker register", &mut worker(&["register", "--stake", "1ether"]))?;
            let byzantine = n < cfg.byzantine;
            if byzantine {
                eprintln!("qor devnet: worker-{n} ({:#x}) is byzantine: it reports corrupted digests", accounts::address(account));
            }
            net.spawn(&format!("worker-{n}"), &mut worker(if byzantine { &["run", "--fault-corrupt-digest"] } else { &["run"] }))?;
        }
        for (n, url) in net.verifier_urls.clone().iter().enumerate() {
            if let Err(e) = wait_http(&format!("{url}/metrics"), 30).await {
                return Err(net.not_up(&format!("verifier-{n}"), e));
            }
        }
        Ok(net)
    }

    /// An address from the deployment.
    pub(crate) fn address(&self, key: &str) -> Address {
        self.deployment[key].as_str().and_then(|a| a.parse().ok()).unwrap_or_default()
    }

    /// What a new user needs: URLs, chain, contracts, keys to import into MetaMask.
    pub(crate) fn summary(&self) -> String {
        let mut s = String::new();
        s.push_str("QOR devnet is up\n");
        s.push_str(&format!(
            "  chain        {}  (chain id 31337, one block a second; the market acts on an event {} blocks deep)\n",
            self.rpc_url, self.confirmations
        ));
        match &self.web {
            Ok(_) => s.push_str(&format!("  web app      {}/  (buyer and provider workspaces, network view)\n", self.coordinator)),
            Err(why) => s.push_str(&format!("  web app      not served: {why}\n")),
        }
        s.push_str(&format!("  coordinator  {}  (API: {}/openapi.json)\n", self.coordinator, self.coordinator));
        let n = self.verifier_urls.len();
        s.push_str(&format!("  committee    {} of {n} verifier signatures settle a batch\n", if n == 3 { 2 } else { 1 }));
        for (i, v) in self.verifier_urls.iter().enumerate() {
            s.push_str(&format!("  verifier {i}   {v}/health  {v}/metrics\n"));
        }
        for key in ["jobEscrow", "storageMarket", "providerRegistry", "verifierCommittee"] {
            s.push_str(&format!("  {key:<17} {:#x}\n", self.address(key)));
        }
        s.push_str("  keys to import into MetaMask (devnet only; well-known, never use them elsewhere):\n");
        s.push_str(&format!("    buyer     {:#x}  {}\n", accounts::address(accounts::BUYER), KEYS[accounts::BUYER]));
        for p in &self.providers {
            s.push_str(&format!("    provider  {:#x}  {}\n", accounts::address(*p), KEYS[*p]));
        }
        s.push_str(&format!("  logs         {}\n", self.data_dir.display()));
        s
    }

    /// Reports children that exited since the last call and starts them again (at most
    /// [`MAX_RESTARTS`] times each; never the chain); returns their names.
    pub(crate) fn check(&mut self) -> Vec<String> {
        let mut died = Vec::new();
        for p in &mut self.procs {
            if !p.reported
                && let Ok(Some(status)) = p.child.try_wait()
            {
                p.reported = true;
                let log = self.data_dir.join(format!("{}.log", p.name));
                if p.again.is_some() && p.restarts < MAX_RESTARTS {
                    match Self::respawn(&self.data_dir, p) {
                        Ok(()) => eprintln!(
                            "qor devnet: {} exited ({status}); started again ({} of {MAX_RESTARTS}); its log: {}",
                            p.name,
                            p.restarts,
                            log.display()
                        ),
                        Err(e) => eprintln!("qor devnet: {} exited ({status}) and could not be started again: {e:#}", p.name),
                    }
                } else {
                    eprintln!("qor devnet: {} exited ({status}) and stays down; its log: {}", p.name, log.display());
                }
                died.push(p.name.clone());
            }
        }
        died
    }

    /// Stops every child: SIGTERM (workers and verifiers wind down), then a kill after 10 s.
    pub(crate) fn stop(&mut self) {
        for p in self.procs.iter().rev() {
            let _ = Command::new("kill").args(["-TERM", &p.child.id().to_string()]).stderr(Stdio::null()).status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for p in self.procs.iter_mut().rev() {
            while Instant::now() < deadline && matches!(p.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        self.procs.clear();
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        self.stop();
    }
}
