//! Printing reports as text or JSON, exit codes, and the small helpers the verbs
//! share.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use fedota_store::Error;
use fedota_store::layout::LAYOUT_MARKER;
use serde::Serialize;

/// The version of every verb's JSON schema. Fields may be added within a version;
/// renaming or removing one raises it.
pub const SCHEMA_VERSION: u32 = 1;

/// The `--json` flag of the reporting verbs.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct OutputArgs {
    /// Print the report as one JSON object (the schema is in the README)
    #[arg(long)]
    pub json: bool,
}

/// What a verb found, when it ran to the end. Ordered from best to worst, so the
/// outcome of a run is the `max` of its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Outcome {
    /// Nothing wrong: exit 0.
    #[default]
    Clean,
    /// The check found a problem: exit 1.
    Problems,
    /// Part of the tree could not be read, and the report went on without it: exit 2.
    Failed,
}

impl Outcome {
    /// [`Outcome::Problems`] if `found` is true.
    pub fn problems_if(found: bool) -> Self {
        if found {
            Outcome::Problems
        } else {
            Outcome::Clean
        }
    }

    /// The outcome of a run that met `error` and went on: exit 1 or 2, as if the verb
    /// had stopped there.
    pub fn of_error(error: &Error) -> Self {
        if exit_code(error) == 1 {
            Outcome::Problems
        } else {
            Outcome::Failed
        }
    }

    /// The exit code.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Clean => 0,
            Outcome::Problems => 1,
            Outcome::Failed => 2,
        }
    }
}

/// A report that can print itself as text.
pub trait Render {
    /// Writes the human-readable form.
    fn render(&self, w: &mut dyn Write) -> io::Result<()>;
}

/// Where reports go: stdout, as text or JSON.
#[derive(Debug)]
pub struct Output {
    command: &'static str,
    json: bool,
}

/// The JSON object around every report.
#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    command: &'a str,
    schema_version: u32,
    #[serde(flatten)]
    report: &'a T,
}

/// The JSON form of a failure.
#[derive(Serialize)]
struct ErrorReport {
    error: ErrorBody,
}

/// `path` is text, decoded lossily, so that the envelope can always be printed.
#[derive(Serialize)]
struct ErrorBody {
    message: String,
    path: Option<String>,
    exit_code: u8,
}

impl Output {
    /// Reports of `command`, as JSON if `json`.
    pub fn new(command: &'static str, json: bool) -> Self {
        Self { command, json }
    }

    /// Prints `report` to stdout.
    ///
    /// The whole report is made before any of it is written, so a report that cannot
    /// be encoded (JSON needs UTF-8 paths) leaves stdout empty for the error envelope.
    /// A closed stdout (`fedota-store status | head`) is not an error: the reader has
    /// what it wanted.
    pub fn report<T: Serialize + Render>(&self, report: &T) -> Result<(), Error> {
        let stdout_path = Path::new("<stdout>");
        let mut text = Vec::new();

        if self.json {
            let envelope = Envelope {
                command: self.command,
                schema_version: SCHEMA_VERSION,
                report,
            };
            serde_json::to_writer_pretty(&mut text, &envelope).map_err(|e| {
                let e = io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{e} (without --json, the text report shows such paths)"),
                );
                io_error("encode the report as JSON for", stdout_path, e)
            })?;
            text.push(b'\n');
        } else {
            report
                .render(&mut text)
                .map_err(|e| io_error("format the report for", stdout_path, e))?;
        }

        let mut stdout = io::stdout().lock();
        match stdout.write_all(&text).and_then(|()| stdout.flush()) {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                Err(io_error("write the report to", stdout_path, e))
            }
            _ => Ok(()),
        }
    }

    /// Reports a failure on stderr (and as JSON on stdout with `--json`), and returns
    /// the exit code for it.
    pub fn error(&self, error: &Error) -> u8 {
        let code = exit_code(error);
        let message = describe(error);
        warn(self.command, &format!("error: {message}"));

        let path = error.path().map(|p| p.to_string_lossy().into_owned());
        self.error_envelope(message, path, code);
        code
    }

    /// With `--json`, prints the envelope of a usage error that the command-line
    /// parser has already explained on stderr.
    pub fn usage_error(&self, message: String) {
        self.error_envelope(message, None, 2);
    }

    /// Prints `{"command", "schema_version", "error": {…}}` on stdout with `--json`.
    fn error_envelope(&self, message: String, path: Option<String>, exit_code: u8) {
        if !self.json {
            return;
        }

        let report = ErrorReport {
            error: ErrorBody {
                message,
                path,
                exit_code,
            },
        };
        let envelope = Envelope {
            command: self.command,
            schema_version: SCHEMA_VERSION,
            report: &report,
        };
        // Best effort: the message is on stderr already, and stdout may be closed.
        if let Ok(text) = serde_json::to_string_pretty(&envelope) {
            let _ = writeln!(io::stdout(), "{text}");
        }
    }
}

