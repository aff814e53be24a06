//! Commit records: the JSON file written last, which makes a commit visible to
//! verifying readers.
//!
//! A record sits beside its data file as `.fedota-commit.<name>`. It describes the
//! current version of the data file (size and crc32c) and, for aggregates and client
//! updates, the weight that belongs to it. It also keeps the records of the
//! [`HISTORY`] commits before it, newest first, so that a reader that opened the data
//! just before a newer commit replaced it can still tell which commit it read. A
//! reader whose data and weight match none of these knows it is looking at two
//! different commits, or at a commit whose record has not landed yet, and reads
//! again.

use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::fsutil;
use crate::id::Round;
use crate::layout::LAYOUT_VERSION;

/// How many earlier commits a record keeps, besides its own.
pub const HISTORY: usize = 8;

/// The record of one commit of one data file.
///
/// The JSON field names are part of the on-disk format. New optional fields may be
/// added without a layout change; anything else raises [`LAYOUT_VERSION`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CommitRecord {
    /// The layout version of the writer.
    pub layout: u32,
    /// The name of the data file this record describes, such as `fl_checkpoint`.
    pub artifact: String,
    /// The federated round the data belongs to.
    pub round: Round,
    /// The data file's size in bytes.
    pub size: u64,
    /// The crc32c (Castagnoli) of the data file.
    pub crc32c: u32,
    /// The content of the weight file, for aggregates and client updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u64>,
    /// Who wrote it.
    pub writer: WriterId,
    /// The coordinator lock generation under which it was written, for commits made
    /// while holding the lock. A fencing token: it only grows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// When the commit was made, RFC 3339 in UTC, by the writer's clock.
    pub committed_at: String,
    /// A unique id of this commit.
    pub commit_id: String,
    /// The records of the commits before this one, newest first, at most
    /// [`HISTORY`], each without its own `earlier`. Empty in the record of a file's
    /// first commit, and in what a commit returns and a read reports: those describe
    /// one commit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<CommitRecord>,
}

impl CommitRecord {
    /// This commit, then the earlier ones it keeps, newest first.
    pub fn versions(&self) -> impl Iterator<Item = &CommitRecord> {
        std::iter::once(self).chain(&self.earlier)
    }

    /// The history for the record that replaces `previous`: `previous` itself, then
    /// what it kept, cut to [`HISTORY`].
    pub(crate) fn history_after(previous: Option<CommitRecord>) -> Vec<CommitRecord> {
        let Some(mut previous) = previous else {
            return Vec::new();
        };

        let mut history = std::mem::take(&mut previous.earlier);
        history.insert(0, previous);
        history.truncate(HISTORY);
        history
    }
}

/// The process that made a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WriterId {
    /// `setup`, `coordinator` or `selector:<id>`.
    pub role: String,
    /// The writer's host name.
    pub host: String,
    /// The writer's process id.
    pub pid: u32,
    /// A unique id of the handle that wrote, so two handles in one process differ.
    pub session: String,
}

impl WriterId {
    /// A writer id for this process and a new session.
    pub(crate) fn new(role: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            host: fsutil::hostname().to_owned(),
            pid: std::process::id(),
            session: uuid::Uuid::new_v4().to_string(),
        }
    }
}

impl std::fmt::Display for WriterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (pid {} on {})", self.role, self.pid, self.host)
    }
}

/// Reads the record at `path`. `Ok(None)` when there is none.
///
/// # Errors
///
/// [`Error::BadRecord`] for content that does not parse or names another file,
/// [`Error::UnsupportedLayout`] for a record from a newer layout, and [`Error::Io`]
/// for anything the operating system refuses.
pub(crate) fn read(path: &Path, data_name: &str, op: &str) -> Result<Option<CommitRecord>, Error> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("{op}: read commit record"), path, e)),
    };

    let record: CommitRecord =
        serde_json::from_slice(&bytes).map_err(|source| Error::BadRecord {
            op: op.to_owned(),
            path: path.to_owned(),
            source,
        })?;

    if record.layout > LAYOUT_VERSION {
        return Err(Error::UnsupportedLayout {
            op: op.to_owned(),
            path: path.to_owned(),
            found: record.layout,
            supported: LAYOUT_VERSION,
        });
    }
    if record.artifact != data_name {
        let source = serde::de::Error::custom(format!(
            "it describes {:?}, not {data_name:?}",
            record.artifact
        ));
        return Err(Error::BadRecord {
            op: op.to_owned(),
            path: path.to_owned(),
            source,
        });
    }
    Ok(Some(record))
}

/// Writes `record` atomically to `path`.
pub(crate) fn write(path: &Path, record: &CommitRecord, op: &str) -> Result<(), Error> {
    let mut bytes = serde_json::to_vec_pretty(record).expect("a commit record always serializes");
    bytes.push(b'\n');

    fsutil::write_small_atomic(path, &bytes, &format!("{op}: write commit record"))
}
