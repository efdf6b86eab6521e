//! Storage Merkle trees: root throughput over 256 MiB on one core (streamed from a reader, as a buyer or
//! provider hashes a file), and proof generation and verification times for that file.

use std::hint::black_box;
use std::time::Instant;

use qor_bench::{median, pseudo_random};
use qor_protocol::merkle::{StorageTree, root_from_reader, verify};

fn main() {
    const SIZE: usize = 256 << 20;
    let data = pseudo_random(SIZE, 0x5eed);

    // The ceiling: keccak256 over the same bytes in one call, no tree.
    let start = Instant::now();
    black_box(alloy_primitives::keccak256(&data));
    println!("keccak256_raw_256mib {:.0} MB/s", SIZE as f64 / start.elapsed().as_secs_f64() / 1e6);

    let start = Instant::now();
    let (root, size) = root_from_reader(data.as_slice()).expect("a non-empty file has a root");
    let secs = start.elapsed().as_secs_f64();
    println!("merkle_root_256mib_stream {:.0} MB/s", SIZE as f64 / secs / 1e6);

    let start = Instant::now();
    let tree = StorageTree::from_bytes(&data).expect("a non-empty file has a tree");
    println!("merkle_tree_build_256mib {:.0} ms", start.elapsed().as_secs_f64() * 1e3);
    assert_eq!(tree.root(), root, "the streamed and the built root agree");

    let chunks = tree.chunk_count();
    let mut i = 0u64;
    let prove = median(1001, || {
        i = (i * 7919 + 13) % chunks;
        black_box(tree.prove(&data, i).expect("index in range"));
    });
    println!("merkle_proof_generate_256mib {:.1} us", prove.as_secs_f64() * 1e6);
    let proof = tree.prove(&data, chunks / 3).expect("index in range");
    let check = median(1001, || assert!(black_box(verify(&root, chunks, &proof))));
    println!("merkle_proof_verify_256mib {:.1} us", check.as_secs_f64() * 1e6);
    println!("merkle_file_size {size} bytes");
}
