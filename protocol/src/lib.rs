//! QOR's protocol definitions, shared by the coordinator, the worker, the verifier, the CLI and (as
//! test vectors) the Solidity contracts and the web app. Everything here is pure: no I/O beyond reading
//! from a caller's `Read`, no clocks, no randomness, so every side computes the same bytes.

pub mod auth;
pub mod bindings;
pub mod deployment;
/// `resultDigest` and `stdoutHash`.
pub mod digest;
/// EIP-712 receipts, settlements, resolutions and attestations; signing and recovery; seals.
pub mod eip712;
pub mod merkle;
/// Pinned interpreters for script jobs (`analysis.py`).
pub mod runtime;
pub mod siwe;
/// The job spec, its canonical JSON and `specHash`.
pub mod spec;
pub mod worker_requests;
