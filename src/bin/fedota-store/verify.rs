//! `verify`: a full checksum pass over every file of every problem.
//!
//! Each data file (model, global checkpoint, aggregates, client updates) is read
//! whole and compared with its commit record: size, crc32c and weight. A file that
//! does not match is read again a few times, in case a writer was between its
//! renames (about five seconds in all), and then reported. The model and the global
//! checkpoint are expected in every problem; anything else is checked if its data
//! file or its commit record exists.
//!
//! What is reported:
//!
//! - problems, which make `verify` exit 1: `missing` (a record or the layout says a
//!   file should be there, or its weight file is gone), `corrupt` (checksum),
//!   `torn` (size), `mismatched` (a weight from another commit), `bad-weight` (a
//!   weight file that is not a decimal integer), `bad-record`, `unreadable`;
//! - warnings, which do not: `legacy` files (no commit record, written by an older
//!   service), and `stale` aggregates and client updates, whose round is neither the
//!   global round G nor G - 1 (G is in progress, G - 1 was just used to make G; older
//!   rounds missed at least one round, newer ones cannot belong to this run).
//!
//! A progress bar is drawn on stderr when it is a terminal and the tree is large:
//! more than [`PROGRESS_MIN_FILES`] files or more than [`PROGRESS_MIN_BYTES`] bytes.
//!
//! # JSON
//!
//! ```text
//! { "command": "verify", "schema_version": 1, "root": string,
//!   "problems": [ { "problem": string, "round": number | null, "files": [File] } ],
//!   "summary": { "files": number, "bytes": number,
//!                "problems": number, "warnings": number } }
//! ```
//!
//! `File` is the checked-file object documented in `check.rs`; `files` lists every
//! file checked, sound or not.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use fedota_store::layout::{CLIENT_UPDATE_PREFIX, RECORD_PREFIX};
use fedota_store::{Artifact, ArtifactKind, ClientNo, Error, Problem, ProblemId, Round, Store};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::check::{self, FileReport};
use crate::output::{self, Outcome, Output, OutputArgs, Render};

/// Draw a progress bar for more files than this…
pub const PROGRESS_MIN_FILES: usize = 100;
/// …or more bytes than this (64 MiB).
pub const PROGRESS_MIN_BYTES: u64 = 64 << 20;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this problem [default: every problem under the root]
    #[arg(long, value_name = "ID")]
    problem: Option<ProblemId>,

    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, Serialize)]
struct VerifyReport {
    root: PathBuf,
    problems: Vec<ProblemFiles>,
    summary: Summary,
}

#[derive(Debug, Serialize)]
struct ProblemFiles {
    problem: String,
    round: Option<Round>,
    files: Vec<FileReport>,
}

#[derive(Debug, Default, Serialize)]
struct Summary {
    files: usize,
    bytes: u64,
    problems: usize,
    warnings: usize,
}

pub fn run(root: &Path, args: Args, out: &Output) -> Result<Outcome, Error> {
    let store = Store::open(root)?;
    let ids = match args.problem {
        Some(id) => vec![id],
        None => store.problems()?,
    };

    // List everything first, so the progress bar knows the total.
    let mut work: Vec<(Problem, Vec<Artifact>)> = Vec::with_capacity(ids.len());
    for id in &ids {
        let problem = store.problem(id)?;
        let artifacts = artifacts_of(&problem)?;
        work.push((problem, artifacts));
    }
    let files: usize = work.iter().map(|(_, a)| a.len()).sum();
    let bytes: u64 = work
        .iter()
        .flat_map(|(_, a)| a)
        .filter_map(|a| std::fs::metadata(a.data_path()).ok())
        .map(|m| m.len())
        .sum();
    let bar = wants_progress(files, bytes, io::stderr().is_terminal()).then(|| progress_bar(bytes));

    let mut problems = Vec::with_capacity(work.len());
    let mut summary = Summary::default();
    for (problem, artifacts) in &work {
        let round = problem.global_round().ok();
        let mut reports = Vec::with_capacity(artifacts.len());

        for artifact in artifacts {
            let mut report = check::check(problem, artifact, bar.as_ref());
            if matches!(
                artifact.kind(),
                ArtifactKind::Aggregate(_) | ArtifactKind::ClientUpdate(..)
            ) {
                report.judge_staleness(round);
            }

            summary.files += 1;
            summary.bytes += report.size.unwrap_or(0);
            if report.state.is_problem() {
                summary.problems += 1;
            } else if report.stale || report.state == check::State::Legacy {
                summary.warnings += 1;
            }
            reports.push(report);
        }

        problems.push(ProblemFiles {
            problem: problem.id().to_string(),
            round,
            files: reports,
        });
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }

    let found = summary.problems > 0;
    out.report(&VerifyReport {
        root: root.to_owned(),
        problems,
        summary,
    })?;
    Ok(Outcome::problems_if(found))
}

