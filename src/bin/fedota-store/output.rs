//! Printing reports as text or JSON, exit codes, and the small helpers the verbs
//! share.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use fedota_store::Error;
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

/// What a verb found, when it ran to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing wrong: exit 0.
    Clean,
    /// The check found a problem: exit 1.
    Problems,
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

#[derive(Serialize)]
struct ErrorBody {
    message: String,
    path: Option<PathBuf>,
    exit_code: u8,
}

impl Output {
    /// Reports of `command`, as JSON if `json`.
    pub fn new(command: &'static str, json: bool) -> Self {
        Self { command, json }
    }

    /// Prints `report` to stdout.
    ///
    /// A closed stdout (`fedota-store status | head`) is not an error: the reader has
    /// what it wanted.
    pub fn report<T: Serialize + Render>(&self, report: &T) -> Result<(), Error> {
        let mut stdout = io::stdout().lock();

        let written = if self.json {
            let envelope = Envelope {
                command: self.command,
                schema_version: SCHEMA_VERSION,
                report,
            };
            serde_json::to_writer_pretty(&mut stdout, &envelope)
                .map_err(io::Error::from)
                .and_then(|()| writeln!(stdout))
        } else {
            report.render(&mut stdout)
        };

        match written.and_then(|()| stdout.flush()) {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Error::Io {
                op: "write the report to".to_owned(),
                path: PathBuf::from("<stdout>"),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Reports a failure on stderr (and as JSON on stdout with `--json`), and returns
    /// the exit code for it.
    pub fn error(&self, error: &Error) -> u8 {
        let code = exit_code(error);
        eprintln!("fedota-store {}: error: {error}", self.command);

        if self.json {
            let report = ErrorReport {
                error: ErrorBody {
                    message: error.to_string(),
                    path: error.path().map(Path::to_owned),
                    exit_code: code,
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
        code
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

/// Opens an input file, or stdin for `-`.
pub fn open_input(path: &Path, what: &str) -> Result<Box<dyn Read>, Error> {
    if path == Path::new("-") {
        return Ok(Box::new(io::stdin().lock()));
    }

    let file = File::open(path).map_err(|source| Error::Io {
        op: format!("open the {what} to commit"),
        path: path.to_owned(),
        source,
    })?;
    Ok(Box::new(file))
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
    fn counts_and_sizes_read_naturally() {
        assert_eq!(count(1, "file"), "1 file");
        assert_eq!(count(3, "file"), "3 files");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(age(Duration::from_millis(61_900)), "1m 1s");
    }
}
