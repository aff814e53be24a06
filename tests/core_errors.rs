//! Bad input and refusals: each gives its own error, naming the operation and the
//! path, and the previously committed version stays intact. (No space left is in
//! `core_nospace.rs`, since it needs a mount.)

mod common;

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{ChildProc, Tree, quick_retry, read_bytes, selector_id};
use fedota_store::{ArtifactKind, CreateOptions, Error, LockWait, ProblemId, Store};

#[test]
fn corrupt_weight_text_is_bad_weight_at_once_and_a_new_commit_repairs_it() {
    let tree = Tree::with_retry(quick_retry());
    let selector = tree.store.selector(&tree.id, &selector_id("s1")).unwrap();
    selector
        .commit_aggregate(1, 600, &mut &b"aggregate"[..])
        .unwrap();
    let weight_path = tree.selector_dir("s1").join("fl_agg_checkpoint_weight");
    fs::write(&weight_path, b"6O0").unwrap();

    let err = selector.read_aggregate(1, read_bytes).unwrap_err();

    match &err {
        Error::BadWeight { text, path, .. } => {
            assert_eq!(text, "6O0");
            assert_eq!(path, &weight_path);
        }
        other => panic!("expected BadWeight, not retried, got {other:?}"),
    }
    common::assert_names_path_and_op(
        &err,
        &weight_path,
        &["read the aggregate of selector s1", "corrupt weight"],
    );

    // The data itself is untouched, and the next commit writes a good weight.
    let data = fs::read(tree.selector_dir("s1").join("fl_agg_checkpoint")).unwrap();
    assert_eq!(data, b"aggregate");
    selector
        .commit_aggregate(2, 601, &mut &b"aggregate 2"[..])
        .unwrap();
    assert_eq!(
        selector.read_aggregate(2, read_bytes).unwrap().weight,
        Some(601)
    );
}

#[test]
fn a_truncated_checkpoint_is_truncated_inside_inconsistent() {
    let tree = Tree::with_retry(quick_retry());
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    let data = common::content_for_round(0, 1);
    coordinator
        .commit_global_checkpoint(1, &mut &data[..])
        .unwrap();
    let path = tree.init_dir().join("fl_checkpoint");
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(100)
        .unwrap();

    let err = coordinator.read_global_checkpoint(read_bytes).unwrap_err();

    let Error::Inconsistent { last, attempts, .. } = &err else {
        panic!("expected Inconsistent, got {err:?}");
    };
    assert_eq!(*attempts, 3);
    match &**last {
        Error::Truncated {
            expected, actual, ..
        } => assert_eq!((*expected, *actual), (data.len() as u64, 100)),
        other => panic!("expected Truncated, got {other:?}"),
    }
    common::assert_names_path_and_op(
        &err,
        &path,
        &["read the global checkpoint", "truncated", "100 bytes"],
    );

    // The rest of the problem is unaffected, and the next commit replaces the file.
    assert_eq!(
        coordinator.read_model(read_bytes).unwrap().value,
        common::MODEL
    );
    coordinator
        .commit_global_checkpoint(2, &mut &b"round 2"[..])
        .unwrap();
    assert_eq!(
        coordinator
            .read_global_checkpoint(read_bytes)
            .unwrap()
            .value,
        b"round 2"
    );
}

