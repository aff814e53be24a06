//! Roles: what each handle may write is decided by its type, and checked by the
//! compiler (trybuild cases in `tests/ui/`); what it does write stays in its place.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{Tree, selector_id};

#[test]
fn a_selector_has_no_way_to_write_init_files_or_another_selectors_directory() {
    let cases = trybuild::TestCases::new();
    for case in [
        "selector_cannot_commit_the_global_checkpoint",
        "selector_cannot_open_a_global_checkpoint_writer",
        "problem_view_cannot_commit",
        "selector_handle_cannot_be_made_for_another_id",
        "writer_cannot_be_made_for_an_arbitrary_artifact",
    ] {
        cases.compile_fail(format!("tests/ui/{case}.rs"));
    }
    cases.pass("tests/ui/selector_reads_init_files_and_writes_its_own_directory.rs");
}

/// Every file under `dir` with its inode, size and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, u64, i64, i64)> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            }
            files.insert(
                entry.path(),
                (meta.ino(), meta.len(), meta.mtime(), meta.mtime_nsec()),
            );
        }
    }
    files
}

#[test]
fn a_selector_changes_nothing_outside_its_own_directory() {
    let tree = Tree::new();
    let mine = tree.store.selector(&tree.id, &selector_id("mine")).unwrap();
    let other = tree
        .store
        .selector(&tree.id, &selector_id("other"))
        .unwrap();
    other
        .commit_aggregate(0, 1, &mut &b"other's aggregate"[..])
        .unwrap();
    let before = snapshot(tree.root());

    // Everything a selector can write, and everything it can read.
    mine.commit_aggregate(0, 10, &mut &b"my aggregate"[..])
        .unwrap();
    mine.commit_client_update(0, 4, 3, &mut &b"my client"[..])
        .unwrap();
    drop(mine.aggregate_writer(1, 1).unwrap());
    mine.read_global_checkpoint(common::read_bytes).unwrap();
    mine.read_model(common::read_bytes).unwrap();

    let after = snapshot(tree.root());
    let my_dir = tree.selector_dir("mine");
    let changed: Vec<&PathBuf> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .collect();
    assert!(!changed.is_empty());
    for path in changed {
        assert!(
            path.starts_with(&my_dir),
            "{} changed outside the selector's directory",
            path.display()
        );
    }
}
