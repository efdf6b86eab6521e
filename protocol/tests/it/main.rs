//! Integration tests of qor-protocol: one binary, a module per area.

mod merkle;
