//! Storage Merkle trees: rs_merkle, the streaming root and the on-chain walk agree, and the vectors in
//! `contracts/test/data/merkle.json` (which the Foundry tests check against `StorageProof.sol`) are
//! exactly what this crate computes. Regenerate them with `QOR_WRITE_VECTORS=1 cargo test -p qor-protocol`.

use alloy_primitives::{B256, keccak256};
use qor_protocol::merkle::{CHUNK_SIZE, ChunkProof, MerkleError, StorageTree, chunk_count, leaf_hash, node_hash, root_from_reader, verify};
use serde_json::{Value, json};

/// Deterministic pseudo-random bytes, the same recipe as the Solidity tests' `TestMerkle.fileOf`.
fn file_of(size: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(size);
    let mut i = 0u64;
    while out.len() < size {
        let mut word = [0u8; 64];
        word[24..32].copy_from_slice(&seed.to_be_bytes());
        word[56..64].copy_from_slice(&i.to_be_bytes());
        out.extend_from_slice(keccak256(word).as_slice());
        i += 32;
    }
    out.truncate(size);
    out
}

/// A straightforward level-by-level tree, independent of rs_merkle and of the streaming fold.
fn reference_root(data: &[u8]) -> B256 {
    let mut level: Vec<B256> = data.chunks(CHUNK_SIZE).map(leaf_hash).collect();
    while level.len() > 1 {
        level = level.chunks(2).map(|pair| if pair.len() == 2 { node_hash(&pair[0], &pair[1]) } else { pair[0] }).collect();
    }
    level[0]
}

#[test]
fn roots_agree_for_every_shape() {
    for chunks in 1..=70usize {
        for tail in [0usize, 1, CHUNK_SIZE - 1] {
            let size = (chunks - 1) * CHUNK_SIZE + if tail == 0 { CHUNK_SIZE } else { tail };
            let data = file_of(size, chunks as u64);
            let tree = StorageTree::from_bytes(&data).unwrap();
            let expected = reference_root(&data);
            assert_eq!(tree.root(), expected, "rs_merkle, {size} bytes");
            let (streamed, streamed_size) = root_from_reader(data.as_slice()).unwrap();
            assert_eq!(streamed, expected, "streaming, {size} bytes");
            assert_eq!(streamed_size, size as u64);
            assert_eq!(tree.chunk_count(), chunk_count(size as u64));
        }
    }
}

#[test]
fn every_proof_verifies_at_its_index_only() {
    for chunks in [1usize, 2, 3, 5, 8, 13, 33] {
        let data = file_of(chunks * CHUNK_SIZE - 7, 3);
        let tree = StorageTree::from_bytes(&data).unwrap();
        let root = tree.root();
        for index in 0..chunks as u64 {
            let proof = tree.prove(&data, index).unwrap();
            assert!(verify(&root, tree.chunk_count(), &proof), "{chunks} chunks, index {index}");
            if chunks > 1 {
                let moved = ChunkProof { index: (index + 1) % chunks as u64, ..proof.clone() };
                assert!(!verify(&root, tree.chunk_count(), &moved), "proof moved to another index");
            }
            let mut tampered = proof.clone();
            tampered.chunk[0] ^= 1;
            assert!(!verify(&root, tree.chunk_count(), &tampered));
        }
    }
}

#[test]
fn rejects_empty_files_and_out_of_range_indexes() {
    assert!(matches!(StorageTree::from_bytes(&[]), Err(MerkleError::EmptyFile)));
    assert!(matches!(root_from_reader(&[][..]), Err(MerkleError::EmptyFile)));
    let tree = StorageTree::from_bytes(&[1, 2, 3]).unwrap();
    let err = tree.path(1).unwrap_err();
    assert_eq!(err.to_string(), "chunk index 1 is out of range for 1 chunks");
}

fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

fn vectors() -> Value {
    let sizes = [1usize, 1023, 1024, 1025, 2048, 3000, 5 * 1024, 7 * 1024 + 5, 17 * 1024, 33 * 1024 + 1];
    let files: Vec<Value> = sizes
        .iter()
        .enumerate()
        .map(|(seed, &size)| {
            let data = file_of(size, seed as u64);
            let tree = StorageTree::from_bytes(&data).unwrap();
            let n = tree.chunk_count();
            let mut indexes: Vec<u64> = if n <= 8 { (0..n).collect() } else { vec![0, 1, n / 2, n - 2, n - 1] };
            indexes.dedup();
            let proofs: Vec<Value> = indexes
                .iter()
                .map(|&i| {
                    let p = tree.prove(&data, i).unwrap();
                    json!({
                        "index": i,
                        "leaf": leaf_hash(&p.chunk).to_string(),
                        "path": p.path.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({
                "size": size,
                "seed": seed,
                "chunkCount": n,
                "data": hex0x(&data),
                "root": tree.root().to_string(),
                "proofs": proofs,
                "proofCount": indexes.len(),
            })
        })
        .collect();
    let left = B256::repeat_byte(0x11);
    let right = B256::repeat_byte(0x22);
    json!({
        "description": "QOR storage Merkle vectors, written by qor-protocol (tests/it/merkle.rs), checked by contracts/test/unit/MerkleVectors.t.sol",
        "chunkSize": CHUNK_SIZE,
        "node": { "left": left.to_string(), "right": right.to_string(), "hash": node_hash(&left, &right).to_string() },
        "fileCount": files.len(),
        "files": files,
    })
}

#[test]
fn vectors_file_is_current() {
    crate::check_vectors_file("merkle.json", &vectors());
}
