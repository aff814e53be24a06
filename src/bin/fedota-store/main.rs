//! `fedota-store`: set up, inspect, check and clean a Fedota checkpoint tree, and
//! commit to it or read from it from services that are not written in Rust.
//!
//! ```text
//! fedota-store [--root DIR] <verb> [options]
//!
//!   init              create a problem: model.h5 and fl_checkpoint of round 0
//!   status            each problem's round, lock, files and leftovers
//!   verify            a full checksum pass over every file
//!   gc                remove fedota-store's own leftover temporary files
//!   doctor            can this root be trusted? mount options and live probes
//!   commit            commit a file as the global checkpoint of round N
//!   commit-aggregate  commit a file as a selector's aggregate of round N
//!   cat               read one file, verified, to stdout or to a path
//!   wait              wait for the global checkpoint or the aggregates of round N
//! ```
//!
//! # Common flags
//!
//! - `--root DIR`: the root of the tree. Without it, `$FEDOTA_ROOT`, and without that,
//!   `/data`.
//! - `--json`: on every verb that prints a report, print it as one JSON object
//!   instead. `cat` accepts it only with `--output`, since without it stdout carries
//!   the file itself.
//!
//! # Exit codes
//!
//! - `0`: done, and nothing wrong was found.
//! - `1`: the tree is not as required: a check failed (`verify`, `status`,
//!   `doctor`), a file failed verification (`cat`), a commit was refused (the lock is
//!   held, the round does not move forward, the committer was fenced), or a wait ran
//!   out of time.
//! - `2`: a usage error, or the operating system refused an operation: a root or a
//!   problem that does not exist, permission denied, no space left.
//!
//! Every error message names the operation and the path.
//!
//! # JSON
//!
//! Every JSON report is one object with `"command"` (the verb) and
//! `"schema_version"` (now `1`) followed by the verb's fields, which each verb's
//! module documents. Fields are only ever added within a schema version. Sizes are
//! bytes, ages and durations are whole seconds (`*_s`) or milliseconds (`*_ms`),
//! times are RFC 3339 text, and an absent value is `null`, never a missing key.
//!
//! When a verb fails with `--json`, stdout gets
//! `{"command", "schema_version", "error": {"message", "path", "exit_code"}}` and
//! stderr the message.
//!
//! # Logging
//!
//! Reports go to stdout. The library's events go to stderr, filtered by `RUST_LOG`
//! (default `warn`).

mod cat;
mod check;
mod commit;
mod doctor;
mod gc;
mod init;
mod output;
mod peer;
mod probes;
mod status;
mod verify;
mod wait;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::{Outcome, Output};

/// The root used when neither `--root` nor `$FEDOTA_ROOT` is given.
const DEFAULT_ROOT: &str = "/data";

/// The environment variable that names the root.
const ROOT_ENV: &str = "FEDOTA_ROOT";

/// Atomic, verified, locked storage for Fedota's checkpoint tree.
#[derive(Debug, Parser)]
#[command(name = "fedota-store", version, propagate_version = true)]
#[command(after_help = "Exit codes: 0 OK, 1 a check found a problem, 2 usage or I/O error.")]
struct Cli {
    /// The root of the shared tree [default: $FEDOTA_ROOT, else /data]
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,

    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Create a problem: model.h5 and the global checkpoint of round 0
    Init(init::Args),
    /// Show each problem's round, lock holder, files, selectors and leftovers
    Status(status::Args),
    /// Check every file against its commit record (full checksum pass)
    Verify(verify::Args),
    /// Remove fedota-store's own leftover temporary files
    Gc(gc::Args),
    /// Check whether the root can be trusted: mount options and live probes
    Doctor(doctor::Args),
    /// Commit a file as the global checkpoint of a round (takes the coordinator lock)
    Commit(commit::GlobalArgs),
    /// Commit a file as a selector's aggregate of a round, with its weight
    CommitAggregate(commit::AggregateArgs),
    /// Read one file, verified, to stdout or atomically to a path
    Cat(cat::Args),
    /// Wait until the global checkpoint, or enough aggregates, reach a round
    Wait(wait::Args),
}

impl Verb {
    /// The verb's name and whether it reports as JSON.
    fn describe(&self) -> (&'static str, bool) {
        match self {
            Verb::Init(a) => ("init", a.out.json),
            Verb::Status(a) => ("status", a.out.json),
            Verb::Verify(a) => ("verify", a.out.json),
            Verb::Gc(a) => ("gc", a.out.json),
            Verb::Doctor(a) => ("doctor", a.out.json),
            Verb::Commit(a) => ("commit", a.out.json),
            Verb::CommitAggregate(a) => ("commit-aggregate", a.out.json),
            Verb::Cat(a) => ("cat", a.json),
            Verb::Wait(a) => ("wait", a.out.json),
        }
    }
}

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();

    let root = resolve_root(cli.root);
    let (command, json) = cli.verb.describe();
    let out = Output::new(command, json);

    let result = match cli.verb {
        Verb::Init(args) => init::run(&root, args, &out),
        Verb::Status(args) => status::run(&root, args, &out),
        Verb::Verify(args) => verify::run(&root, args, &out),
        Verb::Gc(args) => gc::run(&root, args, &out),
        Verb::Doctor(args) => doctor::run(&root, args, &out),
        Verb::Commit(args) => commit::run_global(&root, args, &out),
        Verb::CommitAggregate(args) => commit::run_aggregate(&root, args, &out),
        Verb::Cat(args) => cat::run(&root, args, &out),
        Verb::Wait(args) => wait::run(&root, args, &out),
    };

    match result {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Problems) => ExitCode::from(1),
        Err(error) => ExitCode::from(out.error(&error)),
    }
}

/// `--root`, else `$FEDOTA_ROOT` if set and not empty, else `/data`.
fn resolve_root(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| {
        std::env::var_os(ROOT_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
    .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT))
}

/// Sends the library's events to stderr, filtered by `RUST_LOG` (default `warn`).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));

    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
