//! Tests of qor-verifier.
#![allow(unreachable_pub, missing_docs)]

mod judge;
