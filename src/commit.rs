//! Atomic, durable commits of one data file, its weight and its commit record.
//!
//! # The protocol
//!
//! An [`ArtifactWriter`] streams into a temporary file beside the target, so a
//! checkpoint of any size is never held in memory. [`ArtifactWriter::commit`] then:
//!
//! 1. flushes, fsyncs and closes the temporary data file, checking every result
//!    (on NFS, `close` is where write errors surface);
//! 2. runs the role's checks: rounds move forward, and a coordinator still holds the
//!    newest lock generation (see [`Coordinator`](crate::Coordinator));
//! 3. writes the weight, if any, to its own temporary file the same way;
//! 4. renames the data file over its target, then the weight file over its target;
//! 5. fsyncs the directory;
//! 6. writes the commit record by the same steps (temporary file, fsync, rename,
//!    fsync of the directory). The record is written last: it is what makes the
//!    commit visible to verifying readers. It keeps the record it replaces, and that
//!    one's history, as [`CommitRecord::earlier`], read just before step 4.
//!
//! The target is never held open while it is renamed over, so NFS never needs to
//! hide it as `.nfsXXXX` on this client.
//!
//! # Guarantees
//!
//! - A reader that opens a data file by path sees either the whole old file or the
//!   whole new file, on a local disk and on NFS: rename is atomic on both.
//! - After `commit` returns, the data, the weight and the record are on stable
//!   storage (local disk), or acknowledged by the NFS server, which must make them
//!   stable before it replies to `COMMIT` and to namespace operations.
//! - Between step 4 and step 6 the record still describes the previous commit, so a
//!   verifying reader sees a mismatch. It looks at the record again once it has read
//!   the data, and takes the new record if it has landed and matches; otherwise it
//!   reads again (see [`read`](crate::read)). If the writer dies in that window, the
//!   mismatch stays until the next commit of that artifact; readers then get
//!   [`Error::Inconsistent`] rather than a torn or mixed version. Readers that do not
//!   verify (the older services) may meanwhile see the new data with the old weight:
//!   NFS cannot swap two files in one step.
//! - Dropping a writer that was not committed removes its temporary file. A writer
//!   killed outright leaves it behind; readers never look at it, and
//!   [`Store::remove_temporaries`](crate::Store::remove_temporaries) cleans it up.

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::error::{Error, IoContext};
use crate::fsutil;
use crate::id::Round;
use crate::layout::Artifact;
use crate::record::{self, CommitRecord, WriterId};
use crate::weight;

/// A check a role runs just before the renames; an error stops the commit.
pub(crate) type Precommit = Arc<dyn Fn(&Artifact, Round) -> Result<(), Error> + Send + Sync>;

/// The size of the write buffer in front of the temporary file.
const BUFFER_SIZE: usize = 1 << 20;

/// A commit in progress: a temporary file that becomes the artifact on
/// [`commit`](Self::commit).
///
/// Write the data through [`Write`], then call `commit`. Dropping the writer instead
/// removes the temporary file and leaves the previous version in place.
///
/// # Errors
///
/// Writes fail with an [`io::Error`] whose inner error is an [`Error`] naming the
/// temporary file. `commit` fails with a [`CommitError`].
pub struct ArtifactWriter {
    artifact: Artifact,
    round: Round,
    weight: Option<u64>,
    generation: Option<u64>,
    writer: WriterId,
    precommit: Option<Precommit>,
    op: String,
    file: Option<BufWriter<File>>,
    temp: tempfile::TempPath,
    crc: u32,
    size: u64,
    started: Instant,
}

/// What a successful commit wrote.
pub type Committed = CommitRecord;

/// A failed commit.
///
/// When the data was fully written and synced but not yet published (a role check
/// failed, or the rename failed), [`into_writer`](Self::into_writer) gives the writer
/// back, so the commit can be retried without streaming the data again.
#[derive(Debug)]
pub struct CommitError {
    error: Error,
    writer: Option<Box<ArtifactWriter>>,
}

