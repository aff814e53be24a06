//! The live probes of `doctor`: do the filesystem calls the commit protocol and the
//! coordinator lock rest on behave here?
//!
//! They run in a scratch directory `<root>/.fedota-doctor.<host>.<pid>.<random>`,
//! which is removed afterwards. Each gives one finding:
//!
//! | check | what is done | fails when |
//! |---|---|---|
//! | `scratch-dir` | create the scratch directory | the root is not writable |
//! | `create-exclusive` | create a file with `O_EXCL`, then again | the second create succeeds |
//! | `write-fsync` | write 1 MiB, fsync, close, read back | any step fails or the bytes differ |
//! | `rename-over` | rename a new file over an existing one | the name does not show the new file |
//! | `fsync-directory` | fsync the directory | an error other than "unsupported" (which warns) |
//! | `lock-conflict` | lock through one open file description, try through a second | the second gets it, or locks are refused |
//! | `clock` | compare a new file's mtime with this host's clock | more than 2 s apart (warn), 5 min (fail) |
//!
//! The lock probe runs in one process on one node, where the kernel's own lock table
//! decides; it shows that locks work here, not that they reach other nodes. The mount
//! options and `doctor --peer` speak to that.
//!
//! Every finding that is not a pass says why it matters and what to do about it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use fedota_store::mount::{Finding, Severity};

use fedota_store::os;

/// The size of the write probe.
const WRITE_PROBE_BYTES: usize = 1 << 20;

/// A clock difference above this is worth a warning.
const CLOCK_WARN: Duration = Duration::from_secs(2);

/// Above this, `gc`'s default age (10 minutes) could take a live temporary file for
/// a leftover: fail.
const CLOCK_FAIL: Duration = Duration::from_secs(5 * 60);

/// A way to take the coordinator's kind of lock without waiting, as
/// [`os::try_lock`]: `Ok(true)` if taken, `Ok(false)` if another open file
/// description holds it. The lock probes take it as a parameter, so that tests can
/// check that they fail on a filesystem whose locks do not conflict.
pub type TryLock = fn(&File) -> io::Result<bool>;

/// Runs every probe in a new scratch directory under `root`, then removes it. The
/// lock probe locks with `try_lock` ([`os::try_lock`] outside tests).
pub fn run(root: &Path, try_lock: TryLock) -> Vec<Finding> {
    let scratch = root.join(format!(
        ".fedota-doctor.{}.{}.{}",
        os::hostname().to_owned(),
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));

    if let Err(e) = fs::create_dir(&scratch) {
        return vec![
            Finding::new(
                "scratch-dir",
                Severity::Fail,
                format!("cannot create {}: {e}", scratch.display()),
                "the probes need to create files under the root, as every commit does",
            )
            .with_fix("run doctor as the user the services run as, on a writable root"),
        ];
    }

    let mut findings = vec![
        create_exclusive(&scratch),
        write_fsync(&scratch),
        rename_over(&scratch),
        fsync_directory(&scratch),
        lock_conflict(&scratch, try_lock),
        clock(&scratch),
    ];

    if let Err(e) = fs::remove_dir_all(&scratch) {
        findings.push(
            Finding::new(
                "scratch-dir",
                Severity::Warn,
                format!("could not remove {}: {e}", scratch.display()),
                "the probes' scratch directory was left behind",
            )
            .with_fix(format!("remove {} by hand", scratch.display())),
        );
    }
    findings
}

/// What to do when a probe's step fails with an I/O error: the error says which.
const STEP_FIX: &str = "run doctor as the user the services run as, on a root with free \
                        space; if the error persists, the filesystem or the NFS server \
                        refuses what every commit does: check the server's logs and the \
                        export";

/// A finding for a probe whose step failed with an I/O error.
fn step_failed(check: &str, step: &str, path: &Path, e: &io::Error, why: &str) -> Finding {
    Finding::new(
        check,
        Severity::Fail,
        format!("{step} {}: {e}", path.display()),
        why.to_owned(),
    )
    .with_fix(STEP_FIX)
}

fn create_exclusive(dir: &Path) -> Finding {
    let check = "create-exclusive";
    let why = "every commit creates its temporary file with O_EXCL, so two writers never \
               share one";
    let path = dir.join("exclusive");
    let create = || OpenOptions::new().write(true).create_new(true).open(&path);

    if let Err(e) = create() {
        return step_failed(check, "create with O_EXCL", &path, &e, why);
    }
    match create() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Finding::new(
            check,
            Severity::Pass,
            "O_EXCL creates a new file and refuses an existing one",
            why,
        ),
        Err(e) => step_failed(check, "create again with O_EXCL", &path, &e, why),
        Ok(_) => Finding::new(
            check,
            Severity::Fail,
            format!("a second O_EXCL create of {} succeeded", path.display()),
            why,
        )
        .with_fix("use a filesystem with atomic O_EXCL (NFSv3 or later)"),
    }
}

