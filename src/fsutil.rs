//! Small filesystem steps shared by commits, locks and reads.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, IoContext};
use crate::layout::TEMP_PREFIX;

/// This machine's host name, read once. Falls back to `unknown-host`.
pub(crate) fn hostname() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        read_hostname()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown-host".to_owned())
    })
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

/// The host name reduced to characters that are safe in a file name, at most 64 of
/// them.
pub(crate) fn hostname_for_file_name() -> String {
    hostname()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

/// The prefix of a temporary file for data file `name`: it names the crate, the
/// target, the host and the process, so an operator can tell whose leftover it is.
pub(crate) fn temp_prefix(name: &str) -> String {
    format!(
        "{TEMP_PREFIX}{name}.{}.{}.",
        hostname_for_file_name(),
        std::process::id()
    )
}

/// Creates a temporary file in `dir` with a unique name (`O_EXCL`), for data file
/// `name`. It is removed when the returned value is dropped, unless persisted.
///
/// The file is created with mode 0666 less the umask, as `open(2)` would create the
/// data file itself, so services running as other users can read it as before.
/// (tempfile's default is 0600.)
pub(crate) fn create_temp(
    dir: &Path,
    name: &str,
    op: &str,
) -> Result<tempfile::NamedTempFile, Error> {
    let prefix = temp_prefix(name);
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).rand_bytes(12);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o666));
    }

    builder
        .tempfile_in(dir)
        .context(format!("{op}: create a temporary file in"), dir)
}

/// Flushes `file` to stable storage and closes it, reporting an error from either.
///
/// On NFS, `close` is where the client sends cached writes and learns of write
/// errors, so its result matters.
pub(crate) fn sync_and_close(file: File, op: &str, path: &Path) -> Result<(), Error> {
    file.sync_all().context(format!("{op}: fsync"), path)?;
    close(file).context(format!("{op}: close"), path)
}

#[cfg(unix)]
pub(crate) fn close(file: File) -> io::Result<()> {
    use std::os::fd::IntoRawFd;

    let fd = file.into_raw_fd();

    // SAFETY: `fd` was just taken out of the `File`, which no longer owns it, so it
    // is closed exactly once, here.
    if unsafe { libc::close(fd) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(unix))]
pub(crate) fn close(file: File) -> io::Result<()> {
    drop(file);
    Ok(())
}

/// Makes the entries of `dir` durable: fsync of the directory itself.
///
/// Some network and virtual filesystems refuse fsync on a directory with `EINVAL`
/// or `ENOTSUP`. NFS performs namespace operations such as rename synchronously on
/// the server before replying, so there is nothing left to flush; the refusal is
/// logged once and treated as success. Every other error is returned.
pub(crate) fn sync_dir(dir: &Path, op: &str) -> Result<(), Error> {
    static WARNED: AtomicBool = AtomicBool::new(false);

    let result = File::open(dir).and_then(|d| d.sync_all());
    match result {
        Ok(()) => Ok(()),
        Err(e) if dir_sync_unsupported(&e) => {
            if !WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!(dir = %dir.display(), error = %e, "this filesystem does not fsync directories; relying on its own rename durability");
            }
            Ok(())
        }
        Err(e) => Err(Error::io(format!("{op}: fsync directory"), dir, e)),
    }
}

/// Whether an error from fsync of a directory means "not supported here".
pub(crate) fn dir_sync_unsupported(e: &io::Error) -> bool {
    if e.kind() == io::ErrorKind::Unsupported || e.kind() == io::ErrorKind::InvalidInput {
        return true;
    }
    #[cfg(unix)]
    if let Some(code) = e.raw_os_error() {
        return code == libc::EINVAL || code == libc::ENOTSUP || code == libc::EOPNOTSUPP;
    }
    false
}

/// Writes a small file atomically: temporary file, write, fsync, close, rename over
/// `path`, fsync of the directory.
pub(crate) fn write_small_atomic(path: &Path, bytes: &[u8], op: &str) -> Result<(), Error> {
    let (dir, name) = split(path);

    let mut temp = create_temp(dir, name, op)?;
    temp.write_all(bytes)
        .context(format!("{op}: write"), temp.path())?;

    let (file, temp_path) = temp.into_parts();
    sync_and_close(file, op, &temp_path)?;

    rename(&temp_path, path, op)?;
    disarm(temp_path);

    sync_dir(dir, op)
}

/// Keeps a temporary path that has been renamed away from being removed on drop.
pub(crate) fn disarm(temp: tempfile::TempPath) {
    // The name no longer exists, so there is nothing to keep; this only stops the
    // drop from unlinking whatever may later take that name.
    let _ = temp.keep();
}

/// Renames `from` over `to`.
///
/// NFS can report a rename as failed after it succeeded (a retransmitted request
/// after a server restart; see the BUGS section of rename(2)). So on failure this
/// checks whether `to` now is the inode that `from` was, and if so, reports success.
pub(crate) fn rename(from: &Path, to: &Path, op: &str) -> Result<(), Error> {
    let before = fs::symlink_metadata(from).ok();

    let Err(e) = fs::rename(from, to) else {
        return Ok(());
    };

    if let Some(before) = before
        && same_file(&before, to)
        && !from.exists()
    {
        tracing::warn!(from = %from.display(), to = %to.display(), error = %e, "rename reported failure but had happened");
        return Ok(());
    }
    Err(Error::io(
        format!("{op}: rename {} over", from.display()),
        to,
        e,
    ))
}

#[cfg(unix)]
fn same_file(before: &fs::Metadata, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;

    fs::symlink_metadata(path)
        .is_ok_and(|now| now.dev() == before.dev() && now.ino() == before.ino())
}

#[cfg(not(unix))]
fn same_file(_before: &fs::Metadata, _path: &Path) -> bool {
    false
}

/// Splits a file path into its directory and its name.
pub(crate) fn split(path: &Path) -> (&Path, &str) {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    (dir, name)
}

/// Whether an I/O error is `ESTALE`: a file handle the server no longer knows,
/// because another client replaced or removed the file.
pub(crate) fn is_stale_handle(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StaleNetworkFileHandle
}

/// Creates `dir` and its parents, then makes the new entries durable.
pub(crate) fn create_dir_all_durable(dir: &Path, op: &str) -> Result<(), Error> {
    let mut missing: Vec<PathBuf> = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.exists() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }

    fs::create_dir_all(dir).context(format!("{op}: create directory"), dir)?;

    for created in missing.iter().rev() {
        if let Some(parent) = created.parent() {
            sync_dir(parent, op)?;
        }
    }
    Ok(())
}

/// The current time as RFC 3339 text in UTC, to the millisecond.
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
