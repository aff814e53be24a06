//! Waiting for other services: polls that end when the round arrives, time out
//! naming what is missing, and stop at once on an error that waiting cannot mend.

mod common;

use std::fs;
use std::time::Duration;

use common::{Tree, selector_id};
use fedota_store::{Error, LockWait};

#[test]
fn a_wait_for_a_round_returns_once_another_thread_commits_it() {
    let tree = Tree::new();
    let problem = tree.store.problem(&tree.id).unwrap();
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();

    let round = std::thread::scope(|s| {
        let waiter = s.spawn(|| problem.wait_for_global_round(2, Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(100));
        coordinator
            .commit_global_checkpoint(2, &mut &b"round 2"[..])
            .unwrap();
        waiter.join().unwrap()
    });

    assert_eq!(round.unwrap(), 2);
}

#[test]
fn a_wait_that_times_out_says_which_round_it_last_saw() {
    let tree = Tree::new();
    let problem = tree.store.problem(&tree.id).unwrap();

    let err = problem
        .wait_for_global_round(3, Duration::from_millis(150))
        .unwrap_err();

    let Error::Timeout { what, path, .. } = &err else {
        panic!("expected Timeout, got {err:?}");
    };
    assert_eq!(what, "still at round 0");
    assert_eq!(path, &tree.init_dir().join("fl_checkpoint"));

    // The time waited reads as a person would write it: no micro- or nanoseconds.
    let msg = err.to_string();
    let waited = msg
        .split("timed out after ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("{msg}"));
    assert!(
        waited.split(' ').all(|part| part.ends_with("ms")
            || part.ends_with(['s', 'm', 'h']) && !part.ends_with("us") && !part.ends_with("ns")),
        "{waited:?}"
    );
}

#[test]
fn a_malformed_record_ends_a_wait_at_once_instead_of_timing_out() {
    let tree = Tree::new();
    let problem = tree.store.problem(&tree.id).unwrap();
    fs::write(
        tree.init_dir().join(".fedota-commit.fl_checkpoint"),
        b"{ not json",
    )
    .unwrap();

    // Were it treated as "not yet", this would wait the whole minute and end in
    // Timeout.
    let err = problem
        .wait_for_global_round(1, Duration::from_secs(60))
        .unwrap_err();

    assert!(matches!(err, Error::BadRecord { .. }), "{err:?}");
}

#[test]
fn a_wait_for_aggregates_counts_only_those_of_the_round_asked_for() {
    let tree = Tree::new();
    let problem = tree.store.problem(&tree.id).unwrap();
    let on_time = tree.store.selector(&tree.id, &selector_id("s1")).unwrap();
    let behind = tree.store.selector(&tree.id, &selector_id("s2")).unwrap();
    on_time
        .commit_aggregate(1, 10, &mut &b"s1 round 1"[..])
        .unwrap();
    behind
        .commit_aggregate(0, 10, &mut &b"s2 round 0"[..])
        .unwrap();

    let ready = problem
        .wait_for_aggregates(1, 1, Duration::from_secs(30))
        .unwrap();
    assert_eq!(ready, [selector_id("s1")]);

    let err = problem
        .wait_for_aggregates(1, 2, Duration::from_millis(150))
        .unwrap_err();
    let Error::Timeout { what, .. } = &err else {
        panic!("expected Timeout, got {err:?}");
    };
    assert!(
        what.contains("1 of 2 aggregates of round 1 ready")
            && what.contains("s2 (stale: its aggregate is from round 0)"),
        "{what}"
    );
}
