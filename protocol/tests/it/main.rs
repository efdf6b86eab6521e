//! Integration tests of qor-protocol: one binary, a module per area.

mod deployment;
mod digest;
mod eip712;
mod merkle;
mod siwe;
mod spec;
mod vectors;

/// Compares `value` with the vectors file `contracts/test/data/<name>`, which the Foundry tests read;
/// with `QOR_WRITE_VECTORS` set, rewrites it first.
pub(crate) fn check_vectors_file(name: &str, value: &serde_json::Value) {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../contracts/test/data").join(name);
    let fresh = serde_json::to_string_pretty(value).unwrap() + "\n";
    if std::env::var_os("QOR_WRITE_VECTORS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run QOR_WRITE_VECTORS=1 cargo test -p qor-protocol", path.display()));
    assert!(on_disk == fresh, "{} is stale; run QOR_WRITE_VECTORS=1 cargo test -p qor-protocol", path.display());
}
