//! Reads the clock and random bytes and makes NaNs: everything a deterministic sandbox must pin down.
//! Prints what it saw, including the raw bits of NaN results, so any difference changes the digest.
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let mut random = [0u8; 16];
    getrandom(&mut random);
    let zero = std::hint::black_box(0.0f64);
    let nan = zero / zero;
    let inf = std::hint::black_box(f64::INFINITY);
    let nan2 = inf - inf;
    let neg_nan = -nan;
    let sqrt_neg = std::hint::black_box(-1.0f64).sqrt();
    let mut acc = 1.0f64;
    for i in 1..10_000 {
        acc = (acc * 1.000_1 + (i as f64).sin()) % 1e6;
    }
    println!("clock {}.{:09}", now.as_secs(), now.subsec_nanos());
    println!("random {}", random.iter().map(|b| format!("{b:02x}")).collect::<String>());
    for (name, v) in [("nan", nan), ("inf-inf", nan2), ("-nan", neg_nan), ("sqrt(-1)", sqrt_neg)] {
        println!("{name} {:016x}", v.to_bits());
    }
    println!("f32 nan {:08x}", (std::hint::black_box(0.0f32) / 0.0).to_bits());
    println!("acc {:016x}", acc.to_bits());
}

/// `random_get` from WASI preview 1, without a crate.
fn getrandom(buf: &mut [u8]) {
    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    unsafe extern "C" {
        fn random_get(buf: *mut u8, len: usize) -> u16;
    }
    // SAFETY: the pointer and length describe `buf`, which the host fills.
    let errno = unsafe { random_get(buf.as_mut_ptr(), buf.len()) };
    assert_eq!(errno, 0, "random_get failed");
}
