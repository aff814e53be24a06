//! Checking one file against its commit record, shared by `status` and `verify`.
//!
//! # The JSON form of a checked file
//!
//! ```text
//! {
//!   "artifact": "model" | "checkpoint" | "aggregate" | "update",
//!   "selector": string | null,         aggregates and client updates
//!   "client": number | null,           client updates
//!   "path": string,                    the data file
//!   "state": "ok" | "legacy" | "absent" | "missing" | "corrupt" | "torn"
//!            | "mismatched" | "bad-weight" | "bad-record" | "unreadable",
//!   "size": number | null,             bytes read, or the recorded size
//!   "round": number | null,            from the commit record
//!   "weight": number | null,           aggregates and client updates
//!   "committed_at": string | null,     from the commit record
//!   "stale": bool,                     its round is neither the global round nor the one before
//!   "error": string | null,            why the state is not ok
//!   "error_path": string | null        the file the error is about (a weight file, say)
//! }
//! ```
//!
//! `ok` and `legacy` (a file an older service wrote, with no commit record, read
//! unverified) are sound; `absent` means nothing was ever committed there (a selector
//! that has not sent an aggregate yet). Every other state is a problem.
//!
//! In a problem that fedota-store made (it has a layout marker), `model.h5` and
//! `fl_checkpoint` are only ever written with a commit record, so one of them without
//! its record is `missing`, with an error naming the record, not `legacy`. Aggregates
//! and client updates without a record stay `legacy`: during a migration, selectors
//! of the older services still write them.
//!
//! # The JSON form of an error met on the way
//!
//! `status`, `verify` and `gc` go on past what they cannot read (a problem whose
//! layout marker is malformed, a `roundFiles` that is not a directory, a leftover
//! that cannot be removed) and list it:
//!
//! ```text
//! { "problem": string, "selector": string | null, "path": string | null,
//!   "error": string }
//! ```

use std::fs;
use std::io::{self, Read};
use std::path::PathBuf;

use fedota_store::{
    Artifact, ArtifactKind, ClientNo, Error, Problem, ProblemId, RetryPolicy, Round, SelectorId,
};
use indicatif::ProgressBar;
use serde::Serialize;

use crate::output::{self, Outcome};

/// How patiently `status` and `verify` read a file that does not match its record.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ReadArgs {
    /// How many times to read a file that does not match its commit record before
    /// reporting it. The default waits about 5 s per damaged file, in case a writer
    /// was between its renames; 1 reports at once, but can then report a file that is
    /// being committed as damaged
    #[arg(
        long,
        value_name = "N",
        default_value_t = RetryPolicy::default().attempts,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    read_attempts: u32,
}

impl ReadArgs {
    /// The library's retry policy with this many attempts.
    pub fn policy(self) -> RetryPolicy {
        RetryPolicy {
            attempts: self.read_attempts,
            ..RetryPolicy::default()
        }
    }
}

/// Something `status`, `verify` or `gc` could not read or do; the report goes on
/// without it.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub problem: String,
    pub selector: Option<String>,
    pub path: Option<PathBuf>,
    pub error: String,
    /// The exit code the error would have had on its own.
    #[serde(skip)]
    pub outcome: Outcome,
}

impl Failure {
    /// `error`, met in `problem` (and in `selector`'s directory, if given).
    pub fn new(problem: &ProblemId, selector: Option<&SelectorId>, error: &Error) -> Self {
        Self {
            problem: problem.to_string(),
            selector: selector.map(ToString::to_string),
            path: error.path().map(|p| p.to_owned()),
            error: output::describe(error),
            outcome: Outcome::of_error(error),
        }
    }
}

/// What a check found about one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// It matches its commit record.
    Ok,
    /// It has no commit record (an older service wrote it); read unverified.
    Legacy,
    /// Nothing was ever committed here.
    Absent,
    /// The data file or its weight file is gone, though a record or the layout says
    /// it should be there; or the commit record of the model or the global checkpoint
    /// is gone in a problem that fedota-store made.
    Missing,
    /// Its bytes do not have the recorded checksum.
    Corrupt,
    /// It is shorter or longer than recorded: a torn or partial write.
    Torn,
    /// Its weight file belongs to another commit.
    Mismatched,
    /// Its weight file does not hold a decimal integer.
    BadWeight,
    /// Its commit record does not parse, or names another file.
    BadRecord,
    /// The operating system refused to read it.
    Unreadable,
}

