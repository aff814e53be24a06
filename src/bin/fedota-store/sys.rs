//! The platform calls `doctor` needs: the host name, and the same kind of lock the
//! coordinator takes.
//!
//! On Linux that is an open-file-description lock (`fcntl(F_OFD_SETLK)`, `F_WRLCK`,
//! whole file), as in the library's `lock` module; elsewhere std's `File::try_lock`.
//! Two open file descriptions conflict under both, even within one process, which is
//! what lets a single process probe them.

use std::fs::File;
use std::io;

/// The kind of lock probed, for reports.
#[cfg(target_os = "linux")]
pub const LOCK_KIND: &str = "OFD lock (fcntl F_OFD_SETLK)";
/// The kind of lock probed, for reports.
#[cfg(not(target_os = "linux"))]
pub const LOCK_KIND: &str = "lock (std File::try_lock)";

/// This machine's host name, or `unknown-host`.
pub fn hostname() -> String {
    read_hostname()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned())
}

#[cfg(unix)]
fn read_hostname() -> Option<String> {
    let mut buf = [0u8; 256];

    // SAFETY: the buffer is valid for its whole length, and gethostname writes at
    // most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..len]).into_owned())
}

#[cfg(not(unix))]
fn read_hostname() -> Option<String> {
    std::env::var("COMPUTERNAME").ok()
}

/// Takes an exclusive lock on `file` without waiting: `Ok(true)` if taken,
/// `Ok(false)` if another open file description holds one.
pub fn try_lock(file: &File) -> io::Result<bool> {
    imp::try_lock(file)
}

/// Releases this open file description's lock.
pub fn unlock(file: &File) -> io::Result<()> {
    imp::unlock(file)
}

#[cfg(target_os = "linux")]
mod imp {
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;

    fn whole_file(kind: libc::c_int) -> libc::flock {
        // SAFETY: flock is plain data; all-zero is a valid value, and the fields
        // that matter are set below. l_pid must be 0 for OFD locks.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = kind as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl
    }

    fn set(file: &File, kind: libc::c_int) -> io::Result<()> {
        let mut fl = whole_file(kind);
        loop {
            // SAFETY: the descriptor is open for the life of `file`, and `fl` is a
            // valid flock for F_OFD_SETLK.
            let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) };
            if rc == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    pub(super) fn try_lock(file: &File) -> io::Result<bool> {
        match set(file, libc::F_WRLCK) {
            Ok(()) => Ok(true),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(super) fn unlock(file: &File) -> io::Result<()> {
        set(file, libc::F_UNLCK)
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::fs::{File, TryLockError};
    use std::io;

    pub(super) fn try_lock(file: &File) -> io::Result<bool> {
        match file.try_lock() {
            Ok(()) => Ok(true),
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    pub(super) fn unlock(file: &File) -> io::Result<()> {
        file.unlock()
    }
}