#[test]
fn a_malformed_commit_record_is_bad_record_and_blocks_a_coordinator_commit() {
    let tree = Tree::with_retry(quick_retry());
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    let record_path = tree.init_dir().join(".fedota-commit.fl_checkpoint");
    fs::write(&record_path, b"{\"round\": 1, \"size\": ").unwrap();

    let mut calls = 0;
    let err = coordinator
        .read_global_checkpoint(|r| {
            calls += 1;
            read_bytes(r)
        })
        .unwrap_err();

    assert!(
        matches!(&err, Error::BadRecord { path, .. } if *path == record_path),
        "{err:?}"
    );
    assert_eq!(
        calls, 0,
        "no data is read under a record that does not parse"
    );
    common::assert_names_path_and_op(
        &err,
        &record_path,
        &["read the global checkpoint", "malformed commit record"],
    );

    // A coordinator cannot check its fence or round against it, so it refuses to
    // commit, and the data stays as it was.
    let err = coordinator
        .commit_global_checkpoint(1, &mut &b"round 1"[..])
        .unwrap_err();
    assert!(matches!(err, Error::BadRecord { .. }), "{err:?}");
    assert_eq!(
        fs::read(tree.init_dir().join("fl_checkpoint")).unwrap(),
        common::GLOBAL_0
    );
    assert!(common::temporaries_in(&tree.init_dir()).is_empty());
}

#[test]
fn a_record_that_describes_another_file_is_bad_record() {
    let tree = Tree::with_retry(quick_retry());
    let init = tree.init_dir();
    fs::copy(
        init.join(".fedota-commit.model.h5"),
        init.join(".fedota-commit.fl_checkpoint"),
    )
    .unwrap();

    let err = tree
        .store
        .problem(&tree.id)
        .unwrap()
        .read_global_checkpoint(read_bytes)
        .unwrap_err();

    assert!(matches!(err, Error::BadRecord { .. }), "{err:?}");
    assert!(err.to_string().contains("model.h5"), "{err}");
}

#[test]
fn a_tree_from_a_newer_layout_is_refused_with_its_version() {
    let tree = Tree::new();
    let marker = tree.init_dir().join(".fedota-layout");
    fs::write(&marker, br#"{"layout": 99}"#).unwrap();

    let err = tree.store.problem(&tree.id).unwrap_err();

    assert!(
        matches!(&err, Error::UnsupportedLayout { found: 99, path, .. } if *path == marker),
        "{err:?}"
    );
    assert!(err.to_string().contains("layout version 99"), "{err}");

    fs::write(&marker, b"not json").unwrap();
    let err = tree.store.problem(&tree.id).unwrap_err();
    assert!(matches!(err, Error::BadRecord { .. }), "{err:?}");
}

#[test]
fn a_record_without_its_data_file_is_retried_then_inconsistent() {
    let tree = Tree::with_retry(quick_retry());
    let path = tree.init_dir().join("fl_checkpoint");
    fs::remove_file(&path).unwrap();

    let err = tree
        .store
        .problem(&tree.id)
        .unwrap()
        .read_global_checkpoint(read_bytes)
        .unwrap_err();

    assert!(
        matches!(&err, Error::Inconsistent { last, .. } if last.is_not_found()),
        "{err:?}"
    );
    assert!(err.is_not_found());
    common::assert_names_path_and_op(&err, &path, &["read the global checkpoint"]);
}

#[test]
fn opening_a_store_or_problem_that_is_not_there_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-root");

    let err = Store::open(&missing).unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    common::assert_names_path_and_op(&err, &missing, &["open the store"]);

    let store = Store::open(dir.path()).unwrap();
    let err = store.problem(&ProblemId::new("nope").unwrap()).unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    common::assert_names_path_and_op(
        &err,
        &dir.path().join("nope").join("initFiles"),
        &["open problem nope"],
    );
}

#[test]
fn creating_a_problem_twice_is_refused_unless_forced() {
    let tree = Tree::new();

    let err = tree
        .store
        .create_problem(
            &tree.id,
            &mut &b"m2"[..],
            &mut &b"g2"[..],
            CreateOptions::default(),
        )
        .unwrap_err();
    assert_eq!(err.io_kind(), Some(io::ErrorKind::AlreadyExists), "{err:?}");
    let problem = tree.store.problem(&tree.id).unwrap();
    assert_eq!(problem.read_model(read_bytes).unwrap().value, common::MODEL);

    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    coordinator
        .commit_global_checkpoint(3, &mut &b"round 3"[..])
        .unwrap();
    drop(coordinator);
    tree.store
        .create_problem(
            &tree.id,
            &mut &b"m2"[..],
            &mut &b"g2"[..],
            CreateOptions::force(),
        )
        .unwrap();
    assert_eq!(
        problem.global_round().unwrap(),
        0,
        "forced setup starts again at round 0"
    );
    assert_eq!(problem.read_model(read_bytes).unwrap().value, b"m2");
}

