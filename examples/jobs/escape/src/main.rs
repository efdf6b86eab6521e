//! A hostile job: tries to read host files from outside the job folder and reports what it got. The
//! sandbox test asserts every attempt is refused.
fn main() {
    for path in ["/in/../../etc/passwd", "/etc/passwd", "../etc/passwd", "/out/../../../etc/hostname", "/proc/self/environ"] {
        match std::fs::read(path) {
            Ok(bytes) => println!("LEAK {path} {} bytes", bytes.len()),
            Err(e) => println!("refused {path}: {:?}", e.kind()),
        }
    }
    match std::fs::write("/in/planted", b"x") {
        Ok(()) => println!("LEAK wrote /in/planted"),
        Err(e) => println!("refused write /in: {:?}", e.kind()),
    }
}
