//! sha256sum over every file named on the command line (paths under /in), streaming; prints
//! `<hex>  <path>` lines and writes them to /out/sums.txt. The compute benchmark runs it over 64 MiB.
use std::io::{Read, Write};

use sha2::{Digest, Sha256};

fn main() {
    let mut lines = String::new();
    let mut buf = vec![0u8; 64 * 1024];
    for path in std::env::args().skip(1) {
        let mut file = std::fs::File::open(&path).unwrap_or_else(|e| {
            eprintln!("sha256sum: {path}: {e}");
            std::process::exit(1)
        });
        let mut hasher = Sha256::new();
        loop {
            let n = file.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let hex: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        lines.push_str(&format!("{hex}  {path}\n"));
    }
    std::io::stdout().write_all(lines.as_bytes()).unwrap();
    std::fs::write("/out/sums.txt", lines).unwrap();
}
