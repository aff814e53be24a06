//! Rounds: the coordinator reads only aggregates of the round it asks for, moves the
//! global round forward only, and detects a data file and a weight from different
//! commits.

mod common;

use std::fs;
use std::time::Duration;

use common::{Tree, quick_retry, read_bytes, selector_id};
use fedota_store::{AggregateState, ArtifactKind, Error, LockWait, RetryPolicy};

#[test]
fn an_aggregate_of_the_previous_round_is_reported_stale_never_used() {
    let tree = Tree::new();
    let selector = tree.store.selector(&tree.id, &selector_id("s1")).unwrap();
    selector
        .commit_aggregate(4, 30, &mut &b"aggregate of round 4"[..])
        .unwrap();
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();

    let mut called = false;
    let err = coordinator
        .read_aggregate(selector.id(), 5, |r| {
            called = true;
            read_bytes(r)
        })
        .unwrap_err();

    match &err {
        Error::StaleRound {
            wanted: 5,
            found: 4,
            path,
            ..
        } => assert_eq!(path, &tree.selector_dir("s1").join("fl_agg_checkpoint")),
        other => panic!("expected StaleRound 5/4, got {other:?}"),
    }
    assert!(!called, "the stale data was never handed to the caller");
    common::assert_names_path_and_op(
        &err,
        &tree.selector_dir("s1").join("fl_agg_checkpoint"),
        &["round 5", "round 4"],
    );

    // The round it does belong to reads fine.
    let read = coordinator
        .read_aggregate(selector.id(), 4, read_bytes)
        .unwrap();
    assert_eq!(read.value, b"aggregate of round 4");
    assert_eq!(read.weight, Some(30));
}

