//! Commits: what lands on disk, what the record says, and what an unfinished or
//! refused commit leaves behind.

mod common;

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::{Generated, MODEL, Tree, read_bytes, selector_id};
use fedota_store::layout::LAYOUT_VERSION;
use fedota_store::{ArtifactKind, Error, LockWait};

#[test]
fn a_committed_checkpoint_reads_back_verified_with_a_complete_record() {
    let tree = Tree::new();
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    let data = common::content_for_round(0, 1);

    let committed = coordinator
        .commit_global_checkpoint(1, &mut &data[..])
        .unwrap();

    // The record describes exactly these bytes, computed independently here.
    assert_eq!(committed.round, 1);
    assert_eq!(committed.size, data.len() as u64);
    assert_eq!(committed.crc32c, crc32c::crc32c(&data));
    assert_eq!(committed.artifact, "fl_checkpoint");
    assert_eq!(committed.layout, LAYOUT_VERSION);
    assert_eq!(committed.weight, None);
    assert_eq!(committed.generation, Some(coordinator.generation()));
    assert_eq!(committed.writer.role, "coordinator");
    assert_eq!(committed.writer.pid, std::process::id());
    assert_eq!(committed.writer.host, coordinator.holder().host);
    assert!(
        committed.committed_at.ends_with('Z'),
        "{}",
        committed.committed_at
    );

    // On disk: the bytes untouched, the record beside them, nothing else new.
    let init = tree.init_dir();
    assert_eq!(fs::read(init.join("fl_checkpoint")).unwrap(), data);
    let on_disk: serde_json::Value =
        serde_json::from_slice(&fs::read(init.join(".fedota-commit.fl_checkpoint")).unwrap())
            .unwrap();
    assert_eq!(on_disk["round"], 1);
    assert_eq!(on_disk["size"], data.len() as u64);
    assert_eq!(on_disk["crc32c"], crc32c::crc32c(&data));
    assert!(common::temporaries_in(&init).is_empty());

    // Read back through another role's handle.
    let selector = tree.store.selector(&tree.id, &selector_id("s1")).unwrap();
    let read = selector.read_global_checkpoint(read_bytes).unwrap();
    assert!(read.is_verified());
    assert_eq!(read.value, data);
    assert_eq!(read.record.as_ref(), Some(&committed));
    assert_eq!(coordinator.global_round().unwrap(), 1);
}

#[test]
fn an_aggregate_and_its_weight_are_committed_together() {
    let tree = Tree::new();
    let selector = tree.store.selector(&tree.id, &selector_id("s1")).unwrap();

    let committed = selector
        .commit_aggregate(0, 600, &mut &b"aggregate bytes"[..])
        .unwrap();
    assert_eq!(committed.weight, Some(600));
    assert_eq!(committed.writer.role, "selector:s1");
    assert_eq!(committed.generation, None);

    let dir = tree.selector_dir("s1");
    assert_eq!(
        fs::read(dir.join("fl_agg_checkpoint")).unwrap(),
        b"aggregate bytes"
    );
    assert_eq!(
        fs::read(dir.join("fl_agg_checkpoint_weight")).unwrap(),
        b"600"
    );

    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    let read = coordinator
        .read_aggregate(selector.id(), 0, read_bytes)
        .unwrap();
    assert_eq!(read.value, b"aggregate bytes");
    assert_eq!(read.weight, Some(600));
    assert_eq!(read.round(), Some(0));
}

#[test]
fn client_updates_land_in_round_files_with_their_weights() {
    let tree = Tree::new();
    let selector = tree.store.selector(&tree.id, &selector_id("s1")).unwrap();

    selector
        .commit_client_update(3, 7, 25, &mut &b"client seven"[..])
        .unwrap();
    selector
        .commit_client_update(3, 12, 40, &mut &b"client twelve"[..])
        .unwrap();

    let round_dir = tree.selector_dir("s1").join("roundFiles");
    assert_eq!(
        fs::read(round_dir.join("checkpoint_7")).unwrap(),
        b"client seven"
    );
    assert_eq!(
        fs::read(round_dir.join("checkpoint_weight_7")).unwrap(),
        b"25"
    );
    assert_eq!(
        fs::read(round_dir.join("checkpoint_weight_12")).unwrap(),
        b"40"
    );
    assert_eq!(selector.clients().unwrap(), vec![7, 12]);

    let read = selector.read_client_update(3, 12, read_bytes).unwrap();
    assert_eq!(read.value, b"client twelve");
    assert_eq!(read.weight, Some(40));
}

