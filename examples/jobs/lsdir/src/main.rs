//! Lists the folder named on the command line (default /in) recursively, in the order the directory
//! listing returns entries, with each entry's size and modification time. Used by the determinism
//! tests: the host's listing order and file times differ between machines, and the sandbox must hide
//! both.
use std::path::Path;
use std::time::UNIX_EPOCH;

fn list(dir: &Path, depth: usize) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        let mtime = meta.modified().unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let kind = if meta.is_dir() { "d" } else { "f" };
        let name = entry.file_name().into_string().unwrap();
        println!("{}{kind} {name} size={} mtime={mtime}", "  ".repeat(depth), if meta.is_dir() { 0 } else { meta.len() });
        if meta.is_dir() {
            list(&entry.path(), depth + 1);
        }
    }
}

fn main() {
    let root = std::env::args().nth(1).unwrap_or_else(|| "/in".into());
    let meta = std::fs::metadata(&root).unwrap();
    println!("{root} mtime={}", meta.modified().unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs());
    list(Path::new(&root), 0);
}
