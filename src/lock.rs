//! The coordinator lock: one coordinator per problem, fenced by a generation number.
//!
//! # How it locks
//!
//! The lock is taken on `initFiles/.fedota-coordinator.lock`, a file that is created
//! once and never replaced or deleted. Never on `fl_checkpoint`: a lock belongs to
//! an inode, and every commit renames a new inode over that name.
//!
//! - On Linux: an open-file-description lock, `fcntl(F_OFD_SETLK)` with `F_WRLCK` on
//!   the whole file. Over NFS the client turns it into a lock on the server (NLM for
//!   NFSv3, the protocol's own locks for NFSv4), so it excludes other clients, and
//!   it also excludes OFD and POSIX locks taken on the exported directory on the
//!   server itself. A `flock` on the server does not exclude NFS clients; that is
//!   why `flock` is not used here.
//! - Elsewhere: [`File::try_lock`].
//!
//! After locking, the lock file's device and inode are compared with what the path
//! names now; if someone replaced the file in between, the lock is dropped and taken
//! again on the new file.
//!
//! # Generations
//!
//! Each acquisition writes a holder record (`.fedota-coordinator.holder`) with the
//! host, pid and start time of the holder and a generation one higher than any seen
//! before, in the previous holder record or the global checkpoint's commit record.
//! Every commit made under the lock carries the generation, and before each commit
//! the holder checks that its generation is still the newest. A coordinator that lost
//! its lock without noticing (a paused VM, an expired NFSv4 lease) is thus refused
//! with [`Error::Fenced`] once a successor has taken over.
//!
//! # Caveats
//!
//! - A lock is a lease, not a fence. Under NFSv4 a server revokes a dead client's
//!   locks after one lease period (90 s by default); under NFSv3 they can stay until
//!   that client reboots. The generation check narrows the window in which a stale
//!   coordinator can write, but a check and a rename are two steps, so it cannot
//!   close it.
//! - With the NFS mount options `nolock` or `local_lock=posix|all`, fcntl locks never
//!   reach the server: two nodes can both hold this lock. `local_lock=flock` keeps
//!   only `flock` locks local, so the OFD lock still works there (measured on NFSv3;
//!   Linux ignores `local_lock` on NFSv4). `fedota-store doctor` reports all of
//!   these mounts.
//! - Two mounts on one NFS client share its NFSv4 delegations; measured with
//!   delegations on, an OFD lock through one mount did not always exclude a lock
//!   through the other. Separate nodes, as in production, do exclude.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext};
use crate::fsutil;
use crate::layout::ProblemLayout;

/// How many times in a row the lock file may turn out replaced before giving up.
const MAX_REPLACED: u32 = 10;

/// Who holds, or last held, a problem's coordinator lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LockHolder {
    /// The holder's host name.
    pub host: String,
    /// The holder's process id.
    pub pid: u32,
    /// When it took the lock, RFC 3339 in UTC, by its own clock.
    pub since: String,
    /// The lock generation it holds.
    pub generation: u64,
    /// The role that took it: `coordinator` or `setup`.
    pub role: String,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} pid {} on {} since {} (generation {})",
            self.role, self.pid, self.host, self.since, self.generation
        )
    }
}

/// Whether a problem's coordinator lock is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockStatus {
    /// Nobody holds it.
    Free,
    /// Someone holds it; the holder record says who, if it could be read.
    Held(Option<LockHolder>),
}

/// How long to wait for the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Fail at once with [`Error::LockHeld`] if it is held.
    Try,
    /// Poll until this much time has passed, then fail with [`Error::LockTimeout`].
    Timeout(Duration),
}

/// A held coordinator lock. Dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct CoordinatorLock {
    file: File,
    path: PathBuf,
    holder_path: PathBuf,
    holder: LockHolder,
}