impl State {
    /// Whether this state is something to fix.
    pub fn is_problem(self) -> bool {
        !matches!(self, State::Ok | State::Legacy | State::Absent)
    }

    /// The state as the report prints it.
    pub fn label(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Legacy => "legacy",
            State::Absent => "absent",
            State::Missing => "missing",
            State::Corrupt => "corrupt",
            State::Torn => "torn",
            State::Mismatched => "mismatched",
            State::BadWeight => "bad-weight",
            State::BadRecord => "bad-record",
            State::Unreadable => "unreadable",
        }
    }
}

/// One checked file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub artifact: &'static str,
    pub selector: Option<String>,
    pub client: Option<ClientNo>,
    pub path: PathBuf,
    pub state: State,
    pub size: Option<u64>,
    pub round: Option<Round>,
    pub weight: Option<u64>,
    pub committed_at: Option<String>,
    pub stale: bool,
    pub error: Option<String>,
    pub error_path: Option<PathBuf>,
}

impl FileReport {
    /// The report of a file that was never committed.
    pub fn absent(artifact: &Artifact) -> Self {
        Self::new(artifact, State::Absent)
    }

    fn new(artifact: &Artifact, state: State) -> Self {
        let (name, selector, client) = describe(artifact.kind());
        Self {
            artifact: name,
            selector,
            client,
            path: artifact.data_path(),
            state,
            size: None,
            round: None,
            weight: None,
            committed_at: None,
            stale: false,
            error: None,
            error_path: None,
        }
    }

    /// Why the file is not ok, for text reports: the error without the operation and
    /// the path in front, led by the path it is about when that is another file
    /// (such as the weight file).
    pub fn reason(&self) -> Option<String> {
        let error = self.error.as_deref()?;
        let Some(about) = &self.error_path else {
            return Some(error.to_owned());
        };

        let marker = format!("{}: ", about.display());
        let tail = error
            .find(&marker)
            .map_or(error, |at| &error[at + marker.len()..]);
        if *about == self.path {
            Some(tail.to_owned())
        } else {
            Some(format!("{}: {tail}", about.display()))
        }
    }

    /// Marks the file stale if its round is neither `global` nor the round before
    /// (see [`is_stale`]).
    pub fn judge_staleness(&mut self, global: Option<Round>) {
        self.stale = is_stale(global, self.round);
    }
}

/// Whether an aggregate or client update of round `round` is stale while the global
/// checkpoint is at `global`.
///
/// While the global checkpoint is at round G, selectors train on it and commit their
/// aggregates of round G; until they have, their aggregate of G - 1 is the one the
/// coordinator used to make G. Anything older missed at least a whole round, and
/// anything newer than G cannot have come from this run of the problem (a problem
/// reset with `init --force`, say). Unknown rounds are never called stale.
pub fn is_stale(global: Option<Round>, round: Option<Round>) -> bool {
    match (global, round) {
        (Some(g), Some(r)) => r != g && r.checked_add(1) != Some(g),
        _ => false,
    }
}

/// Reads `artifact` whole and checks it against its record, advancing `progress` by
/// its bytes (once, even if the read is retried).
pub fn check(problem: &Problem, artifact: &Artifact, progress: Option<&ProgressBar>) -> FileReport {
    let base = progress.map(ProgressBar::position);
    let expected = fs::metadata(artifact.data_path()).map_or(0, |m| m.len());

    // Each attempt starts the bar again from where this file began.
    let result = problem.read_artifact(artifact, |r| {
        if let (Some(bar), Some(base)) = (progress, base) {
            bar.set_position(base);
        }
        drain(r, progress)
    });
    if let (Some(bar), Some(base)) = (progress, base) {
        bar.set_position(base + expected);
    }

    match result {
        Ok(snapshot) => {
            let state = match (snapshot.is_verified(), must_be_recorded(problem, artifact)) {
                (true, _) => State::Ok,
                (false, false) => State::Legacy,
                (false, true) => State::Missing,
            };
            let mut report = FileReport::new(artifact, state);
            report.size = Some(snapshot.value);
            report.round = snapshot.round();
            report.weight = snapshot.weight;
            report.committed_at = snapshot.record.map(|r| r.committed_at);

            let record = artifact.record_path();
            match state {
                State::Legacy => {
                    report.error = Some("no commit record: written by an older service".into());
                }
                State::Missing => {
                    report.error = Some(format!(
                        "{}: the commit record is gone, though the layout marker says \
                         fedota-store made this problem; the file cannot be verified",
                        record.display()
                    ));
                    report.error_path = Some(record);
                }
                _ => {}
            }
            report
        }
        Err(error) => failed(problem, artifact, &error),
    }
}

