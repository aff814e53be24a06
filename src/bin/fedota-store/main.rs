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
//! `status`, `verify` and `gc` go on past a problem or a selector directory they
//! cannot read, list the error in the report, and exit at the end with the code of
//! the worst thing they met.
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
//! The one exception is a commit record (`init`'s `model` and `checkpoint`, the
//! `record` of `commit` and `commit-aggregate`): it is the record as stored on disk,
//! whose optional keys are left out when they have no value. `weight` is absent for
//! the model and the global checkpoint, `generation` for commits made without the
//! coordinator lock (a selector's), and `earlier` always (a report describes one
//! commit).
//!
//! When a verb fails with `--json`, stdout gets
//! `{"command", "schema_version", "error": {"message", "path", "exit_code"}}` and
//! stderr the message; `path` is `null` when the error is not about a file, as for a
//! usage error, whose `command` is the verb if one was recognised, else
//! `"fedota-store"`. A report is printed whole or not at all: if it cannot be encoded
//! (a path that is not UTF-8), stdout gets only the error envelope.
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
mod input;
mod output;
mod peer;
mod probes;
mod status;
mod verify;
mod wait;

use std::ffi::OsString;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::Output;

/// The root used when neither `--root` nor `$FEDOTA_ROOT` is given.
const DEFAULT_ROOT: &str = "/data";

/// The environment variable that names the root.
const ROOT_ENV: &str = "FEDOTA_ROOT";

/// The verbs' names, as clap spells them.
const VERBS: [&str; 9] = [
    "init",
    "status",
    "verify",
    "gc",
    "doctor",
    "commit",
    "commit-aggregate",
    "cat",
    "wait",
];

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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };

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
        Ok(outcome) => ExitCode::from(outcome.code()),
        Err(error) => ExitCode::from(out.error(&error)),
    }
}

/// Prints clap's message (help, version, or what is wrong) and, for an error with
/// `--json` on the command line, the error envelope on stdout.
fn usage_error(e: &clap::Error) -> ExitCode {
    // A closed stderr or stdout must not turn this into a panic.
    let _ = e.print();
    if !e.use_stderr() {
        return ExitCode::SUCCESS;
    }

    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.iter().any(|a| a == "--json") {
        let command = verb_named(&args).unwrap_or("fedota-store");
        let rendered = e.render().to_string();
        let first = rendered.lines().next().unwrap_or_default();
        let message = first.strip_prefix("error: ").unwrap_or(first).to_owned();
        Output::new(command, true).usage_error(message);
    }
    ExitCode::from(2)
}

/// The first argument that names a verb, for the envelope of a usage error. The
/// value of a `--root` before the verb is skipped.
fn verb_named(args: &[OsString]) -> Option<&'static str> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--root" {
            args.next();
            continue;
        }
        if let Some(verb) = VERBS.iter().copied().find(|v| arg == *v) {
            return Some(verb);
        }
    }
    None
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
        .with_writer(|| LogWriter)
        .with_ansi(io::stderr().is_terminal())
        .init();
}

/// Stderr for log events, dropping write errors. tracing-subscriber reports a failed
/// write with `eprintln!`, which panics when stderr cannot be written (a full disk,
/// a closed pipe); an event that cannot be shown is not worth a crash.
struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();

        let names: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|v| v.get_name().to_owned())
            .collect();
        assert_eq!(names, VERBS);
    }

    #[test]
    fn a_usage_error_is_told_apart_by_its_verb() {
        let args: Vec<OsString> = ["--root", "/r", "gc", "--older-than", "banana", "--json"]
            .into_iter()
            .map(OsString::from)
            .collect();
        assert_eq!(verb_named(&args), Some("gc"));
        assert_eq!(verb_named(&[OsString::from("--json")]), None);

        let args: Vec<OsString> = ["--root", "status", "verify"]
            .into_iter()
            .map(OsString::from)
            .collect();
        assert_eq!(verb_named(&args), Some("verify"));
    }
}
