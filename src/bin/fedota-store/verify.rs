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
//!   "problems": [ { "problem": string, "round": number | null, "files": [File],
//!                   "errors": [Failure] } ],
//!   "summary": { "files": number, "bytes": number,
//!                "problems": number, "warnings": number, "errors": number } }
//! ```
//!
//! `File` is the checked-file object and `Failure` the error object, both documented
//! in `check.rs`; `files` lists every file checked, sound or not.
//!
//! # Errors on the way
//!
//! A problem that cannot be opened (its layout marker is malformed, say), or a
//! selector whose `roundFiles` cannot be listed, is listed under `errors`, and
//! `verify` goes on with the rest. It exits with the worst code it met: 2 if
//! something could not be read, else 1 if a file is a problem, else 0. With
//! `--problem`, a problem that cannot be opened is the verb's error.
//!
//! # Time
//!
//! Each file that does not match its record is read again for about five seconds
//! before it is reported (`--read-attempts`, default 16), so a tree with many damaged
//! files takes that long per file. `--read-attempts 1` reports at once; it is meant
//! for a tree no service is writing, since it reports a file caught mid-commit as
//! damaged.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use fedota_store::layout::{CLIENT_UPDATE_PREFIX, RECORD_PREFIX};
use fedota_store::{
    Artifact, ArtifactKind, ClientNo, Error, Problem, ProblemId, Round, SelectorId, Store,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::check::{self, Failure, FileReport, ReadArgs};
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
    read: ReadArgs,

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
    errors: Vec<Failure>,
}

#[derive(Debug, Default, Serialize)]
struct Summary {
    files: usize,
    bytes: u64,
    problems: usize,
    warnings: usize,
    errors: usize,
}

/// One problem's work: what to check, and what could not even be listed.
struct Work {
    id: ProblemId,
    problem: Option<Problem>,
    artifacts: Vec<Artifact>,
    errors: Vec<Failure>,
}

pub fn run(root: &Path, args: Args, out: &Output) -> Result<Outcome, Error> {
    let store = Store::open(root)?.with_retry_policy(args.read.policy());

    // A problem named on the command line must open; among all the problems, one
    // that does not is reported and the others are still checked.
    let opened = match args.problem {
        Some(id) => {
            let problem = store.problem(&id)?;
            vec![(id, Ok(problem))]
        }
        None => store
            .problems()?
            .into_iter()
            .map(|id| {
                let problem = store.problem(&id);
                (id, problem)
            })
            .collect(),
    };

    // List everything first, so the progress bar knows the total.
    let work: Vec<Work> = opened
        .into_iter()
        .map(|(id, problem)| match problem {
            Ok(problem) => {
                let (artifacts, errors) = artifacts_of(&problem);
                Work {
                    id,
                    problem: Some(problem),
                    artifacts,
                    errors,
                }
            }
            Err(e) => Work {
                errors: vec![Failure::new(&id, None, &e)],
                id,
                problem: None,
                artifacts: Vec::new(),
            },
        })
        .collect();
    let files: usize = work.iter().map(|w| w.artifacts.len()).sum();
    let bytes: u64 = work
        .iter()
        .flat_map(|w| &w.artifacts)
        .filter_map(|a| std::fs::metadata(a.data_path()).ok())
        .map(|m| m.len())
        .sum();
    let bar = wants_progress(files, bytes, io::stderr().is_terminal()).then(|| progress_bar(bytes));

    let mut problems = Vec::with_capacity(work.len());
    let mut summary = Summary::default();
    let mut outcome = Outcome::Clean;
    for w in work {
        let round = w.problem.as_ref().and_then(|p| p.global_round().ok());
        let mut reports = Vec::with_capacity(w.artifacts.len());

        // A problem that did not open has nothing to check.
        let checkable = w
            .problem
            .iter()
            .flat_map(|p| w.artifacts.iter().map(move |a| (p, a)));
        for (problem, artifact) in checkable {
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
                outcome = outcome.max(Outcome::Problems);
            } else if report.stale || report.state == check::State::Legacy {
                summary.warnings += 1;
            }
            reports.push(report);
        }

        summary.errors += w.errors.len();
        outcome = w
            .errors
            .iter()
            .map(|e| e.outcome)
            .fold(outcome, Outcome::max);
        problems.push(ProblemFiles {
            problem: w.id.to_string(),
            round,
            files: reports,
            errors: w.errors,
        });
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }

    out.report(&VerifyReport {
        root: root.to_owned(),
        problems,
        summary,
    })?;
    Ok(outcome)
}

/// The model and the global checkpoint, always, then each selector's aggregate and
/// client updates that have a data file or a commit record. A selector whose
/// `roundFiles` cannot be listed is left out, with its error.
fn artifacts_of(problem: &Problem) -> (Vec<Artifact>, Vec<Failure>) {
    let mut artifacts = vec![
        problem.artifact(ArtifactKind::Model),
        problem.artifact(ArtifactKind::GlobalCheckpoint),
    ];
    let mut errors = Vec::new();
    let exists = |a: &Artifact| a.data_path().exists() || a.record_path().exists();

    let selectors = problem.selectors().unwrap_or_else(|e| {
        errors.push(Failure::new(problem.id(), None, &e));
        Vec::new()
    });
    for selector in selectors {
        let aggregate = problem.artifact(ArtifactKind::Aggregate(selector.clone()));
        if exists(&aggregate) {
            artifacts.push(aggregate);
        }

        match clients_of(problem, &selector) {
            Ok(clients) => artifacts.extend(clients.into_iter().map(|client| {
                problem.artifact(ArtifactKind::ClientUpdate(selector.clone(), client))
            })),
            Err(e) => errors.push(Failure::new(problem.id(), Some(&selector), &e)),
        }
    }
    (artifacts, errors)
}

/// The clients of `selector` with a data file or, for one whose data file was
/// deleted, a commit record.
fn clients_of(problem: &Problem, selector: &SelectorId) -> Result<Vec<ClientNo>, Error> {
    let mut clients = problem.client_updates(selector)?;
    clients.extend(recorded_clients(&problem.layout().round_dir(selector))?);
    clients.sort_unstable();
    clients.dedup();
    Ok(clients)
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
            // The model and the checkpoint are always checked, unless the problem
            // could not be opened.
            let round = p.round.map_or("unknown".to_owned(), |r| r.to_string());
            let bytes: u64 = p.files.iter().filter_map(|f| f.size).sum();
            if p.files.is_empty() {
                writeln!(w, "problem {}: could not be opened", p.problem)?;
            } else {
                writeln!(
                    w,
                    "problem {}: round {round}, {} ({})",
                    p.problem,
                    output::count(p.files.len(), "file"),
                    output::bytes(bytes)
                )?;
            }
            for e in &p.errors {
                writeln!(w, "  {:<11} {}", "ERROR", e.error)?;
            }

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
        let verdict = if s.problems == 0 && s.errors == 0 {
            "ok"
        } else {
            "FAILED"
        };
        let errors = match s.errors {
            0 => String::new(),
            n => format!(", {} (not checked)", output::count(n, "error")),
        };
        writeln!(
            w,
            "verify: {verdict}: {} ({}) checked, {}, {}{errors}",
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
