//! Fencing: a coordinator whose lock generation is no longer the newest cannot
//! commit, and a refused writer is handed back with its data staged.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;

use common::{Tree, read_bytes};
use fedota_store::{Error, LockWait};

/// Rewrites the JSON file at `path` with `field` set to `value`.
fn set_json_field(path: &Path, field: &str, value: serde_json::Value) {
    let mut json: serde_json::Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
    json[field] = value;
    fs::write(path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
}

fn assert_fenced(err: &Error, ours: u64, current: u64, path: &Path) {
    match err {
        Error::Fenced {
            ours: o,
            current: c,
            path: p,
            ..
        } => {
            assert_eq!((*o, *c), (ours, current));
            assert_eq!(p, path);
        }
        other => panic!("expected Fenced, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("fenced") && msg.contains(&path.display().to_string()),
        "{msg}"
    );
}

#[test]
fn a_commit_is_fenced_when_the_holder_record_shows_a_newer_generation() {
    let tree = Tree::new();
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    let ours = coordinator.generation();

    // A successor's holder record, written as a successor on another node would.
    let holder_path = tree.init_dir().join(".fedota-coordinator.holder");
    set_json_field(&holder_path, "generation", (ours + 5).into());
    set_json_field(&holder_path, "pid", 1.into());

    let err = coordinator
        .commit_global_checkpoint(1, &mut &b"from a stale coordinator"[..])
        .unwrap_err();

    assert_fenced(&err, ours, ours + 5, &holder_path);
    let read = coordinator.read_global_checkpoint(read_bytes).unwrap();
    assert_eq!(read.value, common::GLOBAL_0);
    assert!(common::temporaries_in(&tree.init_dir()).is_empty());
}

#[test]
fn a_commit_is_fenced_when_the_stored_checkpoint_carries_a_newer_generation() {
    let tree = Tree::new();
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    let ours = coordinator.generation();

    let record_path = tree.init_dir().join(".fedota-commit.fl_checkpoint");
    set_json_field(&record_path, "generation", (ours + 3).into());

    let err = coordinator
        .commit_global_checkpoint(1, &mut &b"from a stale coordinator"[..])
        .unwrap_err();

    assert_fenced(&err, ours, ours + 3, &record_path);
    let on_disk = fs::read(tree.init_dir().join("fl_checkpoint")).unwrap();
    assert_eq!(on_disk, common::GLOBAL_0);
}

#[test]
fn a_coordinator_that_lost_its_lock_file_is_fenced_and_its_successor_commits() {
    let tree = Tree::new();
    let first = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    first
        .commit_global_checkpoint(1, &mut &b"round 1 by the first"[..])
        .unwrap();

    // Something replaces the lock file behind the first coordinator's back: its lock
    // now sits on an orphaned inode, and a second coordinator can lock the new one.
    let lock_path = tree.init_dir().join(".fedota-coordinator.lock");
    let replacement = tree.init_dir().join("lock.replacement");
    fs::write(&replacement, b"").unwrap();
    fs::rename(&replacement, &lock_path).unwrap();
    let second = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    assert!(second.generation() > first.generation());

    // The first is refused; the second commits.
    let err = first
        .commit_global_checkpoint(2, &mut &b"round 2 by the first"[..])
        .unwrap_err();
    assert!(
        matches!(err, Error::Fenced { ours, current, .. } if ours == first.generation() && current == second.generation()),
        "{err:?}"
    );
    second
        .commit_global_checkpoint(2, &mut &b"round 2 by the second"[..])
        .unwrap();

    // Even after the second lets go, the first stays fenced.
    drop(second);
    let err = first
        .commit_global_checkpoint(3, &mut &b"round 3 by the first"[..])
        .unwrap_err();
    assert!(matches!(err, Error::Fenced { .. }), "{err:?}");
    let read = first.read_global_checkpoint(read_bytes).unwrap();
    assert_eq!(read.value, b"round 2 by the second");
}

#[test]
fn a_fenced_writer_is_handed_back_and_commits_once_the_fence_goes_away() {
    let tree = Tree::new();
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    let ours = coordinator.generation();
    let holder_path = tree.init_dir().join(".fedota-coordinator.holder");
    let our_holder = fs::read(&holder_path).unwrap();

    let mut writer = coordinator.global_checkpoint_writer(1).unwrap();
    writer.write_all(b"streamed once").unwrap();

    // A newer generation shows up just before the commit...
    set_json_field(&holder_path, "generation", (ours + 1).into());
    let failed = writer.commit().unwrap_err();
    assert!(matches!(failed.error(), Error::Fenced { .. }), "{failed:?}");
    assert_eq!(failed.to_string(), failed.error().to_string());
    let writer = failed
        .into_writer()
        .expect("a fenced writer is handed back");
    assert_eq!(writer.round(), 1);
    assert_eq!(writer.bytes_written(), 13);
    assert!(writer.temp_path().exists(), "its data stays staged");
    assert_eq!(
        coordinator
            .read_global_checkpoint(read_bytes)
            .unwrap()
            .value,
        common::GLOBAL_0
    );

    // ...and goes away again: the same writer commits without streaming again.
    fs::write(&holder_path, &our_holder).unwrap();
    let committed = writer.commit().unwrap();

    assert_eq!((committed.round, committed.generation), (1, Some(ours)));
    let read = coordinator.read_global_checkpoint(read_bytes).unwrap();
    assert_eq!(read.value, b"streamed once");
    assert!(common::temporaries_in(&tree.init_dir()).is_empty());
}

#[test]
fn a_writer_overtaken_by_its_round_is_handed_back_but_can_never_commit_that_round() {
    let tree = Tree::new();
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();

    let mut late = coordinator.global_checkpoint_writer(2).unwrap();
    late.write_all(b"late round 2").unwrap();
    coordinator
        .commit_global_checkpoint(2, &mut &b"first round 2"[..])
        .unwrap();

    let failed = late.commit().unwrap_err();
    assert!(
        matches!(
            failed.error(),
            Error::RoundNotAdvanced {
                stored: 2,
                requested: 2,
                ..
            }
        ),
        "{failed:?}"
    );
    let late = failed.into_writer().expect("handed back");
    let temp = late.temp_path().to_owned();
    assert_eq!(late.round(), 2);

    // Its round is fixed, so retrying cannot succeed; dropping it cleans up.
    let failed = late.commit().unwrap_err();
    assert!(matches!(failed.error(), Error::RoundNotAdvanced { .. }));
    let error: Error = failed.into();
    assert!(matches!(error, Error::RoundNotAdvanced { .. }));
    assert!(
        !temp.exists(),
        "dropping the handed-back writer removes its temporary"
    );
    assert_eq!(
        coordinator
            .read_global_checkpoint(read_bytes)
            .unwrap()
            .value,
        b"first round 2"
    );
}
