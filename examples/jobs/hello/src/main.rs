//! Prints its arguments and its environment (in the order the sandbox gives them) and writes a greeting
//! to /out: the smallest job that exercises args, env, stdout and outputs.
use std::io::Write;

fn main() {
    let mut out = std::io::stdout().lock();
    for arg in std::env::args().skip(1) {
        writeln!(out, "arg {arg}").unwrap();
    }
    for (k, v) in std::env::vars() {
        writeln!(out, "env {k}={v}").unwrap();
    }
    let name = std::env::var("NAME").unwrap_or_else(|_| "world".to_owned());
    std::fs::write("/out/greeting.txt", format!("hello, {name}\n")).unwrap();
}
