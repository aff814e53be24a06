//! Verified reads: stream a data file while checking it against its commit record.
//!
//! # Guarantees
//!
//! Every read opens the files by path, so NFS close-to-open consistency applies: the
//! reader sees what the server had when it opened the file, never a cached copy of
//! an older open.
//!
//! A verified read returns data whose size and crc32c match one commit, and a weight
//! equal to the weight of that same commit. One attempt:
//!
//! 1. reads the commit record, and refuses a round other than the one asked for;
//! 2. opens the data file, and at once reads the weight file;
//! 3. streams the data through the caller's closure, computing its size and crc32c;
//! 4. looks for the commit that data and weight belong to: the record's own, or one
//!    of the earlier commits it keeps ([`CommitRecord::earlier`]).
//!
//! Step 4 lets a reader verify data that a newer commit replaced while it was being
//! read. Data that matches no commit was most likely opened while its writer was
//! between its renames: the data is in place, its record not yet. So the reader
//! keeps what that attempt saw and looks at the record again, at once and after each
//! pause; when the record that lands names a commit the data and weight match, the
//! read is done without reading the data again. Otherwise the next attempt reads it
//! again, with backoff, up to [`RetryPolicy::attempts`] times, and then the read
//! fails with [`Error::Inconsistent`]. A stale NFS file handle (`ESTALE`) and a data
//! file that vanished under a record are retried the same way.
//!
//! A file without a record (written by an older service) is read as it is and
//! reported as unverified: [`Snapshot::record`] is `None`.
//!
//! # Caveats
//!
//! The data reaches the caller's closure before its checksum is known. A closure
//! must treat what it read as provisional until the read returns `Ok`, and must be
//! able to start again (it is called once per attempt).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::time::Duration;

use crate::error::{self, Error};
use crate::layout::Artifact;
use crate::record::{self, CommitRecord};
use crate::weight;

/// How often and how patiently a read retries a mismatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How many times to read, in all. At least 1.
    pub attempts: u32,
    /// The pause after the first failed attempt. It doubles after each one.
    pub initial_backoff: Duration,
    /// The longest pause between two attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Sixteen attempts, pausing 10 ms, then 20 ms, and so on up to 500 ms: about 5.1 s
    /// of waiting in all. That rides out a commit caught between its renames on NFS,
    /// where the NFS lab measured the slowest of 500 small commits at 3.3 s; eight
    /// attempts (1.1 s) gave up on 8 of 3585 reads there.
    fn default() -> Self {
        Self {
            attempts: 16,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(500),
        }
    }
}

impl RetryPolicy {
    /// The pause after failed attempt number `attempt` (counting from 1).
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// What a read produced, with what is known about it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Snapshot<T> {
    /// What the caller's closure returned for the verified attempt.
    pub value: T,
    /// The commit record the data was verified against; `None` for a file without
    /// one (written by an older service), which was read unverified.
    pub record: Option<CommitRecord>,
    /// The weight, for aggregates and client updates.
    pub weight: Option<u64>,
}

impl<T> Snapshot<T> {
    /// Whether the data was checked against a commit record.
    pub fn is_verified(&self) -> bool {
        self.record.is_some()
    }

    /// The round from the commit record, if there is one.
    pub fn round(&self) -> Option<crate::Round> {
        self.record.as_ref().map(|r| r.round)
    }

    /// Applies `f` to the value, keeping what is known about it.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Snapshot<U> {
        Snapshot {
            value: f(self.value),
            record: self.record,
            weight: self.weight,
        }
    }
}

/// What a read requires of the record beyond matching the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Any round; a file without a record is read unverified.
    Anything,
    /// This round exactly; a file without a record is refused.
    Round(crate::Round),
}

/// Reads `artifact`, calling `f` with a reader of its data, verifying as described in
/// the [module docs](self).
pub(crate) fn read_artifact<T>(
    artifact: &Artifact,
    expect: Expect,
    policy: &RetryPolicy,
    op: &str,
    mut f: impl FnMut(&mut dyn Read) -> io::Result<T>,
) -> Result<Snapshot<T>, Error> {
    let attempts = policy.attempts.max(1);
    let mut attempt = 1;
    let mut unmatched = None;

    loop {
        let error = match read_once(artifact, expect, op, &mut f, &mut unmatched) {
            Ok(snapshot) => return Ok(snapshot),
            Err(Failure::Final(e)) => return Err(e),
            Err(Failure::Retry(e) | Failure::Unmatched(e)) => e,
        };

        // Data that matched no commit the record knew may be of a commit whose record
        // landed while it streamed: a look at the record costs far less than reading
        // the data again.
        if let Some(snapshot) = landed(artifact, expect, op, &mut unmatched)? {
            return Ok(snapshot);
        }

        if attempt >= attempts {
            tracing::warn!(path = %artifact.data_path().display(), attempts, error = %error, "read gave up");
            return Err(Error::Inconsistent {
                op: op.to_owned(),
                path: artifact.data_path(),
                attempts,
                last: Box::new(error),
            });
        }

        let pause = policy.backoff(attempt);
        tracing::debug!(path = %artifact.data_path().display(), attempt, error = %error, ?pause, "read again");
        std::thread::sleep(pause);
        attempt += 1;

        // Or whose record landed during the pause.
        if let Some(snapshot) = landed(artifact, expect, op, &mut unmatched)? {
            return Ok(snapshot);
        }
    }
}

