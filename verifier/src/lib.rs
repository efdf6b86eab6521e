//! The QOR verifier: what makes payment mean "the work was done".
//!
//! - [`judge`] is the compute rule, pure and deterministic so every committee member reaches the same
//!   verdict from the same receipts: check each replica's receipt (its EIP-712 signature, the worker it
//!   names, the job, the seal it committed to, the provider's registration), group the valid ones by
//!   `resultDigest`, and settle on a strict majority, escalate to more replicas when there is none, or
//!   refund at the cap.
//! - [`service`] runs it against a coordinator and the chain: verdicts, batched settlements,
//!   finalization, challenge resolution and storage challenges ([`service::Service`]).
//! - [`chain`] sends its transactions (nonces, fees, replacement, receipts); [`config`] is its file;
//!   [`http`] serves `/health` and `/metrics`.

pub mod chain;
pub mod config;
pub mod http;
pub mod judge;
pub mod service;