/// The model and the global checkpoint, always, then whatever else exists.
fn artifacts_of(problem: &Problem) -> Result<Vec<Artifact>, Error> {
    let mut artifacts = vec![
        problem.artifact(ArtifactKind::Model),
        problem.artifact(ArtifactKind::GlobalCheckpoint),
    ];
    artifacts.extend(problem.artifacts()?.into_iter().filter(|a| {
        !matches!(
            a.kind(),
            ArtifactKind::Model | ArtifactKind::GlobalCheckpoint
        )
    }));

    // A client update whose data file was deleted is listed by nobody but its record.
    for selector in problem.selectors()? {
        for client in recorded_clients(&problem.layout().round_dir(&selector))? {
            let artifact = problem.artifact(ArtifactKind::ClientUpdate(selector.clone(), client));
            if !artifact.data_path().exists() {
                artifacts.push(artifact);
            }
        }
    }
    Ok(artifacts)
}

/// The client numbers with a commit record in `dir` (a `roundFiles` directory).
fn recorded_clients(dir: &Path) -> Result<Vec<ClientNo>, Error> {
    let op = "list the commit records in";
    let prefix = format!("{RECORD_PREFIX}{CLIENT_UPDATE_PREFIX}");
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(output::io_error(op, dir, e)),
    };

    let mut clients = Vec::new();
    for entry in entries {
        let name = entry.map_err(|e| output::io_error(op, dir, e))?.file_name();
        let digits = name.to_str().and_then(|n| n.strip_prefix(prefix.as_str()));
        if let Some(no) = digits
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse().ok())
        {
            clients.push(no);
        }
    }
    clients.sort_unstable();
    Ok(clients)
}

/// Whether to draw a progress bar: only on a terminal, and only for a large tree.
fn wants_progress(files: usize, bytes: u64, terminal: bool) -> bool {
    terminal && (files > PROGRESS_MIN_FILES || bytes > PROGRESS_MIN_BYTES)
}

fn progress_bar(bytes: u64) -> ProgressBar {
    let bar = ProgressBar::new(bytes);
    if let Ok(style) = ProgressStyle::with_template(
        "verify {bar:40} {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}

impl Render for VerifyReport {
    fn render(&self, w: &mut dyn Write) -> io::Result<()> {
        for p in &self.problems {
            let round = p.round.map_or("unknown".to_owned(), |r| r.to_string());
            let bytes: u64 = p.files.iter().filter_map(|f| f.size).sum();
            writeln!(
                w,
                "problem {}: round {round}, {} ({})",
                p.problem,
                output::count(p.files.len(), "file"),
                output::bytes(bytes)
            )?;

            for f in &p.files {
                if f.state.is_problem() || f.state == check::State::Legacy {
                    let why = f.reason().unwrap_or_default();
                    writeln!(w, "  {:<11} {}: {why}", f.state.label(), f.path.display())?;
                } else if f.stale {
                    let round = f.round.map_or("?".to_owned(), |r| r.to_string());
                    writeln!(
                        w,
                        "  {:<11} {}: round {round}, but the global checkpoint is at round {}",
                        "stale",
                        f.path.display(),
                        p.round.map_or("?".to_owned(), |r| r.to_string())
                    )?;
                }
            }
        }

        let s = &self.summary;
        let verdict = if s.problems == 0 { "ok" } else { "FAILED" };
        writeln!(
            w,
            "verify: {verdict}: {} ({}) checked, {}, {}",
            output::count(s.files, "file"),
            output::bytes(s.bytes),
            output::count(s.problems, "problem"),
            output::count(s.warnings, "warning")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_bar_only_for_a_large_tree_on_a_terminal() {
        assert!(!wants_progress(10, 1 << 20, true));
        assert!(wants_progress(101, 0, true));
        assert!(wants_progress(1, PROGRESS_MIN_BYTES + 1, true));
        assert!(!wants_progress(10_000, u64::MAX, false));
    }
}
