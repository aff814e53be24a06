//! `commit` and `commit-aggregate`: the commit protocol for services that are not
//! written in Rust.
//!
//! A Python aggregation script writes its result anywhere (or to stdout), then
//!
//! ```text
//! fedota-store commit --problem p1 --round 4 merged.ckpt
//! fedota-store commit-aggregate --problem p1 --selector s1 --round 3 --weight 120 agg.ckpt
//! ```
//!
//! and the file is streamed into a temporary file beside the target, fsynced, renamed
//! over it, and given its commit record, exactly as the library does for Rust
//! services. The input file is only read, never moved. `-` reads stdin. The input is
//! opened, and its first bytes read, before the lock is taken or a directory created:
//! a directory or a file that cannot be read is refused without touching the tree.
//!
//! `commit` is the coordinator's commit: it takes the problem's coordinator lock for
//! the duration (failing at once if a coordinator holds it, or after
//! `--lock-timeout`), and the round must move past the stored one. The lock is
//! released when the command exits, so a script that commits round after round
//! takes it once per round; a coordinator written in Rust that holds the lock
//! throughout keeps such scripts out, as it should.
//!
//! `commit-aggregate` is a selector's commit of its own aggregate and weight; it
//! creates the selector's directory if it is new.
//!
//! # JSON
//!
//! ```text
//! { "command": "commit" | "commit-aggregate", "schema_version": 1,
//!   "problem": string, "selector": string | null, "path": string,
//!   "record": CommitRecord }
//! ```
//!
//! `CommitRecord` is described in `init.rs`: it is the record as stored, so `weight`
//! is absent from `commit`'s and `generation` from `commit-aggregate`'s.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use fedota_store::{
    CommitRecord, Error, LockWait, MAX_WEIGHT, ProblemId, Round, SelectorId, Store,
};
use serde::Serialize;

use crate::input;
use crate::output::{self, Outcome, Output, OutputArgs, Render};

#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// The problem
    #[arg(long, value_name = "ID")]
    problem: ProblemId,

    /// The round of the new global checkpoint; must be above the stored one
    #[arg(long, value_name = "N")]
    round: Round,

    /// How long to wait for the coordinator lock (0s: fail at once if held)
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    lock_timeout: Duration,

    /// The file to commit (`-` for stdin)
    #[arg(value_name = "FILE")]
    file: PathBuf,

    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, clap::Args)]
pub struct AggregateArgs {
    /// The problem
    #[arg(long, value_name = "ID")]
    problem: ProblemId,

    /// The selector whose aggregate this is
    #[arg(long, value_name = "ID")]
    selector: SelectorId,

    /// The round the aggregate belongs to (the global round it was trained from)
    #[arg(long, value_name = "N")]
    round: Round,

    /// The aggregate's weight, written to fl_agg_checkpoint_weight
    #[arg(long, value_name = "W", value_parser = clap::value_parser!(u64).range(..=MAX_WEIGHT))]
    weight: u64,

    /// The file to commit (`-` for stdin)
    #[arg(value_name = "FILE")]
    file: PathBuf,

    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, Serialize)]
struct CommitReport {
    problem: String,
    selector: Option<String>,
    path: PathBuf,
    record: CommitRecord,
}

pub fn run_global(root: &Path, args: GlobalArgs, out: &Output) -> Result<Outcome, Error> {
    let store = Store::open(root)?;
    let mut input = input::open(&args.file, "checkpoint")?;

    let wait = if args.lock_timeout.is_zero() {
        LockWait::Try
    } else {
        LockWait::Timeout(args.lock_timeout)
    };
    let coordinator = store.coordinator(&args.problem, wait)?;
    let record = coordinator.commit_global_checkpoint(args.round, &mut input)?;

    let path = coordinator
        .problem()
        .artifact(fedota_store::ArtifactKind::GlobalCheckpoint)
        .data_path();
    drop(coordinator);

    out.report(&CommitReport {
        problem: args.problem.to_string(),
        selector: None,
        path,
        record,
    })?;
    Ok(Outcome::Clean)
}

pub fn run_aggregate(root: &Path, args: AggregateArgs, out: &Output) -> Result<Outcome, Error> {
    let store = Store::open(root)?;
    // The input first: opening the selector creates its directory.
    let mut input = input::open(&args.file, "aggregate")?;

    let selector = store.selector(&args.problem, &args.selector)?;
    let record = selector.commit_aggregate(args.round, args.weight, &mut input)?;

    let path = store
        .problem(&args.problem)?
        .artifact(fedota_store::ArtifactKind::Aggregate(args.selector.clone()))
        .data_path();

    out.report(&CommitReport {
        problem: args.problem.to_string(),
        selector: Some(args.selector.to_string()),
        path,
        record,
    })?;
    Ok(Outcome::Clean)
}

impl Render for CommitReport {
    fn render(&self, w: &mut dyn Write) -> io::Result<()> {
        let r = &self.record;
        let weight = r.weight.map_or(String::new(), |w| format!(", weight {w}"));
        let generation = r
            .generation
            .map_or(String::new(), |g| format!(", lock generation {g}"));

        writeln!(
            w,
            "committed {} of round {} to {}: {}, crc32c {:08x}{weight}{generation}",
            r.artifact,
            r.round,
            self.path.display(),
            output::bytes(r.size),
            r.crc32c
        )
    }
}