/// An attempt whose data and weight matched no commit the record knew: what the
/// closure made of them, and what they were, until their record lands or the next
/// attempt replaces them.
///
/// Only the latest attempt is kept, so that what a read returns is always what the
/// closure saw last.
struct Unmatched<T> {
    value: T,
    seen: Observed,
}

/// The verified read of the `unmatched` attempt, if the record now names a commit its
/// data and weight match.
///
/// # Errors
///
/// [`Error::StaleRound`] if they belong to a newer round than the one expected. Any
/// trouble reading the record is left to the next attempt, which reports it.
fn landed<T>(
    artifact: &Artifact,
    expect: Expect,
    op: &str,
    unmatched: &mut Option<Unmatched<T>>,
) -> Result<Option<Snapshot<T>>, Error> {
    let Some(pending) = unmatched.take() else {
        return Ok(None);
    };
    let Ok(Some(now)) = record::read(&artifact.record_path(), artifact.name(), op) else {
        *unmatched = Some(pending);
        return Ok(None);
    };

    let Some(found) = now
        .versions()
        .find(|v| compare(artifact, v, &pending.seen, op).is_ok())
    else {
        *unmatched = Some(pending);
        return Ok(None);
    };
    let record = match accept(found, expect, op, artifact) {
        Ok(record) => record,
        Err(Failure::Final(e)) => return Err(e),
        // Of an older round than expected: it will never do.
        Err(_) => return Ok(None),
    };

    tracing::debug!(path = %artifact.data_path().display(), round = record.round, "the data read matched a record that landed later");
    Ok(Some(Snapshot {
        value: pending.value,
        record: Some(record),
        weight: pending.seen.weight,
    }))
}

/// Why one attempt failed.
enum Failure {
    /// Reading again may succeed.
    Retry(Error),
    /// The data and weight matched no commit the record knows: reading again may
    /// succeed, and so may a later look at the record (see [`landed`]).
    Unmatched(Error),
    /// It will not.
    Final(Error),
}

impl From<Error> for Failure {
    /// Sorts an error: a stale NFS file handle may go away on the next open; anything
    /// else from the operating system, or a bad record or weight, will not.
    fn from(e: Error) -> Self {
        match &e {
            Error::Io { source, .. } if crate::fsutil::is_stale_handle(source) => Failure::Retry(e),
            _ => Failure::Final(e),
        }
    }
}

/// One attempt: the record, the data and its weight, then the match.
fn read_once<T>(
    artifact: &Artifact,
    expect: Expect,
    op: &str,
    f: &mut impl FnMut(&mut dyn Read) -> io::Result<T>,
    unmatched: &mut Option<Unmatched<T>>,
) -> Result<Snapshot<T>, Failure> {
    let data_path = artifact.data_path();
    *unmatched = None;

    // The record first: it says whether the file is recorded at all, and which round
    // is current, so a stale round is refused before any data is read.
    let before = record::read(&artifact.record_path(), artifact.name(), op)?;
    check_expected(before.as_ref(), expect, op, &data_path)?;

    // The data, opened by path for this attempt. A record without its data file
    // means a writer or a cleanup is between steps: read again.
    let file = match File::open(&data_path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound && before.is_some() => {
            return Err(Failure::Retry(Error::io(
                format!("{op}: open"),
                &data_path,
                e,
            )));
        }
        Err(e) => return Err(Error::io(format!("{op}: open"), &data_path, e).into()),
    };

    // The weight at once, so data and weight are read as close together as the
    // writer renames them, whatever the time the data takes to stream.
    let weight = match artifact.weight_path() {
        None => None,
        Some(path) => Some(read_weight(&path, before.is_some(), op)?),
    };

    // Stream the data through the closure, then through a sink, since the closure
    // may stop early and the rest still has to be checked. Nothing longer than the
    // longest version the record knows can match, so the reader stops there.
    let mut reader = VerifyingReader {
        inner: file,
        crc: 0,
        size: 0,
        limit: before
            .as_ref()
            .and_then(|r| r.versions().map(|v| v.size).max()),
        overflowed: false,
    };
    let result =
        f(&mut reader).and_then(|value| io::copy(&mut reader, &mut io::sink()).map(|_| value));
    if let (true, Some(before)) = (reader.overflowed, &before) {
        return Err(Failure::Retry(Error::Oversized {
            op: op.to_owned(),
            path: data_path,
            expected: before.size,
            actual: reader.size,
        }));
    }
    let value = result
        .map_err(|e| error::from_io(e, |e| Error::io(format!("{op}: read"), &data_path, e)))?;

    let Some(before) = before else {
        return Ok(Snapshot {
            value,
            record: None,
            weight,
        });
    };
    let seen = Observed {
        size: reader.size,
        crc: reader.crc,
        weight,
    };
    let record = match match_record(artifact, &before, &seen, expect, op) {
        Ok(record) => Some(record),
        Err(Failure::Unmatched(e)) => {
            *unmatched = Some(Unmatched { value, seen });
            return Err(Failure::Unmatched(e));
        }
        Err(e) => return Err(e),
    };
    Ok(Snapshot {
        value,
        record,
        weight,
    })
}

