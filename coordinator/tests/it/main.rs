//! Coordinator tests: the API in process (blobs, specs, hostile requests, the worker flow, leases,
//! restarts, storage hosting and challenges, verifier verdicts, Sign-In with Ethereum) and against a
//! real anvil with the contracts deployed (funding, reorgs, restarts, the committee).
#![allow(unreachable_pub, missing_docs)]

mod anvil;
mod api;
mod bounds;
mod common;
mod flow;
mod sessions;
mod storage;
