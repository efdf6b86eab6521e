//! Coordinator tests: the API in process (blobs, specs, hostile requests, the worker flow, leases,
#![allow(unreachable_pub, missing_docs)]
//! restarts) and against a real anvil with the contracts deployed (funding, reorgs, restarts).


mod anvil;
mod api;
mod common;
mod flow;
