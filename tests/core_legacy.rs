//! Trees written by the existing services, which know nothing of records or
//! markers: they can be read, the results say they are unverified, and what the
//! crate writes is what those services parse.

mod common;

use std::fs;
use std::path::Path;

use common::{read_bytes, selector_id};
use fedota_store::{AggregateState, ArtifactKind, Error, LockWait, MAX_WEIGHT, ProblemId, Store};

const SELECTOR: &str = "selector-7d4f9c-x2x9q.selector:50051";

/// Writes a problem the way the Go and Python services do: plain files, weights as
/// bare digits, nothing else.
fn write_old_tree(root: &Path) {
    let init = root.join("legacy").join("initFiles");
    fs::create_dir_all(&init).unwrap();
    fs::write(init.join("model.h5"), b"\x89HDF\r\n\x1a\nold model").unwrap();
    fs::write(init.join("fl_checkpoint"), b"\x89HDF\r\n\x1a\nold global").unwrap();

    let sel = root.join("legacy").join(SELECTOR);
    fs::create_dir_all(sel.join("roundFiles")).unwrap();
    fs::write(sel.join("fl_agg_checkpoint"), b"old aggregate").unwrap();
    fs::write(sel.join("fl_agg_checkpoint_weight"), b"600").unwrap();
    fs::write(sel.join("roundFiles").join("checkpoint_3"), b"client 3").unwrap();
    fs::write(sel.join("roundFiles").join("checkpoint_weight_3"), b"25").unwrap();
}

#[test]
fn a_tree_written_by_the_old_services_reads_unverified_with_its_weights() {
    let dir = tempfile::tempdir().unwrap();
    write_old_tree(dir.path());
    let store = Store::open(dir.path()).unwrap();
    let id = ProblemId::new("legacy").unwrap();

    assert_eq!(store.problems().unwrap(), vec![id.clone()]);
    let problem = store.problem(&id).unwrap();
    assert_eq!(problem.layout_version().unwrap(), None, "no marker");

    let model = problem.read_model(read_bytes).unwrap();
    assert_eq!(model.value, b"\x89HDF\r\n\x1a\nold model");
    assert_eq!(model.record, None);
    assert!(!model.is_verified());

    let global = problem.read_global_checkpoint(read_bytes).unwrap();
    assert_eq!(global.value, b"\x89HDF\r\n\x1a\nold global");
    assert_eq!((global.round(), global.record), (None, None));

    let sel = selector_id(SELECTOR);
    assert_eq!(problem.selectors().unwrap(), vec![sel.clone()]);
    let aggregate = problem
        .read_artifact(
            &problem.artifact(ArtifactKind::Aggregate(sel.clone())),
            read_bytes,
        )
        .unwrap();
    assert_eq!(aggregate.value, b"old aggregate");
    assert_eq!(aggregate.weight, Some(600));
    assert_eq!(aggregate.record, None);

    assert_eq!(problem.client_updates(&sel).unwrap(), vec![3]);
    let update = problem
        .read_artifact(
            &problem.artifact(ArtifactKind::ClientUpdate(sel, 3)),
            read_bytes,
        )
        .unwrap();
    assert_eq!(
        (update.value.as_slice(), update.weight),
        (&b"client 3"[..], Some(25))
    );
    assert!(!update.is_verified());

    // Reading leaves the old tree exactly as it was.
    let names = common::names_in(&dir.path().join("legacy").join("initFiles"));
    assert_eq!(names, ["fl_checkpoint", "model.h5"]);
}

#[test]
fn an_unrecorded_file_has_no_round_so_round_reads_refuse_it() {
    let dir = tempfile::tempdir().unwrap();
    write_old_tree(dir.path());
    let store = Store::open(dir.path()).unwrap();
    let id = ProblemId::new("legacy").unwrap();
    let problem = store.problem(&id).unwrap();

    let err = problem.global_round().unwrap_err();
    assert!(matches!(err, Error::Unrecorded { .. }), "{err:?}");
    let err = problem
        .read_global_checkpoint_of(0, read_bytes)
        .unwrap_err();
    assert!(matches!(err, Error::Unrecorded { .. }), "{err:?}");

    let states = problem.aggregate_states(0).unwrap();
    assert!(
        matches!(states.as_slice(), [(_, AggregateState::Unrecorded)]),
        "{states:?}"
    );
    let coordinator = store.coordinator(&id, LockWait::Try).unwrap();
    let err = coordinator
        .read_aggregate(&selector_id(SELECTOR), 0, read_bytes)
        .unwrap_err();
    let path = dir
        .path()
        .join("legacy")
        .join(SELECTOR)
        .join("fl_agg_checkpoint");
    assert!(
        matches!(&err, Error::Unrecorded { path: p, .. } if *p == path),
        "{err:?}"
    );
    assert!(err.to_string().contains("no commit record"), "{err}");
}

