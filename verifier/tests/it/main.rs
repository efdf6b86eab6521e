//! Tests of the verifier: the verdict rule, and the service against a real anvil, real contracts, a
//! coordinator over real sockets, and providers that run jobs in the real sandbox (and lie, or fall
//! silent, when a test says so) or the real `qor-worker` daemon.

mod chain;
mod cli;
mod judge;
mod service;
mod storage;
