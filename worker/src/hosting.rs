//! Hosted storage files. A provider keeps each deal's file under its data folder together with the
//! file's whole Merkle tree (every level, on disk), so answering a challenge reads one chunk and one
//! hash per level instead of re-hashing the file: microseconds for a gigabyte, not seconds.
//!
//! Layout under `<data>/storage/`: `<deal>.bin` (the file), `<deal>.tree` (levels, leaves first, each a
//! run of 32-byte hashes) and `<deal>.json` (root, size, level widths). Files are written under a
//! `.part` name and renamed once complete and verified, so a crash or a full disk never leaves a
//! half-written file where a hosted one is expected.
//!
//! A deal is named by its on-chain id, a number ([`U256`]): no text a coordinator sends becomes part of
//! a file name. And every file is opened through the storage folder's capability handle (cap-std), so
//! nothing here can reach outside it whatever the name.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use alloy_primitives::{B256, U256};
use cap_std::ambient_authority;
use cap_std::fs::Dir;
use qor_protocol::merkle::{CHUNK_SIZE, ChunkProof, leaf_hash, node_hash};
use serde::{Deserialize, Serialize};

/// What `<deal>.json` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostedMeta {
    /// The deal.
    pub deal_id: U256,
    /// The Merkle root.
    pub root: B256,
    /// File size in bytes.
    pub size: u64,
    /// Width of each tree level, leaves first.
    pub widths: Vec<u64>,
}

/// Errors hosting a file.
#[derive(Debug, thiserror::Error)]
pub enum HostingError {
    /// Reading or writing the data folder failed (a full disk among others).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file is empty (no tree).
    #[error("an empty file cannot be hosted")]
    Empty,
    /// The recomputed root is not the deal's.
    #[error("root mismatch: the file hashes to {computed}, the deal locks {expected}")]
    RootMismatch {
        /// What the file hashes to.
        computed: B256,
        /// The deal's root.
        expected: B256,
    },
    /// The challenged chunk is past the end of the file.
    #[error("chunk {index} is out of range ({chunks} chunks)")]
    OutOfRange {
        /// Asked for.
        index: u64,
        /// Chunks in the file.
        chunks: u64,
    },
    /// The stored metadata is unreadable.
    #[error("corrupt hosting metadata: {0}")]
    Meta(#[from] serde_json::Error),
}

/// The storage folder of a provider.
#[derive(Debug, Clone)]
pub struct Hosting {
    dir: std::sync::Arc<Dir>,
}

fn width_up(width: u64) -> u64 {
    width.div_ceil(2)
}

impl Hosting {
    /// Opens (creating) `<data>/storage`, removing leftovers of interrupted writes. The only use of
    /// ambient authority: everything after goes through the folder's handle.
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(data_dir.join("storage"))?;
        let dir = Dir::open_ambient_dir(data_dir.join("storage"), ambient_authority())?;
        for entry in dir.entries()? {
            let name = entry?.file_name();
            if Path::new(&name).extension().is_some_and(|e| e.to_string_lossy().starts_with("part")) {
                let _ = dir.remove_file(&name);
            }
        }
        Ok(Self { dir: std::sync::Arc::new(dir) })
    }

    fn name(deal: U256, ext: &str) -> String {
        format!("{deal}.{ext}")
    }

    fn open_file(&self, deal: U256, ext: &str) -> std::io::Result<File> {
        Ok(self.dir.open(Self::name(deal, ext))?.into_std())
    }

    /// Deals hosted here, with their metadata.
    pub fn list(&self) -> Result<Vec<HostedMeta>, HostingError> {
        let mut out = Vec::new();
        for entry in self.dir.entries()? {
            let name = entry?.file_name();
            if Path::new(&name).extension().is_some_and(|e| e == "json") {
                out.push(serde_json::from_slice(&self.dir.read(&name)?)?);
            }
        }
        out.sort_by_key(|m: &HostedMeta| m.deal_id);
        Ok(out)
    }

    /// Bytes the hosted files take (files and trees).
    pub fn used_bytes(&self) -> Result<u64, HostingError> {
        let mut used = 0;
        for entry in self.dir.entries()? {
            used += entry?.metadata()?.len();
        }
        Ok(used)
    }

    /// Whether `deal` is hosted here.
    pub fn has(&self, deal: U256) -> bool {
        self.dir.exists(Self::name(deal, "json"))
    }

    /// A new (empty) file for `deal`'s download, which [`Self::adopt`] then checks.
    pub fn create_part(&self, deal: U256) -> std::io::Result<File> {
        Ok(self.dir.create(Self::name(deal, "bin.part"))?.into_std())
    }

