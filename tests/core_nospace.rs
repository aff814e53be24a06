//! A commit into a full filesystem fails cleanly: the error says "no space" and
//! where, the previous version still reads back verified, and nothing is left over.
//!
//! The test mounts a 1 MiB tmpfs, so it needs root. Without root, or if the mount
//! fails, it says why on stderr and passes without checking anything.

mod common;

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Generated, read_bytes, selector_id};
use fedota_store::{CreateOptions, LockWait, ProblemId, Store};

/// A tmpfs mounted for the life of the value; unmounted on drop, even when the test
/// panics.
struct SmallTmpfs {
    dir: tempfile::TempDir,
}

impl SmallTmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it), or says why not.
    fn mount(size: &str) -> Result<Self, String> {
        if !common::is_root() {
            return Err("not running as root, so a tmpfs cannot be mounted".to_owned());
        }
        let dir = tempfile::tempdir().map_err(|e| format!("cannot make a mount point: {e}"))?;

        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let status = Command::new("umount").arg(self.dir.path()).status();
        if !matches!(status, Ok(s) if s.success()) {
            // Something still has a file open: detach it so the mount point goes.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

#[test]
fn a_commit_into_a_full_filesystem_fails_cleanly_and_keeps_the_previous_version() {
    let fs = match SmallTmpfs::mount("1m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("skipped a_commit_into_a_full_filesystem_fails_cleanly: {why}");
            return;
        }
    };
    let store = Store::open(fs.path()).unwrap();
    let id = ProblemId::new("p1").unwrap();
    store
        .create_problem(
            &id,
            &mut &b"model"[..],
            &mut &b"global 0"[..],
            CreateOptions::default(),
        )
        .unwrap();
    let init: PathBuf = fs.path().join("p1").join("initFiles");

    // A small checkpoint fits.
    let coordinator = store.coordinator(&id, LockWait::Try).unwrap();
    let small = common::content_for_round(0, 1);
    coordinator
        .commit_global_checkpoint(1, &mut &small[..])
        .unwrap();

    // One twice the size of the filesystem does not.
    let err = coordinator
        .commit_global_checkpoint(2, &mut Generated::new(7, 2 << 20))
        .unwrap_err();

    assert_eq!(
        err.io_kind(),
        Some(io::ErrorKind::StorageFull),
        "expected no space, got {err:?}"
    );
    let path = err.path().expect("the error names a path");
    assert!(
        path.starts_with(&init),
        "names {}, not a file in {}",
        path.display(),
        init.display()
    );
    common::assert_names_path_and_op(&err, path, &["commit fl_checkpoint for round 2"]);
    eprintln!("the error reads: {err}");

    // The previous version is intact and verified; no temporary file remains.
    assert!(common::temporaries_in(&init).is_empty());
    let read = coordinator.read_global_checkpoint(read_bytes).unwrap();
    assert_eq!(read.round(), Some(1));
    assert_eq!(read.value, small);
    assert_eq!(coordinator.global_round().unwrap(), 1);

    // The same for a selector's aggregate and its weight.
    let selector = store.selector(&id, &selector_id("s1")).unwrap();
    selector.commit_aggregate(1, 42, &mut &small[..]).unwrap();
    let err = selector
        .commit_aggregate(2, 43, &mut Generated::new(8, 2 << 20))
        .unwrap_err();
    assert_eq!(err.io_kind(), Some(io::ErrorKind::StorageFull), "{err:?}");
    let sel_dir = fs.path().join("p1").join("s1");
    assert!(common::temporaries_in(&sel_dir).is_empty());
    let read = selector.read_aggregate(1, read_bytes).unwrap();
    assert_eq!((read.value, read.weight), (small.clone(), Some(42)));

    // With the failed attempts gone, the space is back for the next round.
    coordinator
        .commit_global_checkpoint(2, &mut &b"round 2"[..])
        .unwrap();
}