#[test]
fn a_creation_that_failed_before_its_model_was_committed_can_be_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let id = ProblemId::new("p1").unwrap();

    // The model's source fails halfway, as an unreadable upload would.
    let mut failing = (&b"half a model"[..]).chain(FailingReader);
    let err = store
        .create_problem(&id, &mut failing, &mut &b"g0"[..], CreateOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("the upload broke"), "{err}");
    assert!(dir.path().join("p1").join("initFiles").is_dir());

    // Only fedota-store's own files were left, so no --force is needed.
    let problem = store
        .create_problem(
            &id,
            &mut &b"model"[..],
            &mut &b"g0"[..],
            CreateOptions::default(),
        )
        .unwrap();
    assert_eq!(problem.read_model(read_bytes).unwrap().value, b"model");
}

#[test]
fn a_problem_with_only_a_model_from_the_older_services_is_not_created_again() {
    let dir = tempfile::tempdir().unwrap();
    let init = dir.path().join("p1").join("initFiles");
    fs::create_dir_all(&init).unwrap();
    fs::write(init.join("model.h5"), b"legacy model").unwrap();
    let store = Store::open(dir.path()).unwrap();

    let err = store
        .create_problem(
            &ProblemId::new("p1").unwrap(),
            &mut &b"new model"[..],
            &mut &b"g0"[..],
            CreateOptions::default(),
        )
        .unwrap_err();

    assert_eq!(err.io_kind(), Some(io::ErrorKind::AlreadyExists), "{err:?}");
    assert_eq!(fs::read(init.join("model.h5")).unwrap(), b"legacy model");
}

/// A source that fails on every read.
struct FailingReader;

impl Read for FailingReader {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other("the upload broke"))
    }
}

const PERMISSION_TEST: &str = "a_commit_into_a_read_only_directory_is_permission_denied";

#[test]
fn a_commit_into_a_read_only_directory_is_permission_denied() {
    if common::child_role().is_some() {
        // Run as an unprivileged user: try to commit and report what happened.
        let store = Store::open(common::child_root()).unwrap();
        let selector = store
            .selector(&ProblemId::new("p1").unwrap(), &selector_id("s1"))
            .unwrap();
        common::report("started");
        let err = selector
            .commit_aggregate(2, 20, &mut &b"new aggregate"[..])
            .unwrap_err();
        common::report(format!("kind {:?}", err.io_kind()));
        common::report(format!("message {err}"));
        return;
    }

    let tree = Tree::new();
    let selector = tree.store.selector(&tree.id, &selector_id("s1")).unwrap();
    selector
        .commit_aggregate(1, 10, &mut &b"old aggregate"[..])
        .unwrap();
    let sel_dir = tree.selector_dir("s1");
    fs::set_permissions(&sel_dir, fs::Permissions::from_mode(0o555)).unwrap();

    let (kind, message) = if common::is_root() {
        // Root bypasses permission checks: let an unprivileged child try instead.
        fs::set_permissions(tree.root(), fs::Permissions::from_mode(0o755)).unwrap();
        match commit_as_nobody(tree.root()) {
            Ok(outcome) => outcome,
            Err(why) => {
                eprintln!("skipped {PERMISSION_TEST}: {why}");
                return;
            }
        }
    } else {
        let err = selector
            .commit_aggregate(2, 20, &mut &b"new aggregate"[..])
            .unwrap_err();
        (format!("{:?}", err.io_kind()), err.to_string())
    };
    fs::set_permissions(&sel_dir, fs::Permissions::from_mode(0o755)).unwrap();
    eprintln!("the error reads: {message}");

    assert_eq!(kind, "Some(PermissionDenied)", "{message}");
    assert!(
        message.contains(&sel_dir.display().to_string()),
        "{message}"
    );
    assert!(
        message.contains("commit fl_agg_checkpoint for round 2"),
        "{message}"
    );
    assert!(message.contains("create a temporary file"), "{message}");

    let read = selector.read_aggregate(1, read_bytes).unwrap();
    assert_eq!(
        (read.value.as_slice(), read.weight),
        (&b"old aggregate"[..], Some(10))
    );
    assert!(common::temporaries_in(&sel_dir).is_empty());
}