#[test]
fn an_aggregate_from_a_later_round_is_not_used_for_an_earlier_one() {
    let tree = Tree::new();
    let selector = tree.store.selector(&tree.id, &selector_id("s1")).unwrap();
    selector.commit_aggregate(7, 1, &mut &b"x"[..]).unwrap();
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();

    let err = coordinator
        .read_aggregate(selector.id(), 6, read_bytes)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::StaleRound {
                wanted: 6,
                found: 7,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_missing_aggregate_is_not_found_not_stale() {
    let tree = Tree::new();
    let selector = tree.store.selector(&tree.id, &selector_id("s1")).unwrap();
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();

    let err = coordinator
        .read_aggregate(selector.id(), 0, read_bytes)
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
}

#[test]
fn aggregate_states_tell_ready_stale_missing_and_unrecorded_apart() {
    let tree = Tree::new();
    let store = &tree.store;
    let round = 3;

    let ready = store.selector(&tree.id, &selector_id("ready")).unwrap();
    ready.commit_aggregate(round, 10, &mut &b"r"[..]).unwrap();
    let stale = store.selector(&tree.id, &selector_id("stale")).unwrap();
    stale
        .commit_aggregate(round - 1, 20, &mut &b"s"[..])
        .unwrap();
    store.selector(&tree.id, &selector_id("missing")).unwrap();
    // An older service writes its aggregate without a record.
    let unrecorded = tree.selector_dir("unrecorded");
    fs::create_dir_all(&unrecorded).unwrap();
    fs::write(unrecorded.join("fl_agg_checkpoint"), b"old service").unwrap();
    fs::write(unrecorded.join("fl_agg_checkpoint_weight"), b"600").unwrap();

    let coordinator = store.coordinator(&tree.id, LockWait::Try).unwrap();
    let states = coordinator.aggregates(round).unwrap();

    let names: Vec<&str> = states.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(names, ["missing", "ready", "stale", "unrecorded"]);
    for (id, state) in &states {
        match (id.as_str(), state) {
            ("ready", AggregateState::Ready(r)) => {
                assert_eq!((r.round, r.weight), (round, Some(10)))
            }
            ("stale", AggregateState::Stale(r)) => {
                assert_eq!((r.round, r.weight), (round - 1, Some(20)))
            }
            ("missing", AggregateState::Missing) | ("unrecorded", AggregateState::Unrecorded) => {}
            (id, state) => panic!("selector {id}: unexpected state {state:?}"),
        }
    }

    // The coordinator never reads the unrecorded one as if it were of this round.
    let err = coordinator
        .read_aggregate(&selector_id("unrecorded"), round, read_bytes)
        .unwrap_err();
    assert!(matches!(err, Error::Unrecorded { .. }), "{err:?}");

    // Waiting for two ready aggregates times out naming the laggards.
    let err = coordinator
        .wait_for_aggregates(round, 2, Duration::from_millis(120))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    for part in [
        "1 of 2",
        "stale (stale: its aggregate is from round 2)",
        "missing (no aggregate yet)",
    ] {
        assert!(msg.contains(part), "{msg:?} lacks {part:?}");
    }
    assert_eq!(
        coordinator
            .wait_for_aggregates(round, 1, Duration::from_millis(120))
            .unwrap(),
        vec![selector_id("ready")]
    );
}

#[test]
fn a_coordinator_commit_at_or_below_the_stored_round_is_refused() {
    let tree = Tree::new();
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    coordinator
        .commit_global_checkpoint(2, &mut &b"round 2"[..])
        .unwrap();

    for round in [0, 1, 2] {
        let err = coordinator
            .commit_global_checkpoint(round, &mut &b"stale"[..])
            .unwrap_err();
        match &err {
            Error::RoundNotAdvanced {
                stored: 2,
                requested,
                ..
            } => assert_eq!(*requested, round),
            other => panic!("round {round}: expected RoundNotAdvanced, got {other:?}"),
        }
        common::assert_names_path_and_op(
            &err,
            &tree.init_dir().join("fl_checkpoint"),
            &["commit fl_checkpoint", "stored round 2"],
        );
    }

    // Nothing changed, nothing is left over, and the next round still goes in.
    let read = coordinator.read_global_checkpoint(read_bytes).unwrap();
    assert_eq!(
        (read.round(), read.value.as_slice()),
        (Some(2), &b"round 2"[..])
    );
    assert!(common::temporaries_in(&tree.init_dir()).is_empty());
    coordinator
        .commit_global_checkpoint(3, &mut &b"round 3"[..])
        .unwrap();
}

#[test]
fn rounds_may_skip_forward() {
    let tree = Tree::new();
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    coordinator
        .commit_global_checkpoint(10, &mut &b"round 10"[..])
        .unwrap();
    assert_eq!(coordinator.global_round().unwrap(), 10);
    let read = tree
        .store
        .problem(&tree.id)
        .unwrap()
        .read_global_checkpoint_of(10, read_bytes)
        .unwrap();
    assert_eq!(read.value, b"round 10");
}

#[test]
fn a_selector_reading_the_global_checkpoint_of_a_round_gets_that_round_or_stale() {
    let tree = Tree::new();
    let selector = tree.store.selector(&tree.id, &selector_id("s1")).unwrap();

    let err = selector
        .read_global_checkpoint_of(1, read_bytes)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::StaleRound {
                wanted: 1,
                found: 0,
                ..
            }
        ),
        "{err:?}"
    );
    let read = selector.read_global_checkpoint_of(0, read_bytes).unwrap();
    assert_eq!(read.value, common::GLOBAL_0);
}

#[test]
fn a_weight_from_another_commit_is_detected_as_weight_mismatch() {
    let tree = Tree::with_retry(quick_retry());
    let selector = tree.store.selector(&tree.id, &selector_id("s1")).unwrap();
    selector
        .commit_aggregate(1, 10, &mut &b"aggregate of round 1"[..])
        .unwrap();

    // Another commit's weight lands over this one's, as if a writer died between
    // its renames.
    let weight_path = tree.selector_dir("s1").join("fl_agg_checkpoint_weight");
    fs::write(&weight_path, b"20").unwrap();

    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    let err = coordinator
        .read_aggregate(selector.id(), 1, read_bytes)
        .unwrap_err();

    match &err {
        Error::Inconsistent { attempts, last, .. } => {
            assert_eq!(*attempts, quick_retry().attempts);
            match &**last {
                Error::WeightMismatch {
                    expected: 10,
                    found: 20,
                    path,
                    ..
                } => assert_eq!(path, &weight_path),
                other => panic!("expected WeightMismatch 10/20, got {other:?}"),
            }
        }
        other => panic!("expected Inconsistent, got {other:?}"),
    }
    assert!(err.to_string().contains("weight 20"), "{err}");
}