/// Whether `artifact` can only have been written with a commit record: the model and
/// the global checkpoint of a problem that has a layout marker. Aggregates and client
/// updates may come from selectors of the older services during a migration.
fn must_be_recorded(problem: &Problem, artifact: &Artifact) -> bool {
    matches!(
        artifact.kind(),
        ArtifactKind::Model | ArtifactKind::GlobalCheckpoint
    ) && matches!(problem.layout_version(), Ok(Some(_)))
}

/// The report of a file whose read failed, with what its record says, if anything.
fn failed(problem: &Problem, artifact: &Artifact, error: &Error) -> FileReport {
    let innermost = match error {
        Error::Inconsistent { last, .. } => last.as_ref(),
        other => other,
    };

    let mut report = FileReport::new(artifact, classify(innermost));
    if let Ok(Some(record)) = problem.record(artifact) {
        report.size = Some(record.size);
        report.round = Some(record.round);
        report.weight = record.weight;
        report.committed_at = Some(record.committed_at);
    }
    report.error = Some(match error {
        Error::Inconsistent { attempts, .. } => {
            let times = output::count(*attempts as usize, "time");
            format!("{} (read {times})", output::describe(innermost))
        }
        other => output::describe(other),
    });
    report.error_path = innermost.path().map(|p| p.to_owned());
    report
}

/// The state an error stands for.
fn classify(error: &Error) -> State {
    match error {
        Error::ChecksumMismatch { .. } => State::Corrupt,
        Error::Truncated { .. } | Error::Oversized { .. } => State::Torn,
        Error::WeightMismatch { .. } => State::Mismatched,
        Error::BadWeight { .. } => State::BadWeight,
        Error::BadRecord { .. } | Error::UnsupportedLayout { .. } => State::BadRecord,
        e if e.is_not_found() => State::Missing,
        _ => State::Unreadable,
    }
}

/// Reads `r` to the end, counting bytes into `progress`; returns how many.
fn drain(r: &mut dyn Read, progress: Option<&ProgressBar>) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;

    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        if let Some(bar) = progress {
            bar.inc(n as u64);
        }
    }
}

/// The artifact's kind, selector and client, for reports.
fn describe(kind: &ArtifactKind) -> (&'static str, Option<String>, Option<ClientNo>) {
    match kind {
        ArtifactKind::Model => ("model", None, None),
        ArtifactKind::GlobalCheckpoint => ("checkpoint", None, None),
        ArtifactKind::Aggregate(s) => ("aggregate", Some(s.to_string()), None),
        ArtifactKind::ClientUpdate(s, c) => ("update", Some(s.to_string()), Some(*c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedota_store::{ProblemId, ProblemLayout, SelectorId};
    use std::path::Path;

    #[test]
    fn the_reason_drops_the_operation_and_leads_with_another_file() {
        let layout = ProblemLayout::new(Path::new("/data"), &ProblemId::new("p1").unwrap());
        let selector = SelectorId::new("s1").unwrap();
        let mut report = FileReport::new(
            &layout.artifact(ArtifactKind::Aggregate(selector)),
            State::Ok,
        );

        report.error = Some("read it /data/p1/s1/fl_agg_checkpoint: checksum mismatch".into());
        report.error_path = Some(report.path.clone());
        assert_eq!(report.reason().unwrap(), "checksum mismatch");

        report.error = Some("read it /data/p1/s1/fl_agg_checkpoint_weight: corrupt".into());
        report.error_path = Some(PathBuf::from("/data/p1/s1/fl_agg_checkpoint_weight"));
        assert_eq!(
            report.reason().unwrap(),
            "/data/p1/s1/fl_agg_checkpoint_weight: corrupt"
        );
    }

    #[test]
    fn only_the_current_and_previous_rounds_are_fresh() {
        assert!(!is_stale(Some(5), Some(5)));
        assert!(!is_stale(Some(5), Some(4)));
        assert!(is_stale(Some(5), Some(3)));
        assert!(is_stale(Some(5), Some(6)));
        assert!(!is_stale(None, Some(3)));
        assert!(!is_stale(Some(0), None));
        assert!(is_stale(Some(0), Some(u64::MAX)));
    }
}
