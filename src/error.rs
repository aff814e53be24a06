//! The one error type of the crate.
//!
//! Every variant that touches the filesystem carries the operation (`op`, such as
//! "commit fl_checkpoint for round 7") and the path, so the message alone tells an
//! operator what failed where. I/O failures keep the [`io::Error`] as their source,
//! so [`io::ErrorKind`] survives for callers that branch on it (see
//! [`Error::io_kind`]).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::id::Round;
use crate::lock::LockHolder;

/// Which kind of id failed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// A [`ProblemId`](crate::ProblemId).
    Problem,
    /// A [`SelectorId`](crate::SelectorId).
    Selector,
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdKind::Problem => "problem",
            IdKind::Selector => "selector",
        })
    }
}

/// An error from fedota-store, naming the operation and the path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An id that cannot safely become a directory name.
    #[error("invalid {kind} id {id:?}: {reason}")]
    InvalidId {
        /// Problem or selector.
        kind: IdKind,
        /// The rejected text, given back.
        id: String,
        /// The rule it breaks.
        reason: &'static str,
    },

    /// The operating system refused an operation: permission denied, no space left,
    /// not found, and so on. [`Error::io_kind`] gives the kind.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: String,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The error from the operating system.
        #[source]
        source: io::Error,
    },

    /// The file is shorter than its commit record says: a torn or truncated write.
    #[error("{op}: {}: truncated: {actual} bytes, but its commit record says {expected}", path.display())]
    Truncated {
        /// What was being done.
        op: String,
        /// The data file.
        path: PathBuf,
        /// The size in the commit record.
        expected: u64,
        /// The bytes actually read.
        actual: u64,
    },

    /// The file is longer than its commit record says.
    #[error("{op}: {}: {actual} bytes or more, but its commit record says {expected}", path.display())]
    Oversized {
        /// What was being done.
        op: String,
        /// The data file.
        path: PathBuf,
        /// The size in the commit record.
        expected: u64,
        /// The bytes read before giving up.
        actual: u64,
    },

    /// The file has the recorded size but not the recorded checksum.
    #[error(
        "{op}: {}: checksum mismatch: crc32c {actual:08x}, but its commit record says {expected:08x}",
        path.display()
    )]
    ChecksumMismatch {
        /// What was being done.
        op: String,
        /// The data file.
        path: PathBuf,
        /// The crc32c in the commit record.
        expected: u32,
        /// The crc32c of the bytes read.
        actual: u32,
    },

    /// A weight file whose content is not an unsigned decimal integer.
    #[error("{op}: {}: corrupt weight {text:?}: expected an unsigned decimal integer", path.display())]
    BadWeight {
        /// What was being done.
        op: String,
        /// The weight file.
        path: PathBuf,
        /// The first bytes of the content, lossily decoded.
        text: String,
    },

    /// A weight file that disagrees with the commit record of its data file: the two
    /// files belong to different commits.
    #[error("{op}: {}: weight {found}, but its commit record says {expected}", path.display())]
    WeightMismatch {
        /// What was being done.
        op: String,
        /// The weight file.
        path: PathBuf,
        /// The weight in the commit record.
        expected: u64,
        /// The weight in the file.
        found: u64,
    },

    /// A commit record that is not valid JSON of the expected shape.
    #[error("{op}: {}: malformed commit record: {source}", path.display())]
    BadRecord {
        /// What was being done.
        op: String,
        /// The record file.
        path: PathBuf,
        /// What the parser said.
        #[source]
        source: serde_json::Error,
    },

    /// A read kept finding a mismatch, even after re-reading. Either a writer is
    /// committing faster than the reader can read, or a writer died between the
    /// renames of one commit, or the file was changed by something other than
    /// fedota-store. The next complete commit repairs the second case.
    #[error(
        "{op}: {}: still inconsistent after {attempts} attempts: {}",
        path.display(),
        last_reason(last, path)
    )]
    Inconsistent {
        /// What was being done.
        op: String,
        /// The data file.
        path: PathBuf,
        /// How many times it was read.
        attempts: u32,
        /// The mismatch seen on the last attempt.
        #[source]
        last: Box<Error>,
    },

    /// A file has no commit record, so its round and checksum are unknown. Files
    /// written by the older services look like this.
    #[error("{op}: {}: no commit record, so its round is unknown (written by an older service?)", path.display())]
    Unrecorded {
        /// What was being done.
        op: String,
        /// The data file.
        path: PathBuf,
    },

    /// An artifact belongs to another round than the one asked for.
    #[error("{op}: {}: it is from round {found}, not round {wanted}", path.display())]
    StaleRound {
        /// What was being done.
        op: String,
        /// The data file.
        path: PathBuf,
        /// The round asked for.
        wanted: Round,
        /// The round in its commit record.
        found: Round,
    },

    /// A coordinator tried to commit a round at or below the stored one.
    #[error("{op}: {}: round {requested} does not move past the stored round {stored}", path.display())]
    RoundNotAdvanced {
        /// What was being done.
        op: String,
        /// The global checkpoint.
        path: PathBuf,
        /// The round already committed.
        stored: Round,
        /// The round that was refused.
        requested: Round,
    },

    /// This coordinator's lock generation is no longer the newest: another coordinator
    /// took the lock after it, so its writes are refused.
    #[error("{op}: {}: fenced: this coordinator holds generation {ours}, but generation {current} has taken over", path.display())]
    Fenced {
        /// What was being done.
        op: String,
        /// The file that showed the newer generation.
        path: PathBuf,
        /// This handle's generation.
        ours: u64,
        /// The newer generation found.
        current: u64,
    },

    /// The coordinator lock is held by someone else.
    #[error("{op}: {}: held by {}", path.display(), DisplayHolder(holder))]
    LockHeld {
        /// What was being done.
        op: String,
        /// The lock file.
        path: PathBuf,
        /// Who holds it, from the holder record, if that could be read.
        holder: Option<Box<LockHolder>>,
    },

    /// Waiting for the coordinator lock ran out of time.
    #[error(
        "{op}: {}: gave up after {}: held by {}",
        path.display(),
        Millis(*waited),
        DisplayHolder(holder)
    )]
    LockTimeout {
        /// What was being done.
        op: String,
        /// The lock file.
        path: PathBuf,
        /// How long it waited.
        waited: Duration,
        /// Who held it at the last try.
        holder: Option<Box<LockHolder>>,
    },

    /// Waiting for other services to commit ran out of time.
    #[error("{op}: {}: timed out after {}: {what}", path.display(), Millis(*waited))]
    Timeout {
        /// What was being waited for.
        op: String,
        /// The file or directory being watched.
        path: PathBuf,
        /// How long it waited.
        waited: Duration,
        /// What was still missing.
        what: String,
    },

    /// The tree was written by a newer fedota-store with a layout this one does not
    /// know.
    #[error("{op}: {}: layout version {found}, but this fedota-store knows only up to {supported}", path.display())]
    UnsupportedLayout {
        /// What was being done.
        op: String,
        /// The layout marker.
        path: PathBuf,
        /// The version in the marker.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
}