fn write_fsync(dir: &Path) -> Finding {
    let check = "write-fsync";
    let why = "a commit is durable only if its data reaches stable storage before the rename";
    let path = dir.join("durable");
    let data: Vec<u8> = (0..WRITE_PROBE_BYTES).map(|i| (i % 251) as u8).collect();
    let started = Instant::now();

    // Write, fsync and close, checking each: on NFS, close reports write errors.
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut f| {
            f.write_all(&data)?;
            f.sync_all()?;
            os::close(f)
        });
    if let Err(e) = written {
        return step_failed(check, "write, fsync and close", &path, &e, why);
    }
    let elapsed = started.elapsed();

    let mut back = Vec::with_capacity(data.len());
    if let Err(e) = File::open(&path).and_then(|mut f| f.read_to_end(&mut back)) {
        return step_failed(check, "read back", &path, &e, why);
    }
    if back != data {
        return Finding::new(
            check,
            Severity::Fail,
            format!(
                "{} read back different bytes than were written",
                path.display()
            ),
            why,
        )
        .with_fix(
            "do not keep checkpoints here: check the disk or the NFS server for errors, and \
             that the export is not `async`",
        );
    }

    Finding::new(
        check,
        Severity::Pass,
        format!(
            "1 MiB written, fsynced, closed and read back in {} ms",
            elapsed.as_millis()
        ),
        why,
    )
}

fn rename_over(dir: &Path) -> Finding {
    let check = "rename-over";
    let why = "a commit publishes by renaming the new file over the old; readers must see \
               one or the other, never a mix";
    let target = dir.join("target");
    let new = dir.join("new");

    for (path, text) in [(&target, &b"old version"[..]), (&new, &b"new version"[..])] {
        if let Err(e) = fs::write(path, text) {
            return step_failed(check, "write", path, &e, why);
        }
    }
    if let Err(e) = fs::rename(&new, &target) {
        return step_failed(check, "rename over", &target, &e, why);
    }

    match fs::read(&target) {
        Ok(bytes) if bytes == b"new version" && !new.exists() => Finding::new(
            check,
            Severity::Pass,
            "rename over an existing file replaces it",
            why,
        ),
        Ok(_) => Finding::new(
            check,
            Severity::Fail,
            format!(
                "after the rename, {} does not hold the new file",
                target.display()
            ),
            why,
        )
        .with_fix(
            "use a filesystem whose rename replaces the target atomically (a local disk, or \
             NFS without `nocto`)",
        ),
        Err(e) => step_failed(check, "read after rename", &target, &e, why),
    }
}

fn fsync_directory(dir: &Path) -> Finding {
    let check = "fsync-directory";
    let why = "after a rename, fedota-store fsyncs the directory so the new name survives a \
               crash";

    match File::open(dir).and_then(|d| d.sync_all()) {
        Ok(()) => Finding::new(check, Severity::Pass, "fsync of a directory works", why),
        Err(e) if os::is_dir_sync_unsupported(&e) => Finding::new(
            check,
            Severity::Warn,
            format!("fsync of a directory is refused here: {e}"),
            "fedota-store then relies on the filesystem itself to make renames durable, as \
             an NFS server does before it replies; on a local filesystem that refuses it, \
             a crash can lose the last commit's name",
        )
        .with_fix(
            "nothing to do on NFS; on a local filesystem, keep the tree on one that supports \
             it (ext4, XFS, btrfs)",
        ),
        Err(e) => step_failed(check, "fsync directory", dir, &e, why),
    }
}

