//! Result digests: unambiguous, order-checked.

use qor_protocol::digest::{DigestError, ResultHasher};

fn digest(exit: u32, stdout: &[u8], files: &[(&str, &[u8])]) -> alloy_primitives::B256 {
    let mut h = ResultHasher::new(exit, stdout);
    for (path, data) in files {
        h.add_file(path, data).unwrap();
    }
    h.finish()
}

#[test]
fn every_part_counts_and_boundaries_are_unambiguous() {
    let base = digest(0, b"out", &[("a", b"12"), ("b", b"3")]);
    assert_ne!(digest(1, b"out", &[("a", b"12"), ("b", b"3")]), base, "exit code");
    assert_ne!(digest(0, b"ou", &[("a", b"12"), ("b", b"3")]), base, "stdout");
    // Moving a byte across a boundary must change the digest (lengths, not separators).
    assert_ne!(digest(0, b"out", &[("a", b"1"), ("b", b"23")]), base);
    assert_ne!(digest(0, b"out", &[("a", b"12b"), ("c", b"3")]), base);
    assert_ne!(digest(0, b"outF", &[("a", b"12"), ("b", b"3")]), base);
    assert_ne!(digest(0, b"out", &[("a", b"12")]), base, "a file less");
    assert_ne!(digest(0, b"out", &[("a", b"12"), ("b", b"3"), ("c", b"")]), base, "an empty file more");
    assert_eq!(digest(0, b"out", &[("a", b"12"), ("b", b"3")]), base, "deterministic");
}

#[test]
fn files_must_come_in_sorted_order() {
    let mut h = ResultHasher::new(0, b"");
    h.add_file("b", b"").unwrap();
    assert_eq!(h.add_file("a", b""), Err(DigestError::OutOfOrder { got: "a".into(), previous: "b".into() }));
    assert!(h.add_file("b", b"").is_err(), "a path twice");
}