impl CommitError {
    /// The error.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The writer, with its data staged, if the commit can be retried.
    pub fn into_writer(self) -> Option<ArtifactWriter> {
        self.writer.map(|w| *w)
    }

    /// The error, dropping the writer (which removes its temporary file).
    pub fn into_error(self) -> Error {
        self.error
    }
}

impl fmt::Display for CommitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for CommitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<CommitError> for Error {
    fn from(e: CommitError) -> Self {
        e.error
    }
}

impl ArtifactWriter {
    /// Starts a commit of `artifact` for `round`: creates the temporary file.
    pub(crate) fn new(
        artifact: Artifact,
        round: Round,
        weight: Option<u64>,
        writer: WriterId,
        generation: Option<u64>,
        precommit: Option<Precommit>,
    ) -> Result<Self, Error> {
        let op = format!("commit {} for round {round}", artifact.name());

        if let Some(w) = weight {
            let path = artifact
                .weight_path()
                .unwrap_or_else(|| artifact.data_path());
            weight::check(w, &op, &path)?;
        }

        let temp = fsutil::create_temp(artifact.dir(), artifact.name(), &op)?;
        let (file, temp) = temp.into_parts();

        Ok(Self {
            artifact,
            round,
            weight,
            generation,
            writer,
            precommit,
            op,
            file: Some(BufWriter::with_capacity(BUFFER_SIZE, file)),
            temp,
            crc: 0,
            size: 0,
            started: Instant::now(),
        })
    }

    /// The artifact being written.
    pub fn artifact(&self) -> &Artifact {
        &self.artifact
    }

    /// The round this commit is for.
    pub fn round(&self) -> Round {
        self.round
    }

