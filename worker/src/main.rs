//! `qor-worker`: the provider's binary. Parses arguments and calls into the library.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "qor-worker", version, about = "QOR provider worker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one job locally in the deterministic sandbox and print its outcome as JSON.
    Exec(qor_worker::exec::ExecArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Exec(args) => match qor_worker::exec::exec(&args) {
            Ok(outcome) => {
                println!("{}", serde_json::to_string_pretty(&outcome).expect("an outcome serializes"));
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("qor-worker exec: {e:#}");
                std::process::ExitCode::from(2)
            }
        },
    }
}