/// Refuses a record of another round than the one expected, and a file without a
/// record when a round is expected.
fn check_expected(
    record: Option<&CommitRecord>,
    expect: Expect,
    op: &str,
    data_path: &Path,
) -> Result<(), Failure> {
    match (record, expect) {
        (None, Expect::Round(_)) if data_path.exists() => Err(Failure::Final(Error::Unrecorded {
            op: op.to_owned(),
            path: data_path.to_owned(),
        })),
        (Some(r), Expect::Round(wanted)) if r.round != wanted => {
            Err(Failure::Final(Error::StaleRound {
                op: op.to_owned(),
                path: data_path.to_owned(),
                wanted,
                found: r.round,
            }))
        }
        _ => Ok(()),
    }
}

/// What one attempt read: the data's size and crc32c, and the weight.
struct Observed {
    size: u64,
    crc: u32,
    weight: Option<u64>,
}

/// The commit that the data and weight just read belong to, among those `before`
/// knows: the record read before the data was opened, and the earlier commits it
/// keeps. Accepting any of these is sound: the data matched that commit's size and
/// checksum, and the weight matched its weight.
///
/// [`Failure::Unmatched`] says how the data differs from the current commit. A writer
/// renames its data first and writes its record last, so data opened between the two
/// matches nothing yet; its record is looked for later (see [`landed`]).
fn match_record(
    artifact: &Artifact,
    before: &CommitRecord,
    seen: &Observed,
    expect: Expect,
    op: &str,
) -> Result<CommitRecord, Failure> {
    let mismatch = match compare(artifact, before, seen, op) {
        Ok(()) => return accept(before, expect, op, artifact),
        Err(mismatch) => mismatch,
    };

    match before
        .earlier
        .iter()
        .find(|v| compare(artifact, v, seen, op).is_ok())
    {
        Some(found) => accept(found, expect, op, artifact),
        None => Err(Failure::Unmatched(mismatch)),
    }
}

/// Takes `found` as the commit that was read, if its round is the one expected.
///
/// A newer round than expected is final: the round asked for has been replaced. An
/// older one can only be a stale view of the directory (an NFS client's cache), since
/// the record said the round expected was current before the data was opened; it is
/// read again.
fn accept(
    found: &CommitRecord,
    expect: Expect,
    op: &str,
    artifact: &Artifact,
) -> Result<CommitRecord, Failure> {
    let mut found = found.clone();
    found.earlier.clear();

    match expect {
        Expect::Round(wanted) if found.round != wanted => {
            let stale = Error::StaleRound {
                op: op.to_owned(),
                path: artifact.data_path(),
                wanted,
                found: found.round,
            };
            if found.round > wanted {
                Err(Failure::Final(stale))
            } else {
                Err(Failure::Retry(stale))
            }
        }
        _ => Ok(found),
    }
}

/// Compares what was read with one committed version, saying how it differs.
fn compare(
    artifact: &Artifact,
    version: &CommitRecord,
    seen: &Observed,
    op: &str,
) -> Result<(), Error> {
    let op = op.to_owned();
    let path = artifact.data_path();

    if seen.size < version.size {
        return Err(Error::Truncated {
            op,
            path,
            expected: version.size,
            actual: seen.size,
        });
    }
    if seen.size > version.size {
        return Err(Error::Oversized {
            op,
            path,
            expected: version.size,
            actual: seen.size,
        });
    }
    if seen.crc != version.crc32c {
        return Err(Error::ChecksumMismatch {
            op,
            path,
            expected: version.crc32c,
            actual: seen.crc,
        });
    }

    if let (Some(expected), Some(found), Some(path)) =
        (version.weight, seen.weight, artifact.weight_path())
        && expected != found
    {
        return Err(Error::WeightMismatch {
            op,
            path,
            expected,
            found,
        });
    }
    Ok(())
}

/// Reads the weight file. Its absence beside a recorded data file means a writer or
/// a cleanup is between steps, and is retried.
fn read_weight(path: &Path, recorded: bool, op: &str) -> Result<u64, Failure> {
    match weight::read(path, op) {
        Ok(w) => Ok(w),
        Err(e) if e.is_not_found() && recorded => Err(Failure::Retry(e)),
        Err(e) => Err(e.into()),
    }
}

/// A reader that computes the crc32c and size of what passes through, and refuses to
/// go past a size limit.
struct VerifyingReader {
    inner: File,
    crc: u32,
    size: u64,
    limit: Option<u64>,
    overflowed: bool,
}

impl Read for VerifyingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;

        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.size += n as u64;

        if let Some(limit) = self.limit
            && self.size > limit
        {
            self.overflowed = true;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "longer than its commit record says",
            ));
        }
        Ok(n)
    }
}
