//! Counts words in /in files named on the command line and writes the counts, sorted, to /out/counts.txt.
use std::collections::BTreeMap;

fn main() {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for path in std::env::args().skip(1) {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            eprintln!("wordcount: {path}: {e}");
            std::process::exit(1)
        });
        for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            *counts.entry(word.to_lowercase()).or_default() += 1;
        }
    }
    let total: u64 = counts.values().sum();
    let mut out = String::new();
    for (word, n) in &counts {
        out.push_str(&format!("{word} {n}\n"));
    }
    std::fs::write("/out/counts.txt", out).unwrap();
    println!("{total} words, {} distinct", counts.len());
}
