//! The `qor` binary end to end.

mod byzantine;
mod chaos;
mod demo;
mod python;
mod reorg;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use alloy::network::TransactionBuilder;
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy_primitives::Address;
use alloy_sol_types::SolCall;
use serde_json::Value;

/// One devnet at a time: two (each a chain, a coordinator, verifiers and three workers) on the two
/// cores CI has starve each other's workers of CPU until their leases lapse.
static DEVNET: Mutex<()> = Mutex::new(());

pub(crate) fn one_devnet_at_a_time() -> MutexGuard<'static, ()> {
    DEVNET.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `qor devnet` running in the background, stopped with Ctrl-C (SIGINT) when dropped.
pub(crate) struct Devnet {
    child: Child,
    /// What it printed up to "Ctrl-C stops everything".
    pub(crate) summary: String,
    /// The chain's JSON-RPC URL.
    pub(crate) rpc: String,
    /// The coordinator's base URL.
    pub(crate) coordinator: String,
    /// Its data folder is `tmp/devnet`.
    pub(crate) tmp: tempfile::TempDir,
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl Devnet {
    /// Starts `qor devnet <args>` on free ports outside the ephemeral range ([`qor_testkit::devnet_ports`])
    /// and waits until it is up.
    pub(crate) fn start(args: &[&str]) -> Self {
        let guard = one_devnet_at_a_time();
        let tmp = tempfile::tempdir().unwrap();
        let (chain_port, coordinator_port) = qor_testkit::devnet_ports();
        let (chain_port, coordinator_port) = (chain_port.to_string(), coordinator_port.to_string());
        let mut child = Command::new(env!("CARGO_BIN_EXE_qor"))
            .arg("devnet")
            .args(args)
            .args(["--chain-port", &chain_port, "--coordinator-port", &coordinator_port])
            .arg("--data-dir")
            .arg(tmp.path().join("devnet"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut summary = String::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            summary.push_str(&line);
            summary.push('\n');
            if line.contains("Ctrl-C stops everything") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        assert!(summary.contains("QOR devnet is up"), "{summary}");
        Self {
            child,
            summary,
            rpc: format!("http://127.0.0.1:{chain_port}"),
            coordinator: format!("http://127.0.0.1:{coordinator_port}"),
            tmp,
            _one_at_a_time: guard,
        }
    }

    /// The deployment file (`jobEscrow`, `providerRegistry`, `verifierCommittee`, …).
    pub(crate) fn deployment(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.tmp.path().join("devnet/deployment.json")).unwrap()).unwrap()
    }

    /// A contract's address from the deployment file.
    pub(crate) fn address(&self, name: &str) -> Address {
        self.deployment()[name].as_str().unwrap().parse().unwrap()
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `qor` with `--json`, when it succeeds (a deal the coordinator has not applied yet is a 404).
pub(crate) fn qor_try(args: &[&str]) -> Option<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_qor")).args(args).output().unwrap();
    out.status.success().then(|| serde_json::from_slice(&out.stdout).ok()).flatten()
}

pub(crate) fn qor(args: &[&str]) -> Value {
    qor_with_progress(args).0
}

/// `qor` with `--json`: the document on stdout, and what it reported on stderr as it went.
pub(crate) fn qor_with_progress(args: &[&str]) -> (Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_qor")).args(args).output().unwrap();
    let progress = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "qor {args:?}: {}{progress}", String::from_utf8_lossy(&out.stdout));
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("qor {args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)));
    (doc, progress)
}

pub(crate) async fn call<C: SolCall>(rpc: &str, to: Address, c: C) -> C::Return {
    let node = ProviderBuilder::new().connect_http(rpc.parse().unwrap());
    C::abi_decode_returns(&node.call(TransactionRequest::default().with_to(to).with_input(c.abi_encode())).await.unwrap()).unwrap()
}
