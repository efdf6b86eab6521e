//! The provider side of QOR: the deterministic WebAssembly sandbox every worker runs jobs in (and every
//! buyer re-runs them in with `qor-worker exec`), so that honest replicas always agree on
//! `resultDigest` and `fuelUsed`; and the provider daemon around it.
//!
//! - [`sandbox`], [`guard`], [`cache`], [`compile`]: the sandbox; [`exec`]: one job, locally;
//! - [`daemon`]: `qor-worker run`; [`client`]: the coordinator protocol; [`chain`]: registry and escrow
//!   transactions; [`hosting`]: hosted storage files and their trees; [`config`], [`keys`].

pub mod cache;
pub mod chain;
pub mod client;
pub mod compile;
pub mod config;
pub mod daemon;
/// `qor-worker exec`: one job, locally.
pub mod exec;
pub mod guard;
pub mod hosting;
pub mod keys;
pub mod runtime;
pub mod sandbox;