/// Runs the commit of the permission test in a child as user `nobody`, through
/// `setpriv`, and returns the error kind and message it reports.
fn commit_as_nobody(root: &std::path::Path) -> Result<(String, String), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(exe)
        .args([
            PERMISSION_TEST,
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(common::CHILD_ROLE_ENV, "nobody")
        .env(common::CHILD_ROOT_ENV, root)
        .stderr(Stdio::piped());

    let mut child = ChildProc::spawn("nobody", cmd);
    let timeout = Duration::from_secs(20);
    let Some(first) = child.next_event(timeout) else {
        // It never got to our code: setpriv is missing or refused, or user nobody
        // cannot run the test binary.
        let _ = child.child.wait();
        let mut stderr = String::new();
        if let Some(mut e) = child.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        return Err(format!(
            "cannot run the test binary as user nobody through setpriv: {}",
            stderr.trim()
        ));
    };
    assert_eq!(first, "started");
    let kind = child.expect_event("kind ", timeout)["kind ".len()..].to_owned();
    let message = child.expect_event("message ", timeout)["message ".len()..].to_owned();
    child.wait_success(timeout);
    Ok((kind, message))
}

#[test]
fn the_errors_are_distinct_for_each_cause() {
    // The variant alone tells the causes apart, without parsing messages.
    let tree = Tree::with_retry(quick_retry());
    let selector = tree.store.selector(&tree.id, &selector_id("s1")).unwrap();
    let problem = tree.store.problem(&tree.id).unwrap();
    let artifact = problem.artifact(ArtifactKind::Aggregate(selector_id("s1")));
    selector.commit_aggregate(1, 5, &mut &b"agg"[..]).unwrap();
    let weight = artifact.weight_path().unwrap();
    let data = artifact.data_path();
    let record = artifact.record_path();

    fs::write(&weight, b"x").unwrap();
    let bad_weight = problem.read_artifact(&artifact, read_bytes).unwrap_err();
    fs::write(&weight, b"5").unwrap();

    fs::write(&data, b"ag").unwrap();
    let truncated = problem.read_artifact(&artifact, read_bytes).unwrap_err();
    fs::write(&data, b"agg").unwrap();

    let good_record = fs::read(&record).unwrap();
    fs::write(&record, b"[]").unwrap();
    let bad_record = problem.read_artifact(&artifact, read_bytes).unwrap_err();
    fs::write(&record, good_record).unwrap();

    assert!(
        matches!(bad_weight, Error::BadWeight { .. }),
        "{bad_weight:?}"
    );
    assert!(
        matches!(&truncated, Error::Inconsistent { last, .. } if matches!(**last, Error::Truncated { .. })),
        "{truncated:?}"
    );
    assert!(
        matches!(bad_record, Error::BadRecord { .. }),
        "{bad_record:?}"
    );
    assert_eq!(bad_weight.path(), Some(weight.as_path()));
    assert_eq!(truncated.path(), Some(data.as_path()));
    assert_eq!(bad_record.path(), Some(record.as_path()));

    // With everything put back, the previous version reads verified.
    let read = problem.read_artifact(&artifact, read_bytes).unwrap();
    assert_eq!(
        (read.value.as_slice(), read.weight, read.round()),
        (&b"agg"[..], Some(5), Some(1))
    );
}