#[test]
fn data_replaced_behind_its_record_is_detected_as_checksum_mismatch() {
    let tree = Tree::with_retry(quick_retry());
    let selector = tree.store.selector(&tree.id, &selector_id("s1")).unwrap();
    selector
        .commit_aggregate(1, 10, &mut &b"aggregate of round 1"[..])
        .unwrap();

    // Same length, other bytes: only the checksum can tell.
    let data_path = tree.selector_dir("s1").join("fl_agg_checkpoint");
    fs::write(&data_path, b"aggregate of round 2").unwrap();

    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    let err = coordinator
        .read_aggregate(selector.id(), 1, read_bytes)
        .unwrap_err();

    let Error::Inconsistent { last, path, .. } = &err else {
        panic!("expected Inconsistent, got {err:?}");
    };
    assert_eq!(path, &data_path);
    match &**last {
        Error::ChecksumMismatch {
            expected, actual, ..
        } => {
            assert_eq!(*expected, crc32c::crc32c(b"aggregate of round 1"));
            assert_eq!(*actual, crc32c::crc32c(b"aggregate of round 2"));
        }
        other => panic!("expected ChecksumMismatch, got {other:?}"),
    }
}

#[test]
fn data_longer_than_its_record_is_detected_as_oversized() {
    let tree = Tree::with_retry(quick_retry());
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    coordinator
        .commit_global_checkpoint(1, &mut &b"short"[..])
        .unwrap();
    fs::write(
        tree.init_dir().join("fl_checkpoint"),
        b"short, and then a lot more",
    )
    .unwrap();

    let err = coordinator.read_global_checkpoint(read_bytes).unwrap_err();
    assert!(
        matches!(&err, Error::Inconsistent { last, .. } if matches!(**last, Error::Oversized { expected: 5, .. })),
        "{err:?}"
    );
}

#[test]
fn a_mismatch_that_a_writer_repairs_while_the_reader_retries_reads_fine() {
    // Patient retries: 40 attempts, 5 ms apart.
    let policy = RetryPolicy {
        attempts: 40,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(5),
    };
    let tree = Tree::with_retry(policy);
    let selector = tree.store.selector(&tree.id, &selector_id("s1")).unwrap();
    selector
        .commit_aggregate(1, 10, &mut &b"aggregate"[..])
        .unwrap();
    let weight_path = tree.selector_dir("s1").join("fl_agg_checkpoint_weight");
    fs::write(&weight_path, b"99").unwrap();

    // The "writer" finishes 50 ms into the read. It replaces the weight by rename,
    // as fedota-store's writers do: an in-place write could show the reader an
    // empty file, which is corrupt weight text and is not retried.
    let repair = {
        let weight_path = weight_path.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let staged = weight_path.with_file_name("weight.staged");
            fs::write(&staged, b"10").unwrap();
            fs::rename(staged, weight_path).unwrap();
        })
    };
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    let mut attempts = 0;
    let read = coordinator
        .read_aggregate(selector.id(), 1, |r| {
            attempts += 1;
            read_bytes(r)
        })
        .unwrap();
    repair.join().unwrap();

    assert_eq!(
        (read.value.as_slice(), read.weight),
        (&b"aggregate"[..], Some(10))
    );
    assert!(attempts > 1, "the read was retried ({attempts} attempts)");
}

/// Puts `bytes` at `path` by rename, as fedota-store's writers replace files.
fn replace(path: &std::path::Path, bytes: &[u8]) {
    let staged = path.with_file_name("replacement.staged");
    fs::write(&staged, bytes).unwrap();
    fs::rename(staged, path).unwrap();
}

/// A commit caught between its renames: the data (and weight) of round 2 in place,
/// the record of round 1 still beside them.
struct Unfinished {
    record_path: std::path::PathBuf,
    record_1: Vec<u8>,
    record_2: Vec<u8>,
}

impl Unfinished {
    /// Commits rounds 1 and 2 of the artifact whose record is at `record_path` with
    /// `commit`, then puts round 1's record back.
    fn new(record_path: std::path::PathBuf, mut commit: impl FnMut(u64, &[u8])) -> Self {
        commit(
            1,
            format!("round 1 of {}", record_path.display()).as_bytes(),
        );
        let record_1 = fs::read(&record_path).unwrap();
        commit(
            2,
            format!("round 2 of {}", record_path.display()).as_bytes(),
        );
        let record_2 = fs::read(&record_path).unwrap();

        let unfinished = Self {
            record_path,
            record_1,
            record_2,
        };
        unfinished.again();
        unfinished
    }