impl Error {
    /// The [`io::ErrorKind`] behind this error, if it came from the operating system.
    ///
    /// This is how to tell "no space left" ([`io::ErrorKind::StorageFull`]) from
    /// "permission denied" ([`io::ErrorKind::PermissionDenied`]).
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Error::Io { source, .. } => Some(source.kind()),
            Error::Inconsistent { last, .. } => last.io_kind(),
            _ => None,
        }
    }

    /// Whether the file or directory did not exist.
    pub fn is_not_found(&self) -> bool {
        self.io_kind() == Some(io::ErrorKind::NotFound)
    }

    /// The path the error is about, if it is about one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::InvalidId { .. } => None,
            Error::Io { path, .. }
            | Error::Truncated { path, .. }
            | Error::Oversized { path, .. }
            | Error::ChecksumMismatch { path, .. }
            | Error::BadWeight { path, .. }
            | Error::WeightMismatch { path, .. }
            | Error::BadRecord { path, .. }
            | Error::Inconsistent { path, .. }
            | Error::Unrecorded { path, .. }
            | Error::StaleRound { path, .. }
            | Error::RoundNotAdvanced { path, .. }
            | Error::Fenced { path, .. }
            | Error::LockHeld { path, .. }
            | Error::LockTimeout { path, .. }
            | Error::Timeout { path, .. }
            | Error::UnsupportedLayout { path, .. } => Some(path),
        }
    }

    /// The operation that failed, such as "commit fl_checkpoint for round 7".
    pub fn op(&self) -> Option<&str> {
        match self {
            Error::InvalidId { .. } => None,
            Error::Io { op, .. }
            | Error::Truncated { op, .. }
            | Error::Oversized { op, .. }
            | Error::ChecksumMismatch { op, .. }
            | Error::BadWeight { op, .. }
            | Error::WeightMismatch { op, .. }
            | Error::BadRecord { op, .. }
            | Error::Inconsistent { op, .. }
            | Error::Unrecorded { op, .. }
            | Error::StaleRound { op, .. }
            | Error::RoundNotAdvanced { op, .. }
            | Error::Fenced { op, .. }
            | Error::LockHeld { op, .. }
            | Error::LockTimeout { op, .. }
            | Error::Timeout { op, .. }
            | Error::UnsupportedLayout { op, .. } => Some(op),
        }
    }

    /// The message without the operation and the path in front: what went wrong.
    pub fn reason(&self) -> String {
        let full = self.to_string();

        let prefix = match (self, self.op(), self.path()) {
            (Error::Io { .. }, Some(op), Some(path)) => format!("{op} {}: ", path.display()),
            (_, Some(op), Some(path)) => format!("{op}: {}: ", path.display()),
            _ => return full,
        };
        full.strip_prefix(&prefix)
            .map_or_else(|| full.clone(), str::to_owned)
    }

    /// Builds an [`Error::Io`].
    pub(crate) fn io(op: impl Into<String>, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op: op.into(),
            path: path.into(),
            source,
        }
    }
}

