//! Hosted files: the on-disk tree gives the same root and paths as the protocol's own tree, proofs
//! verify for every chunk (odd widths included), a wrong root keeps nothing, and a restart clears
//! half-written files.

use std::io::Write;

use alloy_primitives::{B256, U256};
use qor_protocol::merkle::{StorageTree, chunk_count, verify};
use qor_worker::hosting::{Hosting, HostingError};

fn bytes(n: usize) -> Vec<u8> {
    (0..n as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect()
}

#[test]
fn proofs_from_disk_match_the_protocol_tree_for_every_chunk() {
    let tmp = tempfile::tempdir().unwrap();
    let hosting = Hosting::open(tmp.path()).unwrap();
    // 1 chunk, a power of two, odd counts at several levels, a short last chunk.
    for (deal, size) in [(1u64, 10), (2, 4 * 1024), (3, 5 * 1024 + 1), (4, 13 * 1024 - 7), (5, 33 * 1024)] {
        let deal = U256::from(deal);
        let data = bytes(size);
        let tree = StorageTree::from_bytes(&data).unwrap();
        write_part(&hosting, deal, &data);
        let meta = hosting.adopt(deal, tree.root()).unwrap();
        assert_eq!((meta.root, meta.size), (tree.root(), size as u64));
        for index in 0..tree.chunk_count() {
            let proof = hosting.prove(deal, index).unwrap();
            assert_eq!(proof, tree.prove(&data, index).unwrap(), "deal {deal} chunk {index}");
            assert!(verify(&tree.root(), chunk_count(size as u64), &proof));
        }
        assert!(matches!(hosting.prove(deal, tree.chunk_count()), Err(HostingError::OutOfRange { .. })));
        assert_eq!(hosting.reverify(deal).unwrap().root, tree.root());
    }
    assert_eq!(hosting.list().unwrap().len(), 5);
    assert!(hosting.used_bytes().unwrap() > 55 * 1024);
}

#[test]
fn a_wrong_root_keeps_nothing_and_a_restart_clears_partial_files() {
    let tmp = tempfile::tempdir().unwrap();
    let hosting = Hosting::open(tmp.path()).unwrap();
    let (nine, ten, eleven) = (U256::from(9), U256::from(10), U256::from(11));
    write_part(&hosting, nine, &bytes(3000));
    let err = hosting.adopt(nine, B256::repeat_byte(1)).unwrap_err();
    assert!(matches!(err, HostingError::RootMismatch { .. }), "{err}");
    assert!(!hosting.has(nine));
    assert_eq!(std::fs::read_dir(tmp.path().join("storage")).unwrap().count(), 0, "nothing left behind");

    // A download cut short by a crash: gone after a restart, never taken for a hosted file.
    write_part(&hosting, ten, b"half");
    let hosting = Hosting::open(tmp.path()).unwrap();
    assert!(!tmp.path().join("storage/10.bin.part").exists());
    assert!(hosting.list().unwrap().is_empty());

    // A hosted file changed on disk fails re-verification.
    let data = bytes(4096);
    let root = StorageTree::from_bytes(&data).unwrap().root();
    write_part(&hosting, eleven, &data);
    hosting.adopt(eleven, root).unwrap();
    let mut changed = data.clone();
    changed[100] ^= 1;
    std::fs::write(tmp.path().join("storage/11.bin"), &changed).unwrap();
    assert!(matches!(hosting.reverify(eleven), Err(HostingError::RootMismatch { .. })));
}

fn write_part(hosting: &Hosting, deal: U256, data: &[u8]) {
    let mut file = hosting.create_part(deal).unwrap();
    file.write_all(data).unwrap();
}
