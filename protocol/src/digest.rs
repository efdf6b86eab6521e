//! `resultDigest`: the one hash that says what a job produced, compared across replicas by the verifier
//! and settled on chain. It covers the exit code, stdout and every file under `/out` in sorted path
//! order, each length-prefixed so no two different results share an encoding.

use alloy_primitives::{B256, Keccak256, keccak256};

const DOMAIN: &[u8] = b"QOR/result/v1";

/// Errors building a digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    /// Files must be added in strictly increasing byte order of their paths.
    #[error("output file `{got}` is out of order: it must sort after `{previous}`")]
    OutOfOrder {
        /// The path added.
        got: String,
        /// The path added before it.
        previous: String,
    },
}

/// Incremental `resultDigest`:
/// `keccak256("QOR/result/v1" ‖ u32be(exit) ‖ u64be(|stdout|) ‖ stdout ‖ ("F" ‖ u64be(|path|) ‖ path ‖
/// u64be(|data|) ‖ data)* ‖ "E" ‖ u64be(files))`.
#[derive(Debug)]
pub struct ResultHasher {
    hasher: Keccak256,
    previous: Option<String>,
    files: u64,
}

impl ResultHasher {
    /// Starts a digest with the exit code and stdout.
    pub fn new(exit_code: u32, stdout: &[u8]) -> Self {
        let mut hasher = Keccak256::new();
        hasher.update(DOMAIN);
        hasher.update(exit_code.to_be_bytes());
        hasher.update((stdout.len() as u64).to_be_bytes());
        hasher.update(stdout);
        Self { hasher, previous: None, files: 0 }
    }

    /// Adds one output file; `path` is relative to `/out`.
    pub fn add_file(&mut self, path: &str, data: &[u8]) -> Result<(), DigestError> {
        if let Some(previous) = &self.previous
            && path.as_bytes() <= previous.as_bytes()
        {
            return Err(DigestError::OutOfOrder { got: path.to_owned(), previous: previous.clone() });
        }
        self.hasher.update(b"F");
        self.hasher.update((path.len() as u64).to_be_bytes());
        self.hasher.update(path.as_bytes());
        self.hasher.update((data.len() as u64).to_be_bytes());
        self.hasher.update(data);
        self.previous = Some(path.to_owned());
        self.files += 1;
        Ok(())
    }

    /// The digest.
    pub fn finish(mut self) -> B256 {
        self.hasher.update(b"E");
        self.hasher.update(self.files.to_be_bytes());
        self.hasher.finalize()
    }
}

/// `keccak256(stdout)`, the `stdoutHash` of a receipt.
pub fn stdout_hash(stdout: &[u8]) -> B256 {
    keccak256(stdout)
}