/// The last mismatch of an [`Error::Inconsistent`], without repeating the path when
/// it is the same file.
fn last_reason(last: &Error, path: &Path) -> String {
    if last.path() == Some(path) {
        last.reason()
    } else {
        last.to_string()
    }
}

/// Shows a duration to the millisecond, as humantime writes it (`2s 3ms`).
struct Millis(Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = Duration::from_millis(self.0.as_millis() as u64);
        humantime::format_duration(millis).fmt(f)
    }
}

/// Shows a lock holder, or says it is unknown.
struct DisplayHolder<'a>(&'a Option<Box<LockHolder>>);

impl fmt::Display for DisplayHolder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(holder) => holder.fmt(f),
            None => f.write_str("an unknown process (no readable holder record)"),
        }
    }
}

/// Takes an [`Error`] back out of an [`io::Error`] that carries one (as the errors of
/// [`ArtifactWriter`](crate::ArtifactWriter)'s `Write` impl do), or else builds one
/// with `fallback`.
pub(crate) fn from_io(e: io::Error, fallback: impl FnOnce(io::Error) -> Error) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        let inner = e.into_inner().expect("checked: it has an inner error");
        return *inner
            .downcast::<Error>()
            .expect("checked: the inner error is ours");
    }
    fallback(e)
}

/// Attaches an operation and a path to an [`io::Result`].
pub(crate) trait IoContext<T> {
    /// Turns an I/O failure into [`Error::Io`] for `op` on `path`.
    fn context(self, op: impl Into<String>, path: &Path) -> Result<T, Error>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, op: impl Into<String>, path: &Path) -> Result<T, Error> {
        self.map_err(|source| Error::io(op, path, source))
    }
}