#[test]
fn a_writer_dropped_without_commit_removes_its_temporary_and_keeps_the_old_version() {
    let tree = Tree::new();
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    let init = tree.init_dir();

    let mut writer = coordinator.global_checkpoint_writer(1).unwrap();
    writer.write_all(b"half of a new checkpoint").unwrap();
    writer.flush().unwrap();
    let temp = writer.temp_path().to_owned();
    assert!(temp.exists(), "the temporary file exists while writing");
    assert_eq!(
        temp.parent(),
        Some(init.as_path()),
        "it is beside the target"
    );
    assert!(
        temp.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(".fedota-tmp.fl_checkpoint."),
        "{}",
        temp.display()
    );

    drop(writer);

    assert!(
        !temp.exists(),
        "dropping the writer removes its temporary file"
    );
    assert!(common::temporaries_in(&init).is_empty());
    let read = coordinator.read_global_checkpoint(read_bytes).unwrap();
    assert_eq!(read.value, common::GLOBAL_0);
    assert_eq!(read.round(), Some(0));
}

#[test]
fn a_selector_writer_dropped_without_commit_keeps_the_old_aggregate_and_weight() {
    let tree = Tree::new();
    let selector = tree.store.selector(&tree.id, &selector_id("s1")).unwrap();
    selector
        .commit_aggregate(0, 10, &mut &b"round 0"[..])
        .unwrap();

    let mut writer = selector.aggregate_writer(1, 20).unwrap();
    writer.write_all(b"round 1, unfinished").unwrap();
    drop(writer);

    let dir = tree.selector_dir("s1");
    assert!(common::temporaries_in(&dir).is_empty());
    let read = selector.read_aggregate(0, read_bytes).unwrap();
    assert_eq!(
        (read.value.as_slice(), read.weight),
        (&b"round 0"[..], Some(10))
    );
}

#[test]
fn a_64_mib_checkpoint_streams_through_commit_and_read() {
    const LEN: u64 = 64 << 20;
    const SEED: u64 = 0x5eed;
    let tree = Tree::new();
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();

    // The data is generated while it is read, never held whole.
    let committed = coordinator
        .commit_global_checkpoint(1, &mut Generated::new(SEED, LEN))
        .unwrap();
    let expected_crc = Generated::crc32c(SEED, LEN);
    assert_eq!(committed.size, LEN);
    assert_eq!(committed.crc32c, expected_crc);

    // Read it in small pieces, comparing with a second generator as it streams.
    let read = coordinator
        .read_global_checkpoint(|r| {
            let mut expected = Generated::new(SEED, LEN);
            let mut got = vec![0u8; 1 << 16];
            let mut want = vec![0u8; 1 << 16];
            let mut total = 0u64;
            loop {
                let n = r.read(&mut got)?;
                if n == 0 {
                    return Ok(total);
                }
                expected.read_exact(&mut want[..n])?;
                if got[..n] != want[..n] {
                    return Err(io::Error::other(format!(
                        "bytes differ near offset {total}"
                    )));
                }
                total += n as u64;
            }
        })
        .unwrap();
    assert_eq!(read.value, LEN);
    assert!(read.is_verified());
    assert_eq!(
        fs::metadata(tree.init_dir().join("fl_checkpoint"))
            .unwrap()
            .len(),
        LEN
    );
}

#[test]
fn a_reader_that_stops_early_still_gets_the_whole_file_verified() {
    let tree = Tree::new();
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    let data = common::content_for_round(0, 5);
    coordinator
        .commit_global_checkpoint(1, &mut &data[..])
        .unwrap();

    // Corrupt a byte near the end, beyond what the closure reads.
    let path = tree.init_dir().join("fl_checkpoint");
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&path, &bytes).unwrap();

    let quick = fedota_store::Store::open(tree.root())
        .unwrap()
        .with_retry_policy(common::quick_retry());
    let err = quick
        .problem(&tree.id)
        .unwrap()
        .read_global_checkpoint(|r| {
            let mut head = [0u8; 16];
            r.read_exact(&mut head).map(|_| head)
        })
        .unwrap_err();
    assert!(
        matches!(&err, Error::Inconsistent { last, .. } if matches!(**last, Error::ChecksumMismatch { .. })),
        "{err:?}"
    );
}

