//! The platform primitives fedota-store is built on.
//!
//! They are public so that tools probe exactly what the library relies on:
//! `fedota-store doctor` takes the same lock as a [`Coordinator`](crate::Coordinator)
//! and judges directory fsync by the same rule as a commit.

use std::fs::File;
use std::io;

/// The kind of lock the coordinator takes, for reports.
#[cfg(target_os = "linux")]
pub const LOCK_KIND: &str = "OFD lock (fcntl F_OFD_SETLK)";
/// The kind of lock the coordinator takes, for reports.
#[cfg(not(target_os = "linux"))]
pub const LOCK_KIND: &str = "lock (std File::try_lock)";

/// This machine's host name, as written into holder and commit records.
pub fn hostname() -> &'static str {
    crate::fsutil::hostname()
}

/// Takes the coordinator's kind of lock, exclusive and on the whole file, without
/// waiting: `Ok(true)` if taken, `Ok(false)` if another open file description holds
/// a conflicting lock. Two open file descriptions conflict even within one process.
///
/// # Errors
///
/// The error from `fcntl` (Linux) or [`File::try_lock`] (elsewhere), other than
/// "would block".
pub fn try_lock(file: &File) -> io::Result<bool> {
    crate::lock::sys::try_lock(file)
}

/// Releases a lock taken by [`try_lock`] through this open file description.
///
/// # Errors
///
/// The error from `fcntl` or [`File::unlock`].
pub fn unlock(file: &File) -> io::Result<()> {
    crate::lock::sys::unlock(file)
}

/// Closes `file` and returns the error from `close(2)`, which on NFS is where
/// delayed write errors surface. Dropping a [`File`] ignores that error.
///
/// # Errors
///
/// The error from `close`.
pub fn close(file: File) -> io::Result<()> {
    crate::fsutil::close(file)
}

/// Whether an error from fsync of a directory means "this filesystem does not do
/// that" (`EINVAL`, `ENOTSUP`), which commits accept: see the commit protocol in
/// [`commit`](crate::commit).
pub fn is_dir_sync_unsupported(e: &io::Error) -> bool {
    crate::fsutil::dir_sync_unsupported(e)
}