impl CoordinatorLock {
    /// Takes the lock of the problem at `layout`, waiting as `wait` says, and writes
    /// a holder record with the next generation.
    pub(crate) fn acquire(
        layout: &ProblemLayout,
        role: &str,
        wait: LockWait,
        floor: u64,
    ) -> Result<Self, Error> {
        let path = layout.lock_path();
        let holder_path = layout.holder_path();
        let op = "take the coordinator lock".to_owned();
        let started = Instant::now();
        let mut pause = Duration::from_millis(20);
        let mut replaced = 0;

        let file = loop {
            let file = open_lock_file(&path).context(format!("{op}: open"), &path)?;

            if sys::try_lock(&file).context(format!("{op}: lock"), &path)? {
                // The lock is on an inode. If the path now names another one, this
                // lock protects nothing: take it again on what the path names.
                if same_inode(&file, &path).context(format!("{op}: stat"), &path)? {
                    break file;
                }
                replaced += 1;
                if replaced >= MAX_REPLACED {
                    let e = io::Error::other(
                        "the lock file keeps being replaced; something other than fedota-store changes it",
                    );
                    return Err(Error::io(op, path, e));
                }
                tracing::warn!(path = %path.display(), "lock file was replaced while locking; locking again");
                continue;
            }

            let holder = read_holder(&holder_path).map(Box::new);
            match wait {
                LockWait::Try => return Err(Error::LockHeld { op, path, holder }),
                LockWait::Timeout(limit) if started.elapsed() >= limit => {
                    return Err(Error::LockTimeout {
                        op,
                        path,
                        waited: started.elapsed(),
                        holder,
                    });
                }
                LockWait::Timeout(limit) => {
                    std::thread::sleep(pause.min(limit.saturating_sub(started.elapsed())));
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        };

        // The next generation: above the last holder's and above any commit's.
        let previous = read_holder(&holder_path).map_or(0, |h| h.generation);
        let holder = LockHolder {
            host: fsutil::hostname().to_owned(),
            pid: std::process::id(),
            since: fsutil::now_rfc3339(),
            generation: previous.max(floor) + 1,
            role: role.to_owned(),
        };
        write_holder(&holder_path, &holder, &op)?;

        tracing::info!(path = %path.display(), generation = holder.generation, waited_ms = started.elapsed().as_millis() as u64, "coordinator lock acquired");
        Ok(Self {
            file,
            path,
            holder_path,
            holder,
        })
    }

    /// The holder record this lock wrote.
    pub(crate) fn holder(&self) -> &LockHolder {
        &self.holder
    }

    /// Checks that this lock is still the newest: the lock file is still the one at
    /// its path, and no later generation has written a holder record.
    pub(crate) fn check_current(&self, op: &str) -> Result<(), Error> {
        if !same_inode(&self.file, &self.path)
            .context(format!("{op}: stat lock file"), &self.path)?
        {
            return Err(Error::Fenced {
                op: op.to_owned(),
                path: self.path.clone(),
                ours: self.holder.generation,
                current: read_holder(&self.holder_path).map_or(0, |h| h.generation),
            });
        }

        match read_holder(&self.holder_path) {
            Some(h) if h.generation != self.holder.generation => Err(Error::Fenced {
                op: op.to_owned(),
                path: self.holder_path.clone(),
                ours: self.holder.generation,
                current: h.generation,
            }),
            _ => Ok(()),
        }
    }
}

impl Drop for CoordinatorLock {
    fn drop(&mut self) {
        // Closing the descriptor releases the lock too; unlocking first makes the
        // release explicit and lets its failure be logged.
        match sys::unlock(&self.file) {
            Ok(()) => {
                tracing::info!(path = %self.path.display(), generation = self.holder.generation, "coordinator lock released")
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "unlock failed; closing the lock file releases it")
            }
        }
    }
}

/// Whether the lock of the problem at `layout` is held, without taking it.
///
/// # Errors
///
/// [`Error::Io`] if the lock file exists but cannot be opened or queried.
pub(crate) fn status(layout: &ProblemLayout) -> Result<LockStatus, Error> {
    let path = layout.lock_path();
    let op = "check the coordinator lock";

    // Querying needs no write access on Linux; std's lock elsewhere may.
    let write = cfg!(not(target_os = "linux"));
    let file = match OpenOptions::new().read(true).write(write).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LockStatus::Free),
        Err(e) => return Err(Error::io(format!("{op}: open"), &path, e)),
    };

    if sys::is_locked(&file).context(format!("{op}: query"), &path)? {
        Ok(LockStatus::Held(read_holder(&layout.holder_path())))
    } else {
        Ok(LockStatus::Free)
    }
}

/// Reads the holder record, if there is a readable one.
pub(crate) fn read_holder(path: &Path) -> Option<LockHolder> {
    let bytes = fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write_holder(path: &Path, holder: &LockHolder, op: &str) -> Result<(), Error> {
    let mut bytes = serde_json::to_vec_pretty(holder).expect("a holder record always serializes");
    bytes.push(b'\n');

    fsutil::write_small_atomic(path, &bytes, &format!("{op}: write holder record"))
}

/// Opens the lock file for writing (an exclusive lock needs it), creating it if it
/// is missing. Never truncates it.
fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

#[cfg(unix)]
fn same_inode(file: &File, path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;

    let held = file.metadata()?;
    match fs::metadata(path) {
        Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(not(unix))]
fn same_inode(_file: &File, path: &Path) -> io::Result<bool> {
    Ok(path.exists())
}

#[cfg(target_os = "linux")]
pub(crate) mod sys {
    //! Open-file-description locks through `fcntl`.

    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;

    /// A whole-file lock request of type `kind`.
    fn whole_file(kind: libc::c_int) -> libc::flock {
        // SAFETY: `flock` is a plain C struct; all-zero is a valid value of it, and
        // OFD locks require `l_pid` to be zero.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = kind as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_start = 0;
        fl.l_len = 0;
        fl
    }

    fn fcntl(file: &File, cmd: libc::c_int, fl: &mut libc::flock) -> io::Result<()> {
        loop {
            // SAFETY: the descriptor is open for the life of `file`, and `fl` is a
            // valid, exclusively borrowed `flock`.
            let rc = unsafe { libc::fcntl(file.as_raw_fd(), cmd, fl as *mut libc::flock) };
            if rc != -1 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Takes an exclusive OFD lock without waiting. `Ok(false)` if it is held.
    pub(crate) fn try_lock(file: &File) -> io::Result<bool> {
        match fcntl(file, libc::F_OFD_SETLK, &mut whole_file(libc::F_WRLCK)) {
            Ok(()) => Ok(true),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Releases this description's lock.
    pub(crate) fn unlock(file: &File) -> io::Result<()> {
        fcntl(file, libc::F_OFD_SETLK, &mut whole_file(libc::F_UNLCK))
    }

    /// Whether another description holds a conflicting lock, without taking one.
    pub(crate) fn is_locked(file: &File) -> io::Result<bool> {
        let mut fl = whole_file(libc::F_WRLCK);
        fcntl(file, libc::F_OFD_GETLK, &mut fl)?;
        Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) mod sys {
    //! std's file locks.

    use std::fs::{File, TryLockError};
    use std::io;

    pub(crate) fn try_lock(file: &File) -> io::Result<bool> {
        match file.try_lock() {
            Ok(()) => Ok(true),
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    pub(crate) fn unlock(file: &File) -> io::Result<()> {
        file.unlock()
    }

    pub(crate) fn is_locked(file: &File) -> io::Result<bool> {
        let free = try_lock(file)?;
        if free {
            unlock(file)?;
        }
        Ok(!free)
    }
}
