//! The storage Merkle tree: how a file becomes the `merkleRoot` a buyer locks payment against, and how
//! a provider proves it still holds the chunk the chain challenges.
//!
//! Files are cut into [`CHUNK_SIZE`]-byte chunks, the last one zero padded. Leaves are
//! `keccak256(0x00 ‖ chunk)` and inner nodes `keccak256(0x01 ‖ left ‖ right)`, so a leaf can never pass
//! for a node. Pairs are index-ordered (left is the even position), which makes a proof bind its leaf
//! index: with sorted-pair hashing, as in OpenZeppelin's `MerkleProof`, a provider could answer another
//! chunk than the one asked. A level with an odd number of nodes promotes its last node unchanged
//! (rs_merkle's rule), so such a level contributes no sibling to a proof. `StorageProof.sol` verifies the
//! same paths on chain; `contracts/test/data/merkle.json` holds vectors both sides check.

use std::io::{self, Read};

use alloy_primitives::{B256, keccak256};
use rs_merkle::{Hasher, MerkleTree};

/// Size of a storage chunk in bytes.
pub const CHUNK_SIZE: usize = 1024;

/// Errors building or checking storage trees.
#[derive(Debug, thiserror::Error)]
pub enum MerkleError {
    /// A file must have at least one byte.
    #[error("the file is empty; a storage deal needs at least one byte")]
    EmptyFile,
    /// The chunk index is past the end of the file.
    #[error("chunk index {index} is out of range for {chunks} chunks")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The number of chunks.
        chunks: u64,
    },
    /// Reading the file failed.
    #[error("reading the file failed: {0}")]
    Io(#[from] io::Error),
}

/// Result alias for this module.
pub type MerkleResult<T> = Result<T, MerkleError>;

/// Number of chunks of a file of `size` bytes.
pub const fn chunk_count(size: u64) -> u64 {
    size.div_ceil(CHUNK_SIZE as u64)
}

/// `keccak256(0x00 ‖ chunk)`, with `chunk` zero padded to [`CHUNK_SIZE`].
pub fn leaf_hash(chunk: &[u8]) -> B256 {
    let mut buf = [0u8; CHUNK_SIZE + 1];
    let len = chunk.len().min(CHUNK_SIZE);
    buf[1..=len].copy_from_slice(&chunk[..len]);
    keccak256(buf)
}

/// `keccak256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &B256, right: &B256) -> B256 {
    let mut buf = [0u8; 65];
    buf[0] = 0x01;
    buf[1..33].copy_from_slice(left.as_slice());
    buf[33..].copy_from_slice(right.as_slice());
    keccak256(buf)
}

/// The rs_merkle hasher for QOR trees: leaves are hashed by [`leaf_hash`] before they reach rs_merkle,
/// which then only combines nodes.
#[derive(Clone, Copy, Debug)]
pub struct QorHasher;

impl Hasher for QorHasher {
    type Hash = [u8; 32];

    fn hash(data: &[u8]) -> [u8; 32] {
        keccak256(data).0
    }

    fn concat_and_hash(left: &[u8; 32], right: Option<&[u8; 32]>) -> [u8; 32] {
        match right {
            Some(right) => node_hash(&B256::from(*left), &B256::from(*right)).0,
            None => *left,
        }
    }
}

/// A proof that `chunk` is at `index` of the file committed to by a root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkProof {
    /// Position of the chunk in the file.
    pub index: u64,
    /// The chunk, zero padded to [`CHUNK_SIZE`].
    pub chunk: Vec<u8>,
    /// Siblings from the leaf up; levels where the node was promoted contribute none.
    pub path: Vec<B256>,
}

/// A whole storage tree, for a provider that answers challenges.
pub struct StorageTree {
    tree: MerkleTree<QorHasher>,
    size: u64,
}

impl std::fmt::Debug for StorageTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageTree").field("root", &self.root()).field("size", &self.size).finish()
    }
}

impl StorageTree {
    /// Builds the tree of `data`.
    pub fn from_bytes(data: &[u8]) -> MerkleResult<Self> {
        if data.is_empty() {
            return Err(MerkleError::EmptyFile);
        }
        let leaves: Vec<[u8; 32]> = data.chunks(CHUNK_SIZE).map(|c| leaf_hash(c).0).collect();
        Ok(Self { tree: MerkleTree::from_leaves(&leaves), size: data.len() as u64 })
    }