    /// The bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.size
    }

    /// The temporary file's path.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Publishes the data, its weight and its commit record, in that order, each
    /// fsynced, as described in the [module docs](self).
    ///
    /// # Errors
    ///
    /// The error names the step and the path. The previous version stays intact and
    /// readable whenever the error comes before the rename of the data file: a failed
    /// write, fsync, close, role check ([`Error::RoundNotAdvanced`],
    /// [`Error::Fenced`]) or rename. In the last two cases the writer is handed back
    /// through [`CommitError::into_writer`].
    pub fn commit(mut self) -> Result<Committed, CommitError> {
        // Stage: everything written so far reaches stable storage before anything
        // is published. An fsync error is final: the page cache may have dropped the
        // data, so the writer is not handed back.
        if let Err(error) = self.stage() {
            return Err(CommitError {
                error,
                writer: None,
            });
        }

        // The role's checks, as late as possible, so a coordinator that lost its lock
        // while streaming does not publish.
        if let Some(check) = &self.precommit
            && let Err(error) = check(&self.artifact, self.round)
        {
            return Err(self.hand_back(error));
        }

        // The weight gets its own temporary file, fully synced before any rename.
        let weight_temp = match self.stage_weight() {
            Ok(temp) => temp,
            Err(error) => return Err(self.hand_back(error)),
        };

        // The record about to be replaced, read while it still describes the data
        // being replaced: the new record keeps it as history. One that cannot be read
        // only costs the new record its history.
        let previous = match record::read(
            &self.artifact.record_path(),
            self.artifact.name(),
            &self.op,
        ) {
            Ok(previous) => previous,
            Err(e) => {
                tracing::warn!(error = %e, "the commit record being replaced is unreadable; the new one starts without history");
                None
            }
        };

        // Publish the data. If this fails, nothing has changed for readers.
        let data_path = self.artifact.data_path();
        if let Err(error) = fsutil::rename(&self.temp, &data_path, &self.op) {
            return Err(self.hand_back(error));
        }

        self.finish(weight_temp, previous, &data_path)
            .map_err(|error| CommitError {
                error,
                writer: None,
            })
    }

    /// Publishes the weight and the record once the data is in place.
    fn finish(
        self,
        weight_temp: Option<tempfile::TempPath>,
        previous: Option<CommitRecord>,
        data_path: &Path,
    ) -> Result<Committed, Error> {
        let Self {
            artifact,
            round,
            weight,
            generation,
            writer,
            op,
            temp,
            crc,
            size,
            started,
            ..
        } = self;
        fsutil::disarm(temp);

        if let (Some(temp), Some(path)) = (weight_temp, artifact.weight_path()) {
            fsutil::rename(&temp, &path, &op)?;
            fsutil::disarm(temp);
        }

        // One directory fsync covers both renames.
        fsutil::sync_dir(artifact.dir(), &op)?;

        // The record goes last: it is what verifying readers trust.
        let mut record = CommitRecord {
            layout: crate::layout::LAYOUT_VERSION,
            artifact: artifact.name().to_owned(),
            round,
            size,
            crc32c: crc,
            weight,
            writer,
            generation,
            committed_at: fsutil::now_rfc3339(),
            commit_id: uuid::Uuid::new_v4().to_string(),
            earlier: CommitRecord::history_after(previous),
        };
        record::write(&artifact.record_path(), &record, &op)?;
        record.earlier.clear();
        tracing::info!(
            path = %data_path.display(),
            round,
            size,
            weight,
            generation,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "committed"
        );
        Ok(record)
    }

    /// Flushes, fsyncs and closes the temporary data file, once.
    fn stage(&mut self) -> Result<(), Error> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };

        let file = file
            .into_inner()
            .map_err(|e| Error::io(format!("{}: flush", self.op), &*self.temp, e.into_error()))?;
        fsutil::sync_and_close(file, &self.op, &self.temp)
    }

    /// Writes the weight to a synced temporary file.
    fn stage_weight(&self) -> Result<Option<tempfile::TempPath>, Error> {
        let (Some(w), Some(path)) = (self.weight, self.artifact.weight_path()) else {
            return Ok(None);
        };
        let (dir, name) = fsutil::split(&path);

        let mut temp = fsutil::create_temp(dir, name, &self.op)?;
        temp.write_all(&weight::format(w))
            .context(format!("{}: write weight", self.op), temp.path())?;

        let (file, temp) = temp.into_parts();
        fsutil::sync_and_close(file, &self.op, &temp)?;
        Ok(Some(temp))
    }

    fn hand_back(self, error: Error) -> CommitError {
        CommitError {
            error,
            writer: Some(Box::new(self)),
        }
    }

    fn write_error(&self, e: io::Error) -> io::Error {
        let kind = e.kind();
        io::Error::new(
            kind,
            Error::io(format!("{}: write", self.op), PathBuf::from(&*self.temp), e),
        )
    }
}

impl Write for ArtifactWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("the data was already staged for commit"));
        };

        let n = match file.write(buf) {
            Ok(n) => n,
            Err(e) => return Err(self.write_error(e)),
        };

        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut().map(|f| f.flush()) {
            Some(Err(e)) => Err(self.write_error(e)),
            _ => Ok(()),
        }
    }
}

impl fmt::Debug for ArtifactWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArtifactWriter")
            .field("artifact", &self.artifact)
            .field("round", &self.round)
            .field("weight", &self.weight)
            .field("temp", &self.temp)
            .field("size", &self.size)
            .field("staged", &self.file.is_none())
            .finish_non_exhaustive()
    }
}

/// Streams `data` into `writer` and commits it.
pub(crate) fn commit_from(
    mut writer: ArtifactWriter,
    data: &mut dyn io::Read,
) -> Result<Committed, Error> {
    if let Err(e) = io::copy(data, &mut writer) {
        let op = format!("{}: read the data to commit into", writer.op);
        let temp = writer.temp.to_path_buf();
        return Err(crate::error::from_io(e, |e| Error::io(op, temp, e)));
    }

    Ok(writer.commit()?)
}