#[test]
fn a_coordinator_can_take_over_an_old_tree_and_move_it_forward() {
    let dir = tempfile::tempdir().unwrap();
    write_old_tree(dir.path());
    let store = Store::open(dir.path()).unwrap();
    let id = ProblemId::new("legacy").unwrap();

    let coordinator = store.coordinator(&id, LockWait::Try).unwrap();
    coordinator
        .commit_global_checkpoint(1, &mut &b"new global"[..])
        .unwrap();

    assert_eq!(coordinator.global_round().unwrap(), 1);
    let init = dir.path().join("legacy").join("initFiles");
    assert_eq!(fs::read(init.join("fl_checkpoint")).unwrap(), b"new global");
    // The model the old services wrote is untouched.
    assert_eq!(
        fs::read(init.join("model.h5")).unwrap(),
        b"\x89HDF\r\n\x1a\nold model"
    );
}

#[test]
fn weight_files_written_by_the_crate_are_bare_decimal_digits() {
    let tree = common::Tree::new();
    let selector = tree
        .store
        .selector(&tree.id, &selector_id(SELECTOR))
        .unwrap();
    let weight_file = tree.selector_dir(SELECTOR).join("fl_agg_checkpoint_weight");

    for (round, weight, text) in [
        (0, 600, &b"600"[..]),
        (1, 0, b"0"),
        (2, 7, b"7"),
        (3, MAX_WEIGHT, b"9223372036854775807"),
    ] {
        selector
            .commit_aggregate(round, weight, &mut &b"agg"[..])
            .unwrap();
        assert_eq!(fs::read(&weight_file).unwrap(), text, "weight {weight}");
    }

    selector
        .commit_client_update(4, 2, 1234, &mut &b"update"[..])
        .unwrap();
    let update_weight = tree
        .selector_dir(SELECTOR)
        .join("roundFiles")
        .join("checkpoint_weight_2");
    assert_eq!(fs::read(update_weight).unwrap(), b"1234");
}

#[test]
fn a_weight_the_old_services_could_not_parse_is_never_written() {
    let tree = common::Tree::new();
    let selector = tree
        .store
        .selector(&tree.id, &selector_id(SELECTOR))
        .unwrap();
    selector.commit_aggregate(0, 600, &mut &b"agg"[..]).unwrap();

    let err = selector
        .commit_aggregate(1, MAX_WEIGHT + 1, &mut &b"agg"[..])
        .unwrap_err();

    assert!(
        matches!(&err, Error::BadWeight { text, .. } if text == "9223372036854775808"),
        "{err:?}"
    );
    let weight_file = tree.selector_dir(SELECTOR).join("fl_agg_checkpoint_weight");
    assert_eq!(fs::read(&weight_file).unwrap(), b"600");
    assert!(common::temporaries_in(&tree.selector_dir(SELECTOR)).is_empty());
}

#[test]
fn weight_text_is_read_as_strictly_as_the_go_services_parse_it() {
    let dir = tempfile::tempdir().unwrap();
    write_old_tree(dir.path());
    let store = Store::open(dir.path()).unwrap();
    let problem = store.problem(&ProblemId::new("legacy").unwrap()).unwrap();
    let artifact = problem.artifact(ArtifactKind::Aggregate(selector_id(SELECTOR)));
    let weight_file = artifact.weight_path().unwrap();

    for bad in [
        &b"600\n"[..],
        b" 600",
        b"+600",
        b"-1",
        b"6e2",
        b"",
        b"9223372036854775808",
        b"0x258",
    ] {
        fs::write(&weight_file, bad).unwrap();
        let err = problem.read_artifact(&artifact, read_bytes).unwrap_err();
        assert!(
            matches!(&err, Error::BadWeight { path, .. } if *path == weight_file),
            "{:?}: {err:?}",
            String::from_utf8_lossy(bad)
        );
    }
    fs::write(&weight_file, b"0600").unwrap();
    let read = problem.read_artifact(&artifact, read_bytes).unwrap();
    assert_eq!(read.weight, Some(600), "ParseInt accepts leading zeros");
}
