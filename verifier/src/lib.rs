//! The QOR verifier: what makes payment mean "the work was done". [`judge`] is its compute rule, pure
//! and deterministic so every committee member reaches the same verdict from the same receipts: check
//! each replica's receipt (its EIP-712 signature, the worker it names, the job, the seal it committed
//! to), group the valid ones by `resultDigest`, and settle on a strict majority, escalate to more
//! replicas when there is none, or refund at the cap.

pub mod judge;
