//! `shoal-relay`: the native relay and the offline chain tools.
//!
//! Every command takes `--json`. On bad input a command exits non-zero with one line on
//! standard error saying why (and, with `--json`, a `{"error": …}` object on standard
//! output); usage errors exit with 2, everything else with 1.

mod blockfile;
mod cli;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

use cli::Cli;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                // Help and version go to standard output and are a success.
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            _ => {
                let json = std::env::args().any(|a| a == "--json");
                let rendered = e.to_string();
                let reason: Vec<&str> = rendered
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
                    .collect();
                let reason = reason.join(" ");
                let reason = reason.trim_start_matches("error: ");
                return fail(json, &anyhow::anyhow!("{reason}"), 2);
            }
        },
    };
    let json = cli.json;
    match cli.command.run(json) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(json, &e, 1),
    }
}

/// Prints `error` as one line (and as JSON with `--json`) and returns exit code `code`.
fn fail(json: bool, error: &anyhow::Error, code: u8) -> ExitCode {
    let reason = cli::one_line(&format!("{error:#}"));
    if json {
        println!("{}", cli::error_json(error, &reason));
    }
    eprintln!("shoal-relay: error: {reason}");
    ExitCode::from(code)
}