    /// The root the buyer locks payment against.
    pub fn root(&self) -> B256 {
        // A non-empty tree always has a root.
        B256::from(self.tree.root().unwrap_or_default())
    }

    /// Size of the file in bytes.
    pub const fn size(&self) -> u64 {
        self.size
    }

    /// Number of chunks.
    pub fn chunk_count(&self) -> u64 {
        self.tree.leaves_len() as u64
    }

    /// The sibling path of chunk `index`.
    pub fn path(&self, index: u64) -> MerkleResult<Vec<B256>> {
        let chunks = self.chunk_count();
        if index >= chunks {
            return Err(MerkleError::IndexOutOfRange { index, chunks });
        }
        Ok(self.tree.proof(&[index as usize]).proof_hashes().iter().map(|h| B256::from(*h)).collect())
    }

    /// A proof of chunk `index`, which is `data[index * CHUNK_SIZE..]` padded.
    pub fn prove(&self, data: &[u8], index: u64) -> MerkleResult<ChunkProof> {
        let path = self.path(index)?;
        let start = index as usize * CHUNK_SIZE;
        let mut chunk = data[start..data.len().min(start + CHUNK_SIZE)].to_vec();
        chunk.resize(CHUNK_SIZE, 0);
        Ok(ChunkProof { index, chunk, path })
    }
}

/// Checks that `proof` shows its chunk at its index of a file of `chunk_count` chunks with root `root`.
/// The same walk as `StorageProof.verify` on chain.
pub fn verify(root: &B256, chunk_count: u64, proof: &ChunkProof) -> bool {
    if proof.index >= chunk_count || proof.chunk.len() != CHUNK_SIZE {
        return false;
    }
    let mut hash = leaf_hash(&proof.chunk);
    let mut index = proof.index;
    let mut width = chunk_count;
    let mut siblings = proof.path.iter();
    while width > 1 {
        if index & 1 == 1 {
            let Some(left) = siblings.next() else { return false };
            hash = node_hash(left, &hash);
        } else if index + 1 < width {
            let Some(right) = siblings.next() else { return false };
            hash = node_hash(&hash, right);
        }
        index >>= 1;
        width = width.div_ceil(2);
    }
    siblings.next().is_none() && hash == *root
}

/// The root of the file read from `reader`, holding one chunk and one hash per tree level in memory
/// (not the file, not the leaves). Returns the root and the file's size.
pub fn root_from_reader(mut reader: impl Read) -> MerkleResult<(B256, u64)> {
    // `frontier[level]` is the root of a complete subtree of 2^level leaves waiting for its right twin.
    let mut frontier: Vec<Option<B256>> = Vec::new();
    let mut chunk = vec![0u8; CHUNK_SIZE];
    let mut size = 0u64;
    loop {
        let filled = read_full(&mut reader, &mut chunk)?;
        if filled == 0 {
            break;
        }
        size += filled as u64;
        chunk[filled..].fill(0);
        let mut node = leaf_hash(&chunk);
        let mut level = 0;
        loop {
            if level == frontier.len() {
                frontier.push(None);
            }
            match frontier[level].take() {
                Some(left) => {
                    node = node_hash(&left, &node);
                    level += 1;
                }
                None => {
                    frontier[level] = Some(node);
                    break;
                }
            }
        }
        if filled < CHUNK_SIZE {
            break;
        }
    }
    // The partial right edge: the lowest pending subtree is promoted until it meets the next one.
    let root = frontier.into_iter().flatten().reduce(|acc, higher| node_hash(&higher, &acc));
    root.map(|r| (r, size)).ok_or(MerkleError::EmptyFile)
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The chunks the storage market challenges in `period` of deal `deal_id` (a file of `chunks` chunks),
/// `k` of them, from the hash of the period's seed block: for each `j < k`,
/// `keccak256(abi.encode(seedHash, dealId, period, j)) % chunks`, as `StorageMarket` derives them (two
/// may coincide). Anyone who can see the seed block computes them; nobody before.
pub fn challenge_indexes(seed_hash: B256, deal_id: alloy_primitives::U256, period: u64, k: u8, chunks: u64) -> Vec<u64> {
    use alloy_sol_types::SolValue;
    (0..u64::from(k))
        .map(|j| {
            let h = keccak256((seed_hash, deal_id, alloy_primitives::U256::from(period), alloy_primitives::U256::from(j)).abi_encode());
            (alloy_primitives::U256::from_be_bytes(h.0) % alloy_primitives::U256::from(chunks.max(1))).to::<u64>()
        })
        .collect()
}
