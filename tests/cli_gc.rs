//! `fedota-store gc`.

mod cli_common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cli_common::*;

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.insert(path);
        }
    }
    found
}

#[test]
fn gc_removes_an_old_leftover_and_leaves_everything_else_alone() {
    let tree = Tree::demo();

    let leftover = tree.p1(&format!(
        "{S1}/.fedota-tmp.fl_agg_checkpoint.node-a.4242.x1y2z3"
    ));
    std::fs::write(&leftover, b"half an aggregate").unwrap();
    age_file(&leftover, Duration::from_secs(20 * 60));

    // An NFS silly-renamed file and a foreign dot-file, both old: never ours to touch.
    let nfs = tree.p1("initFiles/.nfs1234");
    let foreign = tree.p1(&format!("{S1}/roundFiles/.tmp-upload"));
    for path in [&nfs, &foreign] {
        std::fs::write(path, b"not ours").unwrap();
        age_file(path, Duration::from_secs(2 * 3600));
    }

    // A temporary file of a commit still streaming: young.
    let young = tree.p1("initFiles/.fedota-tmp.fl_checkpoint.node-b.7.abcabc");
    std::fs::write(&young, b"streaming").unwrap();

    let before = files_under(tree.root());
    let out = tree.cmd().arg("gc").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("removed {}", leftover.display())),
        "{}",
        stdout(&out)
    );

    let after = files_under(tree.root());
    let gone: Vec<_> = before.difference(&after).collect();
    assert_eq!(gone, [&leftover]);
    assert!(nfs.exists() && foreign.exists() && young.exists());

    // What remains still verifies.
    let out = tree.cmd().arg("verify").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn gc_dry_run_lists_but_removes_nothing() {
    let tree = Tree::demo();
    let leftover = tree.p1("initFiles/.fedota-tmp.fl_checkpoint.node-a.1.qqqqqq");
    std::fs::write(&leftover, b"x").unwrap();
    age_file(&leftover, Duration::from_secs(3600));

    let out = tree.cmd().args(["gc", "--dry-run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains(&format!("would remove {}", leftover.display())),
        "{}",
        stdout(&out)
    );
    assert!(leftover.exists());
}

#[test]
fn gc_honours_older_than_and_reports_json() {
    let tree = Tree::demo();
    let leftover = tree.p1("initFiles/.fedota-tmp.model.h5.node-a.1.rrrrrr");
    std::fs::write(&leftover, b"12345").unwrap();
    age_file(&leftover, Duration::from_secs(90));

    // Ninety seconds old is young by the default of 10 minutes.
    let out = tree.cmd().args(["gc", "--json"]).output().unwrap();
    let report = json(&out, "gc");
    assert_keys(
        &report,
        &[
            "command",
            "schema_version",
            "root",
            "older_than_s",
            "dry_run",
            "files",
            "errors",
        ],
    );
    assert_eq!(report["older_than_s"], 600);
    assert_eq!(report["files"].as_array().unwrap().len(), 0);
    assert!(leftover.exists());

    let out = tree
        .cmd()
        .args(["gc", "--older-than", "1m", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report = json(&out, "gc");
    assert_eq!(report["older_than_s"], 60);
    assert_eq!(report["dry_run"], false);
    let files = report["files"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    assert_keys(&files[0], &["path", "age_s", "size", "stale"]);
    assert_eq!(files[0]["path"], leftover.display().to_string());
    assert_eq!(files[0]["size"], 5);
    assert!(files[0]["age_s"].as_u64().unwrap() >= 90);
    assert!(!leftover.exists());
}

#[test]
fn gc_rejects_a_duration_it_cannot_parse() {
    let tree = Tree::demo();
    let out = tree
        .cmd()
        .args(["gc", "--older-than", "ten minutes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--older-than"), "{}", stderr(&out));
}

#[test]
fn gc_cleans_the_other_problems_when_one_cannot_be_read() {
    let tree = Tree::demo();
    tree.add_problem("p2");
    let round_files = tree.break_round_files_of_s2();
    let leftover = tree
        .root()
        .join("p2/initFiles/.fedota-tmp.fl_checkpoint.node-a.1.zzzzzz");
    std::fs::write(&leftover, b"x").unwrap();
    age_file(&leftover, Duration::from_secs(3600));

    let out = tree.cmd().args(["gc", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let report = json(&out, "gc");
    assert_eq!(report["files"][0]["path"], leftover.display().to_string());
    assert!(!leftover.exists());
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0]["problem"], "p1");
    assert_eq!(errors[0]["path"], round_files.display().to_string());
}