/// Locks a file through one open file description, then tries through a second:
/// `try_lock` must refuse the second while the first holds it, and grant it after.
fn lock_conflict(dir: &Path, try_lock: TryLock) -> Finding {
    let check = "lock-conflict";
    let why = "the coordinator lock must refuse a second holder; here the probe is one \
               process on one node";
    let path = dir.join("lock");
    let open = || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
    };

    let (first, second) = match (open(), open()) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return step_failed(check, "open", &path, &e, why),
    };

    let refused = |e: io::Error| {
        Finding::new(
            check,
            Severity::Fail,
            format!("{} of {} refused: {e}", os::LOCK_KIND, path.display()),
            "no coordinator can take its lock on this filesystem",
        )
        .with_fix(
            "on NFSv3, run rpc.statd on this client and the lock manager on the server; \
             or mount with vers=4.2",
        )
    };

    match try_lock(&first) {
        Ok(true) => {}
        Ok(false) => {
            return Finding::new(
                check,
                Severity::Fail,
                format!("a new file {} was already locked", path.display()),
                why,
            )
            .with_fix(format!(
                "find the process that locks files in {} (lslocks; on NFS, the server's lock \
                 list), and run doctor again",
                dir.display()
            ));
        }
        Err(e) => return refused(e),
    }

    // While the first holds it, the second must be refused; once released, not.
    let blocked = try_lock(&second);
    let _ = os::unlock(&first);
    let after = try_lock(&second);
    let _ = os::unlock(&second);

    match (blocked, after) {
        (Ok(false), Ok(true)) => Finding::new(
            check,
            Severity::Pass,
            format!(
                "an {} through a second open file description was refused while the first \
                 held it, and granted after release",
                os::LOCK_KIND
            ),
            why,
        ),
        (Ok(true), _) => Finding::new(
            check,
            Severity::Fail,
            format!(
                "two open file descriptions both got an {} on {}",
                os::LOCK_KIND,
                path.display()
            ),
            "two coordinators could both hold the lock and both write fl_checkpoint",
        )
        .with_fix("use a filesystem whose locks work (NFS without nolock, or a local disk)"),
        (Ok(false), Ok(false)) => Finding::new(
            check,
            Severity::Fail,
            format!(
                "the lock on {} was not granted after release",
                path.display()
            ),
            "a coordinator that stops would keep every successor out",
        )
        .with_fix(
            "use a filesystem whose locks are released on unlock (a local disk, or NFS with \
             locking); on NFSv3, check that the lock manager answers",
        ),
        (Err(e), _) | (_, Err(e)) => refused(e),
    }
}

fn clock(dir: &Path) -> Finding {
    let check = "clock";
    let why = "file times come from the file server's clock, and gc judges ages by this \
               host's";
    let path = dir.join("clock");

    let before = SystemTime::now();
    let created = File::create(&path).and_then(|f| f.metadata()?.modified());
    let after = SystemTime::now();
    let mtime = match created {
        Ok(m) => m,
        Err(e) => return step_failed(check, "create and stat", &path, &e, why),
    };

    // The server stamped the file somewhere between `before` and `after` by our clock.
    let midpoint = before + after.duration_since(before).unwrap_or_default() / 2;
    let (skew, server_is) = match mtime.duration_since(midpoint) {
        Ok(ahead) => (ahead, "ahead of"),
        Err(e) => (e.duration(), "behind"),
    };
    let summary = format!(
        "new files are stamped {} ms {server_is} this host's clock",
        skew.as_millis()
    );

    let severity = if skew > CLOCK_FAIL {
        Severity::Fail
    } else if skew > CLOCK_WARN {
        Severity::Warn
    } else {
        Severity::Pass
    };
    let finding = Finding::new(check, severity, summary, why);
    if severity == Severity::Pass {
        finding
    } else {
        finding.with_fix(
            "synchronise the clocks of every node and the file server (NTP or chrony); until \
             then give gc an --older-than well above the difference",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lock that every open file description gets, as with `nolock`.
    fn never_conflicts(_: &File) -> io::Result<bool> {
        Ok(true)
    }

    #[test]
    fn a_lock_that_never_conflicts_fails_the_probe() {
        let dir = tempfile::tempdir().unwrap();

        let finding = lock_conflict(dir.path(), never_conflicts);
        assert_eq!(finding.severity, Severity::Fail, "{finding:?}");
        assert!(finding.summary.contains("both got"), "{}", finding.summary);
        assert!(finding.fix.is_some());
    }

    #[test]
    fn the_coordinators_lock_passes_the_probe() {
        let dir = tempfile::tempdir().unwrap();

        let finding = lock_conflict(dir.path(), os::try_lock);
        assert_eq!(finding.severity, Severity::Pass, "{finding:?}");
    }

    #[test]
    fn every_probe_that_does_not_pass_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone");

        let findings = [
            create_exclusive(&missing),
            write_fsync(&missing),
            rename_over(&missing),
            fsync_directory(&missing),
            lock_conflict(&missing, os::try_lock),
            clock(&missing),
        ];
        for f in findings {
            assert_eq!(f.severity, Severity::Fail, "{f:?}");
            assert!(f.fix.is_some(), "{f:?}");
            assert!(f.summary.contains("gone"), "{f:?}");
        }
    }
}