/// Writes `fedota-store <command>: <message>` to stderr. A closed stderr is ignored:
/// there is nowhere else to say it, and the exit code still tells.
pub fn warn(command: &str, message: &str) {
    let _ = writeln!(io::stderr(), "fedota-store {command}: {message}");
}

/// An error's message, saying which file was malformed where the library's wording
/// is about commit records only: a `.fedota-layout` that does not parse is a
/// malformed layout marker.
pub fn describe(error: &Error) -> String {
    match error {
        Error::BadRecord { op, path, source }
            if path.file_name() == Some(OsStr::new(LAYOUT_MARKER)) =>
        {
            format!(
                "{op}: {}: malformed layout marker: {source}",
                path.display()
            )
        }
        other => other.to_string(),
    }
}

/// The exit code for an error: 1 when the tree is not as required, 2 for I/O and
/// anything else.
pub fn exit_code(error: &Error) -> u8 {
    match error {
        Error::Truncated { .. }
        | Error::Oversized { .. }
        | Error::ChecksumMismatch { .. }
        | Error::BadWeight { .. }
        | Error::WeightMismatch { .. }
        | Error::BadRecord { .. }
        | Error::Inconsistent { .. }
        | Error::Unrecorded { .. }
        | Error::StaleRound { .. }
        | Error::RoundNotAdvanced { .. }
        | Error::Fenced { .. }
        | Error::LockHeld { .. }
        | Error::LockTimeout { .. }
        | Error::Timeout { .. } => 1,
        _ => 2,
    }
}

/// An [`Error::Io`] for `op` on `path`.
pub fn io_error(op: impl Into<String>, path: &Path, source: io::Error) -> Error {
    Error::Io {
        op: op.into(),
        path: path.to_owned(),
        source,
    }
}

/// A byte count for people: `512 B`, `1.50 MiB`.
pub fn bytes(n: u64) -> String {
    indicatif::BinaryBytes(n).to_string()
}

/// An age for people, to the second: `12m 5s`.
pub fn age(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// `n thing` or `n things`.
pub fn count(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn verification_and_refusals_exit_1_and_io_exits_2() {
        let io = Error::Io {
            op: "open".to_owned(),
            path: PathBuf::from("/x"),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        assert_eq!(exit_code(&io), 2);

        let corrupt = Error::ChecksumMismatch {
            op: "read".to_owned(),
            path: PathBuf::from("/x"),
            expected: 1,
            actual: 2,
        };
        assert_eq!(exit_code(&corrupt), 1);

        let held = Error::LockHeld {
            op: "lock".to_owned(),
            path: PathBuf::from("/x"),
            holder: None,
        };
        assert_eq!(exit_code(&held), 1);
    }

    #[test]
    fn the_worst_outcome_wins() {
        let parts = [Outcome::Problems, Outcome::Failed, Outcome::Clean];
        assert_eq!(parts.into_iter().max(), Some(Outcome::Failed));
        assert_eq!(Outcome::Problems.max(Outcome::Clean).code(), 1);
    }

    #[test]
    fn a_malformed_layout_marker_is_called_that() {
        let source = serde_json::from_slice::<u32>(b"garbage").unwrap_err();
        let marker = Error::BadRecord {
            op: "open problem p1: read the layout marker".to_owned(),
            path: PathBuf::from("/data/p1/initFiles/.fedota-layout"),
            source,
        };
        let text = describe(&marker);
        assert!(text.contains(": malformed layout marker: "), "{text}");
        assert!(!text.contains("commit record"), "{text}");

        let source = serde_json::from_slice::<u32>(b"garbage").unwrap_err();
        let record = Error::BadRecord {
            op: "read".to_owned(),
            path: PathBuf::from("/data/p1/initFiles/.fedota-commit.model.h5"),
            source,
        };
        assert!(describe(&record).contains("malformed commit record"));
    }

    #[test]
    fn counts_and_sizes_read_naturally() {
        assert_eq!(count(1, "file"), "1 file");
        assert_eq!(count(3, "file"), "3 files");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(age(Duration::from_millis(61_900)), "1m 1s");
    }
}
