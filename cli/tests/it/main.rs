//! The `qor` binary end to end.

mod byzantine;
mod demo;

/// One devnet at a time: two (each a chain, a coordinator, a verifier and three workers) on the two
/// cores CI has starve each other's workers of CPU until their leases lapse.
pub(crate) static DEVNET: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
