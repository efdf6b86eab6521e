//! Integration tests of qor-protocol: one binary, a module per area.

mod digest;
mod eip712;
mod merkle;
mod spec;
mod vectors;