    /// A global checkpoint caught so.
    fn global(tree: &Tree, coordinator: &fedota_store::Coordinator) -> Self {
        Self::new(
            tree.init_dir().join(".fedota-commit.fl_checkpoint"),
            |round, mut data| {
                coordinator
                    .commit_global_checkpoint(round, &mut data)
                    .unwrap();
            },
        )
    }

    /// The data this caught commit put in place.
    fn data(&self, round: u64) -> Vec<u8> {
        format!("round {round} of {}", self.record_path.display()).into_bytes()
    }

    /// The writer's record lands.
    fn land(&self) {
        replace(&self.record_path, &self.record_2);
    }

    /// Back to the moment before the record landed.
    fn again(&self) {
        replace(&self.record_path, &self.record_1);
    }
}

/// A single attempt, so a test shows what one read does without retrying.
fn one_attempt() -> RetryPolicy {
    RetryPolicy {
        attempts: 1,
        ..quick_retry()
    }
}

#[test]
fn a_reader_that_opened_new_data_under_the_old_record_takes_the_record_written_meanwhile() {
    let tree = Tree::with_retry(one_attempt());
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();

    // The writer of round 2 has renamed its data in but not yet its record. It
    // writes the record while the reader streams the data.
    let unfinished = Unfinished::global(&tree, &coordinator);
    let mut calls = 0;
    let read = coordinator
        .read_global_checkpoint(|r| {
            calls += 1;
            unfinished.land();
            read_bytes(r)
        })
        .unwrap();

    assert_eq!(read.value, unfinished.data(2));
    assert_eq!(read.round(), Some(2));
    assert_eq!(calls, 1, "no second attempt was needed");
}

#[test]
fn a_record_written_meanwhile_still_has_to_be_of_the_round_asked_for() {
    let tree = Tree::with_retry(one_attempt());
    let selector = tree.store.selector(&tree.id, &selector_id("s1")).unwrap();

    // Data and weight of round 2 are in place under the record of round 1; the
    // record of round 2 lands while the coordinator reads the data.
    let unfinished = Unfinished::new(
        tree.selector_dir("s1")
            .join(".fedota-commit.fl_agg_checkpoint"),
        |round, mut data| {
            selector
                .commit_aggregate(round, round * 10, &mut data)
                .unwrap();
        },
    );
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    let err = coordinator
        .read_aggregate(selector.id(), 1, |r| {
            unfinished.land();
            read_bytes(r)
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::StaleRound {
                wanted: 1,
                found: 2,
                ..
            }
        ),
        "{err:?}"
    );

    // Read whatever its round, the same situation gives round 2, with the weight
    // checked against the record of round 2.
    unfinished.again();
    let problem = tree.store.problem(&tree.id).unwrap();
    let artifact = problem.artifact(ArtifactKind::Aggregate(selector.id().clone()));
    let read = problem
        .read_artifact(&artifact, |r| {
            unfinished.land();
            read_bytes(r)
        })
        .unwrap();
    assert_eq!(
        (read.round(), read.weight, read.value),
        (Some(2), Some(20), unfinished.data(2))
    );
}

#[test]
fn a_record_written_meanwhile_does_not_excuse_data_that_matches_neither() {
    let tree = Tree::with_retry(one_attempt());
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();

    let unfinished = Unfinished::global(&tree, &coordinator);
    let mut neither = unfinished.data(2);
    neither[0] ^= 1;
    replace(&tree.init_dir().join("fl_checkpoint"), &neither);
    let err = coordinator
        .read_global_checkpoint(|r| {
            unfinished.land();
            read_bytes(r)
        })
        .unwrap_err();

    let Error::Inconsistent { last, .. } = &err else {
        panic!("expected Inconsistent, got {err:?}");
    };
    assert!(matches!(**last, Error::ChecksumMismatch { .. }), "{last:?}");
}

#[test]
fn a_reader_verifies_data_that_newer_commits_replaced_while_it_streamed() {
    let tree = Tree::with_retry(one_attempt());
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();

    // The reader opens round 2's data under round 1's record. While it streams, the
    // writer finishes round 2 and commits round 3 as well: the record it then finds
    // knows round 2 only as an earlier commit.
    let unfinished = Unfinished::global(&tree, &coordinator);
    let read = coordinator
        .read_global_checkpoint(|r| {
            unfinished.land();
            coordinator
                .commit_global_checkpoint(3, &mut &b"global of round 3"[..])
                .unwrap();
            read_bytes(r)
        })
        .unwrap();

    assert_eq!(read.value, unfinished.data(2));
    assert_eq!(read.round(), Some(2));
    let record = read.record.unwrap();
    assert!(record.earlier.is_empty(), "a read reports one commit");
}

