//! Hosted storage files. A provider keeps each deal's file under its data folder together with the
//! file's whole Merkle tree (every level, on disk), so answering a challenge reads one chunk and one
//! hash per level instead of re-hashing the file: microseconds for a gigabyte, not seconds.
//!
//! Layout under `<data>/storage/`: `<deal>.bin` (the file), `<deal>.tree` (levels, leaves first, each a
//! run of 32-byte hashes) and `<deal>.json` (root, size, level widths). Files are written under a
//! `.part` name and renamed once complete and verified, so a crash or a full disk never leaves a
//! half-written file where a hosted one is expected.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use alloy_primitives::B256;
use qor_protocol::merkle::{CHUNK_SIZE, ChunkProof, leaf_hash, node_hash};
use serde::{Deserialize, Serialize};

/// What `<deal>.json` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostedMeta {
    /// The deal.
    pub deal_id: String,
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
    dir: PathBuf,
}

fn width_up(width: u64) -> u64 {
    width.div_ceil(2)
}

impl Hosting {
    /// Opens (creating) `<data>/storage`, removing leftovers of interrupted writes.
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        let dir = data_dir.join("storage");
        fs::create_dir_all(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e.to_string_lossy().starts_with("part")) {
                let _ = fs::remove_file(path);
            }
        }
        Ok(Self { dir })
    }

    fn path(&self, deal: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{deal}.{ext}"))
    }

    /// Deals hosted here, with their metadata.
    pub fn list(&self) -> Result<Vec<HostedMeta>, HostingError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                out.push(serde_json::from_slice(&fs::read(&path)?)?);
            }
        }
        out.sort_by(|a: &HostedMeta, b| a.deal_id.cmp(&b.deal_id));
        Ok(out)
    }

    /// Bytes the hosted files take (files and trees).
    pub fn used_bytes(&self) -> Result<u64, HostingError> {
        let mut used = 0;
        for entry in fs::read_dir(&self.dir)? {
            used += entry?.metadata()?.len();
        }
        Ok(used)
    }

    /// Whether `deal` is hosted here.
    pub fn has(&self, deal: &str) -> bool {
        self.path(deal, "json").exists()
    }

    /// Where a download for `deal` goes before [`Self::adopt`] checks it.
    pub fn part_path(&self, deal: &str) -> PathBuf {
        self.path(deal, "bin.part")
    }

    /// Takes the downloaded file at [`Self::part_path`]: builds its tree, checks the root against
    /// `expected`, and only then moves file, tree and metadata into place. On a mismatch (or any
    /// error) nothing is kept.
    pub fn adopt(&self, deal: &str, expected: B256) -> Result<HostedMeta, HostingError> {
        let part = self.part_path(deal);
        let tree_part = self.path(deal, "tree.part");
        let result = (|| {
            let meta = build_tree(&part, &tree_part, deal)?;
            if meta.root != expected {
                return Err(HostingError::RootMismatch { computed: meta.root, expected });
            }
            let meta_part = self.path(deal, "json.part");
            fs::write(&meta_part, serde_json::to_vec_pretty(&meta)?)?;
            File::open(&meta_part)?.sync_all()?;
            fs::rename(&part, self.path(deal, "bin"))?;
            fs::rename(&tree_part, self.path(deal, "tree"))?;
            // The metadata last: a deal counts as hosted only once its file and tree are in place.
            fs::rename(&meta_part, self.path(deal, "json"))?;
            Ok(meta)
        })();
        if result.is_err() {
            for p in [part, tree_part, self.path(deal, "json.part")] {
                let _ = fs::remove_file(p);
            }
        }
        result
    }

    /// Re-reads a hosted file and checks it still hashes to its root (after a restart, say).
    pub fn reverify(&self, deal: &str) -> Result<HostedMeta, HostingError> {
        let meta: HostedMeta = serde_json::from_slice(&fs::read(self.path(deal, "json"))?)?;
        let (root, _) = qor_protocol::merkle::root_from_reader(BufReader::new(File::open(self.path(deal, "bin"))?))
            .map_err(|e| HostingError::Io(std::io::Error::other(e.to_string())))?;
        if root != meta.root {
            return Err(HostingError::RootMismatch { computed: root, expected: meta.root });
        }
        Ok(meta)
    }

    /// The proof for chunk `index` of a hosted file: one chunk read and one hash per tree level.
    pub fn prove(&self, deal: &str, index: u64) -> Result<ChunkProof, HostingError> {
        let meta: HostedMeta = serde_json::from_slice(&fs::read(self.path(deal, "json"))?)?;
        let chunks = meta.widths[0];
        if index >= chunks {
            return Err(HostingError::OutOfRange { index, chunks });
        }
        let mut chunk = vec![0u8; CHUNK_SIZE];
        let mut file = File::open(self.path(deal, "bin"))?;
        file.seek(SeekFrom::Start(index * CHUNK_SIZE as u64))?;
        let want = (meta.size - index * CHUNK_SIZE as u64).min(CHUNK_SIZE as u64) as usize;
        file.read_exact(&mut chunk[..want])?;

        let mut tree = File::open(self.path(deal, "tree"))?;
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
fn build_tree(file: &Path, tree_out: &Path, deal: &str) -> Result<HostedMeta, HostingError> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(file)?);
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
    let mut out = BufWriter::new(File::create(tree_out)?);
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
    Ok(HostedMeta { deal_id: deal.to_string(), root, size, widths })
}
