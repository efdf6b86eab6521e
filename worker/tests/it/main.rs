//! Integration tests of qor-worker: one binary, a module per area.

mod exec;
mod sandbox;