#[test]
fn data_read_before_its_record_landed_is_verified_without_reading_it_again() {
    let tree = Tree::with_retry(RetryPolicy {
        attempts: 3,
        initial_backoff: Duration::from_millis(300),
        max_backoff: Duration::from_millis(300),
    });
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();

    // The writer of round 2 stalls between its data and its record (the NFS lab saw
    // stalls of 3 s) and writes the record only after the reader has read the data.
    let unfinished = Unfinished::global(&tree, &coordinator);
    let mut calls = 0;
    let read = std::thread::scope(|s| {
        coordinator.read_global_checkpoint(|r| {
            calls += 1;
            if calls == 1 {
                let unfinished = &unfinished;
                s.spawn(move || {
                    std::thread::sleep(Duration::from_millis(50));
                    unfinished.land();
                });
            }
            read_bytes(r)
        })
    })
    .unwrap();

    assert_eq!(read.value, unfinished.data(2));
    assert_eq!(read.round(), Some(2));
    assert_eq!(
        calls, 1,
        "the data was read once, and verified once its record landed"
    );
}

#[test]
fn the_weight_read_is_the_one_beside_the_data_when_it_was_opened() {
    let tree = Tree::with_retry(one_attempt());
    let selector = tree.store.selector(&tree.id, &selector_id("s1")).unwrap();
    selector
        .commit_aggregate(1, 10, &mut &b"aggregate of round 1"[..])
        .unwrap();

    // A commit lands while the coordinator streams the data of round 1: the data it
    // opened stays round 1's, and so must the weight.
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    let read = coordinator
        .read_aggregate(selector.id(), 1, |r| {
            selector
                .commit_aggregate(2, 20, &mut &b"aggregate of round 2"[..])
                .unwrap();
            read_bytes(r)
        })
        .unwrap();

    assert_eq!(
        (read.value.as_slice(), read.weight, read.round()),
        (&b"aggregate of round 1"[..], Some(10), Some(1))
    );
}

#[test]
fn a_record_keeps_the_eight_commits_before_it_newest_first() {
    let tree = Tree::new();
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    for round in 1..=12 {
        coordinator
            .commit_global_checkpoint(round, &mut format!("round {round}").as_bytes())
            .unwrap();
    }

    let problem = tree.store.problem(&tree.id).unwrap();
    let record = problem
        .record(&problem.artifact(ArtifactKind::GlobalCheckpoint))
        .unwrap()
        .unwrap();

    assert_eq!(record.round, 12);
    let earlier: Vec<u64> = record.earlier.iter().map(|r| r.round).collect();
    assert_eq!(earlier, [11, 10, 9, 8, 7, 6, 5, 4]);
    assert!(record.earlier.iter().all(|r| r.earlier.is_empty()));
    assert_eq!(
        record.earlier[0].crc32c,
        crc32c::crc32c(b"round 11"),
        "each earlier commit is described as it was committed"
    );
}

#[test]
fn the_artifact_paths_follow_the_layout_of_the_existing_services() {
    let tree = Tree::new();
    let problem = tree.store.problem(&tree.id).unwrap();
    let sel = selector_id("selector-7d4f9c-x2x9q.selector:50051");

    let agg = problem.artifact(ArtifactKind::Aggregate(sel.clone()));
    let dir = tree
        .root()
        .join("p1")
        .join("selector-7d4f9c-x2x9q.selector:50051");
    assert_eq!(agg.data_path(), dir.join("fl_agg_checkpoint"));
    assert_eq!(
        agg.weight_path(),
        Some(dir.join("fl_agg_checkpoint_weight"))
    );
    let update = problem.artifact(ArtifactKind::ClientUpdate(sel, 9));
    assert_eq!(
        update.data_path(),
        dir.join("roundFiles").join("checkpoint_9")
    );
    assert_eq!(
        update.weight_path(),
        Some(dir.join("roundFiles").join("checkpoint_weight_9"))
    );
}
