//! The provider side of QOR. This library holds the deterministic WebAssembly sandbox every worker runs
//! jobs in — and every buyer re-runs them in with `qor-worker exec` — so that honest replicas always
//! agree on `resultDigest` and `fuelUsed`.

/// `qor-worker exec`: one job, locally.
pub mod cache;
pub mod exec;
pub mod guard;
pub mod sandbox;
