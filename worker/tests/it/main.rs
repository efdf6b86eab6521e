//! Integration tests of qor-worker: one binary, a module per area.
#![allow(unreachable_pub, missing_docs)]

mod cli;
mod client;
mod conformance;
mod daemon;
mod exec;
mod hostile;
mod hosting;
mod runtime;
mod sandbox;