#[test]
fn committed_files_are_readable_by_other_users_like_the_old_services_files() {
    let tree = Tree::new();
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    coordinator
        .commit_global_checkpoint(1, &mut &b"round 1"[..])
        .unwrap();
    let selector = tree.store.selector(&tree.id, &selector_id("s1")).unwrap();
    selector.commit_aggregate(1, 5, &mut &b"agg"[..]).unwrap();

    // The Go services create files with the usual 0666 & ~umask. Coordinator and
    // selectors may run as different users on a shared tree, so every file the crate
    // publishes must be readable by others whenever the umask allows it.
    let umask_allows_others_read = current_umask() & 0o004 == 0;
    if !umask_allows_others_read {
        eprintln!(
            "skipped: the umask {:03o} forbids reading by others",
            current_umask()
        );
        return;
    }
    for path in [
        tree.init_dir().join("fl_checkpoint"),
        tree.init_dir().join("model.h5"),
        tree.init_dir().join(".fedota-commit.fl_checkpoint"),
        tree.selector_dir("s1").join("fl_agg_checkpoint"),
        tree.selector_dir("s1").join("fl_agg_checkpoint_weight"),
        tree.selector_dir("s1")
            .join(".fedota-commit.fl_agg_checkpoint"),
    ] {
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o044, 0o044, "{} has mode {mode:o}", path.display());
    }
}

#[test]
fn a_commit_replaces_the_inode_but_never_the_lock_file() {
    let tree = Tree::new();
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    let init = tree.init_dir();
    let ino = |name: &str| fs::metadata(init.join(name)).unwrap().ino();

    let lock_before = ino(".fedota-coordinator.lock");
    let data_before = ino("fl_checkpoint");
    coordinator
        .commit_global_checkpoint(1, &mut &b"round 1"[..])
        .unwrap();
    coordinator
        .commit_global_checkpoint(2, &mut &b"round 2"[..])
        .unwrap();

    assert_ne!(
        ino("fl_checkpoint"),
        data_before,
        "a commit renames a new file in"
    );
    assert_eq!(ino(".fedota-coordinator.lock"), lock_before);
}

#[test]
fn a_commit_streams_from_any_reader_and_reports_its_read_error_with_the_path() {
    struct Failing(u32);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "peer went away",
                ));
            }
            self.0 -= 1;
            buf[0] = b'x';
            Ok(1)
        }
    }

    let tree = Tree::new();
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();

    let err = coordinator
        .commit_global_checkpoint(1, &mut Failing(100))
        .unwrap_err();
    assert_eq!(
        err.io_kind(),
        Some(io::ErrorKind::ConnectionReset),
        "{err:?}"
    );
    common::assert_names_path_and_op(&err, &tree.init_dir(), &["commit fl_checkpoint", "round 1"]);

    // Nothing was published and nothing is left over.
    assert!(common::temporaries_in(&tree.init_dir()).is_empty());
    assert_eq!(coordinator.global_round().unwrap(), 0);
    let read = coordinator.read_global_checkpoint(read_bytes).unwrap();
    assert_eq!(read.value, common::GLOBAL_0);
}

#[test]
fn the_model_written_at_setup_reads_back_verified_for_every_role() {
    let tree = Tree::new();
    let selector = tree.store.selector(&tree.id, &selector_id("s1")).unwrap();
    let read = selector.read_model(read_bytes).unwrap();
    assert_eq!(read.value, MODEL);
    assert_eq!(read.round(), Some(0));

    let problem = tree.store.problem(&tree.id).unwrap();
    assert_eq!(problem.layout_version().unwrap(), Some(LAYOUT_VERSION));
    let verified = problem
        .verify(&problem.artifact(ArtifactKind::Model))
        .unwrap();
    assert_eq!(verified.value, MODEL.len() as u64);
}

/// The process's umask, from /proc (setting it to read it would race other tests).
fn current_umask() -> u32 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .expect("Linux reports the umask in /proc/self/status");
    u32::from_str_radix(line.trim(), 8).unwrap()
}