    /// Takes the downloaded file written with [`Self::create_part`]: builds its tree, checks the root
    /// against `expected`, and only then moves file, tree and metadata into place. On a mismatch (or
    /// any error) nothing is kept.
    pub fn adopt(&self, deal: U256, expected: B256) -> Result<HostedMeta, HostingError> {
        let (part, tree_part, meta_part) = (Self::name(deal, "bin.part"), Self::name(deal, "tree.part"), Self::name(deal, "json.part"));
        let result = (|| {
            let meta = build_tree(self.dir.open(&part)?.into_std(), self.dir.create(&tree_part)?.into_std(), deal)?;
            if meta.root != expected {
                return Err(HostingError::RootMismatch { computed: meta.root, expected });
            }
            let mut file = self.dir.create(&meta_part)?.into_std();
            file.write_all(&serde_json::to_vec_pretty(&meta)?)?;
            file.sync_all()?;
            self.dir.rename(&part, &self.dir, Self::name(deal, "bin"))?;
            self.dir.rename(&tree_part, &self.dir, Self::name(deal, "tree"))?;
            // The metadata last: a deal counts as hosted only once its file and tree are in place.
            self.dir.rename(&meta_part, &self.dir, Self::name(deal, "json"))?;
            Ok(meta)
        })();
        if result.is_err() {
            for p in [part, tree_part, meta_part] {
                let _ = self.dir.remove_file(p);
            }
        }
        result
    }

    fn meta(&self, deal: U256) -> Result<HostedMeta, HostingError> {
        Ok(serde_json::from_slice(&self.dir.read(Self::name(deal, "json"))?)?)
    }

    /// Re-reads a hosted file and checks it still hashes to its root (after a restart, say).
    pub fn reverify(&self, deal: U256) -> Result<HostedMeta, HostingError> {
        let meta = self.meta(deal)?;
        let (root, _) = qor_protocol::merkle::root_from_reader(BufReader::new(self.open_file(deal, "bin")?))
            .map_err(|e| HostingError::Io(std::io::Error::other(e.to_string())))?;
        if root != meta.root {
            return Err(HostingError::RootMismatch { computed: root, expected: meta.root });
        }
        Ok(meta)
    }

    /// The proof for chunk `index` of a hosted file: one chunk read and one hash per tree level.
    pub fn prove(&self, deal: U256, index: u64) -> Result<ChunkProof, HostingError> {
        let meta = self.meta(deal)?;
        let chunks = meta.widths[0];
        if index >= chunks {
            return Err(HostingError::OutOfRange { index, chunks });
        }
        let mut chunk = vec![0u8; CHUNK_SIZE];
        let mut file = self.open_file(deal, "bin")?;
        file.seek(SeekFrom::Start(index * CHUNK_SIZE as u64))?;
        let want = (meta.size - index * CHUNK_SIZE as u64).min(CHUNK_SIZE as u64) as usize;
        file.read_exact(&mut chunk[..want])?;

        let mut tree = self.open_file(deal, "tree")?;
        let mut path = Vec::new();
        let (mut i, mut level_start) = (index, 0u64);
        for &width in &meta.widths[..meta.widths.len() - 1] {
            let sibling = if i & 1 == 1 {
                Some(i - 1)
            } else if i + 1 < width {
                Some(i + 1)
            } else {
                None // promoted: this level contributes no sibling
            };
            if let Some(s) = sibling {
                let mut h = [0u8; 32];
                tree.seek(SeekFrom::Start((level_start + s) * 32))?;
                tree.read_exact(&mut h)?;
                path.push(B256::from(h));
            }
            level_start += width;
            i >>= 1;
        }
        Ok(ChunkProof { index, chunk, path })
    }
}

/// Reads `file` once, writing every tree level to `tree_out` (leaves first); returns the metadata.
fn build_tree(file: File, tree_out: File, deal: U256) -> Result<HostedMeta, HostingError> {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut level: Vec<B256> = Vec::new();
    let mut chunk = vec![0u8; CHUNK_SIZE];
    let mut size = 0u64;
    loop {
        let mut filled = 0;
        while filled < CHUNK_SIZE {
            let n = reader.read(&mut chunk[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        size += filled as u64;
        chunk[filled..].fill(0);
        level.push(leaf_hash(&chunk));
        if filled < CHUNK_SIZE {
            break;
        }
    }
    if level.is_empty() {
        return Err(HostingError::Empty);
    }
    let mut out = BufWriter::new(tree_out);
    let mut widths = Vec::new();
    loop {
        widths.push(level.len() as u64);
        for h in &level {
            out.write_all(h.as_slice())?;
        }
        if level.len() == 1 {
            break;
        }
        let mut next = Vec::with_capacity(width_up(level.len() as u64) as usize);
        for pair in level.chunks(2) {
            next.push(if pair.len() == 2 { node_hash(&pair[0], &pair[1]) } else { pair[0] });
        }
        level = next;
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let root = level[0];
    Ok(HostedMeta { deal_id: deal, root, size, widths })
}
