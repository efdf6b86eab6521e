//! `qor devnet --demo --exit`: the whole market on this machine, the guided loop narrated, and its end
//! state checked (both jobs released, nothing left in escrow, 90/10). It exits 0 only if every step
//! held.

use std::process::Command;

#[test]
fn the_devnet_demo_runs_every_step_and_exits_cleanly() {
    let _one_at_a_time = crate::one_devnet_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let (chain_port, coordinator_port) = qor_testkit::devnet_ports();
    let (chain_port, coordinator_port) = (chain_port.to_string(), coordinator_port.to_string());
    let out = Command::new(env!("CARGO_BIN_EXE_qor"))
        .args([
            "devnet",
            "--demo",
            "--exit",
            "--challenge-window",
            "5",
            "--chain-port",
            &chain_port,
            "--coordinator-port",
            &coordinator_port,
        ])
        .arg("--data-dir")
        .arg(tmp.path().join("devnet"))
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    for needle in ["QOR devnet is up", "[1/9]", "[5/9]", "[9/9]", "hash it yourself", "escrow + market: 0 ETH", "Every step held."] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(text.contains("(90.") && text.contains("(10."), "the 90/10 split is shown:\n{text}");
}

#[test]
fn a_devnet_whose_port_is_taken_says_which_before_starting_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let (chain_port, coordinator_port) = qor_testkit::devnet_ports();
    // The first verifier's port (the coordinator's + 100) is held by someone else.
    let _held = std::net::TcpListener::bind(("127.0.0.1", coordinator_port + 100)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_qor"))
        .args(["devnet", "--chain-port", &chain_port.to_string(), "--coordinator-port", &coordinator_port.to_string()])
        .arg("--data-dir")
        .arg(tmp.path().join("devnet"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains(&format!("port {} (verifier 0 (--coordinator-port + 100))", coordinator_port + 100)), "{text}");
    // Nothing was started: the chain's port is still free.
    assert!(std::net::TcpListener::bind(("127.0.0.1", chain_port)).is_ok());
}
