//! lockprobe: take or test one raw file lock, for the NFS lab.
//!
//! The lab uses this tool to measure what the kernel does, independently of
//! fedota-store: which lock primitive, taken where, excludes which other one.
//! It is built by `lab/run` with plain `rustc` (no dependencies) and runs
//! inside the lab VMs.
//!
//! ```text
//! lockprobe try  KIND PATH...             for each PATH in turn: open, try the lock
//!                                         without waiting, print "acquired PATH" or
//!                                         "blocked PATH", close; exit 0 if all were
//!                                         acquired, else 1
//! lockprobe hold KIND SECS READY PATH...  lock every PATH without waiting, then
//!                                         create READY and keep the locks SECS
//!                                         seconds (or until killed); exit 1 if a
//!                                         lock was busy
//! lockprobe wait KIND SECS PATH           retry `try` until acquired; exit 1 after SECS
//! ```
//!
//! KIND is `ofd` (fcntl F_OFD_SETLK, whole file), `posix` (classic fcntl
//! F_SETLK, whole file) or `flock` (flock(2) LOCK_EX, through std's
//! `File::try_lock`). Exit code 2 means a usage or I/O error. A file is opened
//! read-write, without O_CREAT if it exists (an NFSv4 OPEN that creates never
//! gets a delegation, and the lab wants to see delegations), else created.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::thread::sleep;
use std::time::{Duration, Instant};

const F_SETLK: i32 = 6;
const F_OFD_SETLK: i32 = 37;
const F_WRLCK: i16 = 1;

/// `struct flock` as laid out by glibc on x86_64.
#[repr(C)]
struct Flock {
    l_type: i16,
    l_whence: i16,
    l_start: i64,
    l_len: i64,
    l_pid: i32,
}

unsafe extern "C" {
    fn fcntl(fd: i32, cmd: i32, ...) -> i32;
}

/// The lock primitives this probe can take.
#[derive(Clone, Copy)]
enum Kind {
    Ofd,
    Posix,
    Flock,
}

/// What one lock attempt gave.
enum Attempt {
    Acquired,
    Blocked,
}

/// Parses a KIND argument.
fn parse_kind(s: &str) -> Result<Kind, String> {
    match s {
        "ofd" => Ok(Kind::Ofd),
        "posix" => Ok(Kind::Posix),
        "flock" => Ok(Kind::Flock),
        other => Err(format!(
            "unknown lock kind {other:?} (want ofd, posix or flock)"
        )),
    }
}

/// Opens PATH read-write, as every lock kind here needs write access; creates
/// it only if it does not exist.
fn open(path: &str) -> Result<File, String> {
    let existing = OpenOptions::new().read(true).write(true).open(path);
    match existing {
        Err(e) if e.kind() == io::ErrorKind::NotFound => OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path),
        other => other,
    }
    .map_err(|e| format!("open {path}: {e}"))
}

/// Tries to take an exclusive whole-file lock of KIND on FILE, without waiting.
///
/// The lock stays held for as long as FILE (and for `posix`, the process) lives.
fn try_lock(file: &File, kind: Kind, path: &str) -> Result<Attempt, String> {
    let busy = |e: &io::Error| {
        matches!(e.raw_os_error(), Some(code) if code == 11 || code == 13) // EAGAIN, EACCES
    };
    match kind {
        Kind::Flock => match file.try_lock() {
            Ok(()) => Ok(Attempt::Acquired),
            Err(std::fs::TryLockError::WouldBlock) => Ok(Attempt::Blocked),
            Err(std::fs::TryLockError::Error(e)) => Err(format!("flock {path}: {e}")),
        },
        Kind::Ofd | Kind::Posix => {
            let cmd = if matches!(kind, Kind::Ofd) {
                F_OFD_SETLK
            } else {
                F_SETLK
            };
            let lock = Flock {
                l_type: F_WRLCK,
                l_whence: 0,
                l_start: 0,
                l_len: 0,
                l_pid: 0,
            };
            // SAFETY: the descriptor is open for the whole call and `lock` is a
            // valid `struct flock` that outlives it.
            let rc = unsafe { fcntl(file.as_raw_fd(), cmd, &lock as *const Flock) };
            if rc == 0 {
                return Ok(Attempt::Acquired);
            }
            let e = io::Error::last_os_error();
            if busy(&e) {
                Ok(Attempt::Blocked)
            } else {
                Err(format!("fcntl lock {path}: {e}"))
            }
        }
    }
}

/// Runs one subcommand and returns the process exit code.
fn run(args: &[String]) -> Result<u8, String> {
    let usage =
        "usage: lockprobe try KIND PATH... | hold KIND SECS READY PATH... | wait KIND SECS PATH";
    let (verb, kind, rest) = match args {
        [verb, kind, rest @ ..] if !rest.is_empty() => (verb.as_str(), parse_kind(kind)?, rest),
        _ => return Err(usage.to_string()),
    };
    let secs = |s: &String| -> Result<Duration, String> {
        s.parse()
            .map(Duration::from_secs)
            .map_err(|e| format!("bad SECS {s:?}: {e}"))
    };

    match (verb, rest) {
        ("try", paths) => {
            let mut all = true;
            for path in paths {
                let file = open(path)?;
                match try_lock(&file, kind, path)? {
                    Attempt::Acquired => println!("acquired {path}"),
                    Attempt::Blocked => {
                        println!("blocked {path}");
                        all = false;
                    }
                }
            }
            Ok(if all { 0 } else { 1 })
        }
        ("hold", [hold_for, ready, paths @ ..]) if !paths.is_empty() => {
            let hold_for = secs(hold_for)?;
            let mut held = Vec::new();
            for path in paths {
                let file = open(path)?;
                if let Attempt::Blocked = try_lock(&file, kind, path)? {
                    println!("blocked {path}");
                    return Ok(1);
                }
                held.push(file);
            }
            File::create(ready).map_err(|e| format!("create {ready}: {e}"))?;
            println!("held {} file(s), pid {}", held.len(), std::process::id());
            sleep(hold_for);
            drop(held);
            Ok(0)
        }
        ("wait", [limit, path]) => {
            let deadline = Instant::now() + secs(limit)?;
            loop {
                let file = open(path)?;
                if let Attempt::Acquired = try_lock(&file, kind, path)? {
                    println!("acquired {path}");
                    return Ok(0);
                }
                drop(file);
                if Instant::now() >= deadline {
                    println!("blocked {path} (gave up)");
                    return Ok(1);
                }
                sleep(Duration::from_millis(250));
            }
        }
        _ => Err(usage.to_string()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(msg) => {
            eprintln!("lockprobe: {msg}");
            ExitCode::from(2)
        }
    }
}
