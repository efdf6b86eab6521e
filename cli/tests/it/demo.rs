//! `qor devnet --demo --exit`: the whole market on this machine, the guided loop narrated, and its end
//! state checked (both jobs released, nothing left in escrow, 90/10). It exits 0 only if every step
//! held.

use std::process::Command;

#[test]
fn the_devnet_demo_runs_every_step_and_exits_cleanly() {
    let _one_at_a_time = crate::one_devnet_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let port = |n: u16| (20_000 + (std::process::id() % 10_000) as u16 + n).to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_qor"))
        .args(["devnet", "--demo", "--exit", "--challenge-window", "5", "--chain-port", &port(0), "--coordinator-port", &port(1)])
        .arg("--data-dir")
        .arg(tmp.path().join("devnet"))
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    for needle in ["QOR devnet is up", "[1/9]", "[5/9]", "[9/9]", "hash it yourself", "escrow balance:  0 ETH", "Every step held."] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(text.contains("(90.") && text.contains("(10."), "the 90/10 split is shown:\n{text}");
}
