//! The verbs for services that are not written in Rust: `commit`,
//! `commit-aggregate`, `cat` and `wait`.

mod cli_common;

use std::time::{Duration, Instant};

use cli_common::*;
use fedota_store::{LockWait, SelectorId};

#[test]
fn commit_publishes_a_file_as_the_next_global_checkpoint() {
    let tree = Tree::demo();
    let merged = tree.root().join("merged.ckpt");
    std::fs::write(&merged, b"merged by a python script").unwrap();

    let out = tree
        .cmd()
        .args(["commit", "--problem", "p1", "--round", "3", "--json"])
        .arg(&merged)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out, "commit");
    assert_keys(
        &report,
        &[
            "command",
            "schema_version",
            "problem",
            "selector",
            "path",
            "record",
        ],
    );
    assert_eq!(report["record"]["round"], 3);
    assert_eq!(report["record"]["artifact"], "fl_checkpoint");
    assert!(report["record"]["generation"].as_u64().unwrap() > 0);
    assert_eq!(
        report["path"],
        tree.p1("initFiles/fl_checkpoint").display().to_string()
    );

    // The input is copied, not moved, and the library reads the new round verified.
    assert!(merged.exists());
    let problem = tree.store.problem(&tree.problem_id("p1")).unwrap();
    let read = problem
        .read_global_checkpoint_of(3, |r| {
            let mut v = Vec::new();
            std::io::Read::read_to_end(r, &mut v).map(|_| v)
        })
        .unwrap();
    assert_eq!(read.value, b"merged by a python script");
}

#[test]
fn commit_refuses_a_round_that_does_not_move_forward() {
    let tree = Tree::demo();

    let out = tree
        .cmd()
        .args(["commit", "--problem", "p1", "--round", "2", "-"])
        .write_stdin(&b"again round 2"[..])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("does not move past the stored round 2"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(tree.p1("initFiles/fl_checkpoint")).unwrap(),
        b"global checkpoint of round 2"
    );
}

#[test]
fn commit_is_refused_while_a_coordinator_holds_the_lock() {
    let tree = Tree::demo();
    let coordinator = tree
        .store
        .coordinator(&tree.problem_id("p1"), LockWait::Try)
        .unwrap();

    let out = tree
        .cmd()
        .args(["commit", "--problem", "p1", "--round", "3", "-"])
        .write_stdin(&b"round 3"[..])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    assert!(err.contains(".fedota-coordinator.lock"), "{err}");

    // With a lock timeout it waits, and succeeds once the coordinator is gone.
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        drop(coordinator);
    });
    let started = Instant::now();
    let out = tree
        .cmd()
        .args([
            "commit",
            "--problem",
            "p1",
            "--round",
            "3",
            "--lock-timeout",
            "20s",
            "-",
        ])
        .write_stdin(&b"round 3"[..])
        .output()
        .unwrap();
    releaser.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[test]
fn commit_aggregate_writes_the_aggregate_and_its_weight() {
    let tree = Tree::demo();

    let out = tree
        .cmd()
        .args([
            "commit-aggregate",
            "--problem",
            "p1",
            "--selector",
            "s9.selector:50051",
            "--round",
            "2",
            "--weight",
            "640",
            "-",
        ])
        .write_stdin(&b"aggregate of s9"[..])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("weight 640"), "{}", stdout(&out));

    let dir = tree.p1("s9.selector:50051");
    assert_eq!(
        std::fs::read(dir.join("fl_agg_checkpoint")).unwrap(),
        b"aggregate of s9"
    );
    assert_eq!(
        std::fs::read(dir.join("fl_agg_checkpoint_weight")).unwrap(),
        b"640"
    );
    assert!(dir.join("roundFiles").is_dir());
}

#[test]
fn a_weight_the_go_services_cannot_parse_is_a_usage_error() {
    let tree = Tree::demo();

    for weight in ["9223372036854775808", "-1", "12.5"] {
        let out = tree
            .cmd()
            .args(["commit-aggregate", "--problem", "p1", "--selector", S1])
            .args(["--round", "2", "--weight", weight, "-"])
            .write_stdin(&b"x"[..])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{weight}");
    }
    assert_eq!(
        std::fs::read(tree.p1(&format!("{S1}/fl_agg_checkpoint_weight"))).unwrap(),
        b"120"
    );
}

#[test]
fn cat_writes_the_verified_file_to_stdout() {
    let tree = Tree::demo();

    let out = tree
        .cmd()
        .args(["cat", "--problem", "p1", "checkpoint"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(out.stdout, b"global checkpoint of round 2");

    let out = tree
        .cmd()
        .args([
            "cat",
            "--problem",
            "p1",
            "update",
            "--selector",
            S1,
            "--client",
            "2",
        ])
        .args(["--round", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(out.stdout, b"update 2 of round 1");
}

#[test]
fn cat_of_a_corrupt_file_writes_nothing_and_exits_1() {
    let tree = Tree::demo();
    flip_byte(&tree.p1("initFiles/fl_checkpoint"), 5);

    let out = tree
        .cmd()
        .args(["cat", "--problem", "p1", "checkpoint"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "{} bytes reached stdout",
        out.stdout.len()
    );
    assert!(
        stderr(&out).contains("checksum mismatch"),
        "{}",
        stderr(&out)
    );

    // With --output, an existing destination is left as it was.
    let dest = tree.root().join("copy.ckpt");
    std::fs::write(&dest, b"previous copy").unwrap();
    let out = tree
        .cmd()
        .args(["cat", "--problem", "p1", "checkpoint", "--output"])
        .arg(&dest)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read(&dest).unwrap(), b"previous copy");
    let staged: Vec<_> = std::fs::read_dir(tree.root())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".fedota-cat.")
        })
        .collect();
    assert!(staged.is_empty(), "staging files left: {staged:?}");
}

#[test]
fn cat_with_a_round_refuses_another_round() {
    let tree = Tree::demo();
    let dest = tree.root().join("agg");

    let out = tree
        .cmd()
        .args([
            "cat",
            "--problem",
            "p1",
            "aggregate",
            "--selector",
            S2,
            "--round",
            "2",
        ])
        .arg("--output")
        .arg(&dest)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("from round 1, not round 2"),
        "{}",
        stderr(&out)
    );
    assert!(!dest.exists());

    let out = tree
        .cmd()
        .args([
            "cat",
            "--problem",
            "p1",
            "aggregate",
            "--selector",
            S2,
            "--round",
            "1",
        ])
        .arg("--output")
        .arg(&dest)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read(&dest).unwrap(), b"aggregate of s2, round 1");
    let report = json(&out, "cat");
    assert_keys(
        &report,
        &[
            "command",
            "schema_version",
            "problem",
            "artifact",
            "source",
            "output",
            "size",
            "round",
            "weight",
            "verified",
        ],
    );
    assert_eq!(report["weight"], 80);
    assert_eq!(report["round"], 1);
    assert_eq!(report["verified"], true);
}

#[test]
fn cat_needs_a_selector_for_an_aggregate_and_json_needs_an_output() {
    let tree = Tree::demo();

    let out = tree
        .cmd()
        .args(["cat", "--problem", "p1", "aggregate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--selector"), "{}", stderr(&out));

    let out = tree
        .cmd()
        .args(["cat", "--problem", "p1", "model", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--output"), "{}", stderr(&out));
}

#[test]
fn wait_returns_when_the_round_arrives_and_exits_1_on_timeout() {
    let tree = Tree::demo();
    let p1 = tree.problem_id("p1");

    let out = tree
        .cmd()
        .args([
            "wait",
            "--problem",
            "p1",
            "--round",
            "3",
            "--timeout",
            "300ms",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("still at round 2"),
        "{}",
        stderr(&out)
    );

    let store = tree.store.clone();
    let committer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let coordinator = store.coordinator(&p1, LockWait::Try).unwrap();
        coordinator
            .commit_global_checkpoint(3, &mut &b"round 3"[..])
            .unwrap();
    });
    let out = tree
        .cmd()
        .args([
            "wait",
            "--problem",
            "p1",
            "--round",
            "3",
            "--timeout",
            "20s",
            "--json",
        ])
        .output()
        .unwrap();
    committer.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out, "wait");
    assert_keys(
        &report,
        &[
            "command",
            "schema_version",
            "problem",
            "round",
            "global_round",
            "selectors",
        ],
    );
    assert_eq!(report["global_round"], 3);
}

#[test]
fn wait_for_aggregates_names_the_ready_selectors() {
    let tree = Tree::demo();
    let p1 = tree.problem_id("p1");
    let s2 = tree
        .store
        .selector(&p1, &SelectorId::new(S2).unwrap())
        .unwrap();
    s2.commit_aggregate(2, 81, &mut &b"s2 round 2"[..]).unwrap();

    let out = tree
        .cmd()
        .args([
            "wait",
            "--problem",
            "p1",
            "--round",
            "2",
            "--aggregates",
            "1",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out, "wait")["selectors"], serde_json::json!([S2]));

    let out = tree
        .cmd()
        .args([
            "wait",
            "--problem",
            "p1",
            "--round",
            "2",
            "--aggregates",
            "2",
        ])
        .args(["--timeout", "200ms"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(S1), "{}", stderr(&out));
}

#[test]
fn cat_writes_into_a_symlinked_output_instead_of_replacing_the_link() {
    // The same path is taken for /dev/null and FIFOs: a special file is written into,
    // never renamed over (which once turned /dev/null into a regular file).
    let tree = Tree::demo();
    let target = tree.root().join("real-destination");
    std::fs::write(&target, b"old").unwrap();
    let link = tree.root().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();

    let out = tree
        .cmd()
        .args([
            "cat",
            "--problem",
            "p1",
            "aggregate",
            "--selector",
            S2,
            "--output",
        ])
        .arg(&link)
        .output()
        .unwrap();

    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let link_meta = std::fs::symlink_metadata(&link).unwrap();
    assert!(
        link_meta.file_type().is_symlink(),
        "the link itself was replaced"
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"aggregate of s2, round 1");
}

#[test]
fn a_directory_to_commit_is_refused_by_name_and_nothing_is_created() {
    let tree = Tree::demo();
    let dir = tempfile::tempdir().unwrap();

    let out = tree
        .cmd()
        .args(["commit", "--problem", "p1", "--round", "3"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "open the checkpoint to commit {}: it is a directory",
            dir.path().display()
        )),
        "{err}"
    );
    assert!(!err.contains(".fedota-tmp"), "{err}");

    // A new selector's directory is not created for an input that cannot be read.
    let out = tree
        .cmd()
        .args(["commit-aggregate", "--problem", "p1", "--selector", "s9"])
        .args(["--round", "2", "--weight", "1"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&dir.path().display().to_string()),
        "{}",
        stderr(&out)
    );
    assert!(!tree.p1("s9").exists());
}

#[cfg(target_os = "linux")]
#[test]
fn an_input_that_cannot_be_read_is_named_in_the_error() {
    // Reading /proc/self/mem from its start fails with EIO.
    let tree = Tree::demo();

    let out = tree
        .cmd()
        .args([
            "commit",
            "--problem",
            "p1",
            "--round",
            "3",
            "/proc/self/mem",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("read the checkpoint to commit from /proc/self/mem: "),
        "{err}"
    );
    assert_eq!(
        std::fs::read(tree.p1("initFiles/fl_checkpoint")).unwrap(),
        b"global checkpoint of round 2"
    );
}

#[cfg(unix)]
#[test]
fn cat_output_keeps_an_existing_files_mode_and_gives_a_new_one_the_umasks() {
    use std::os::unix::fs::PermissionsExt;

    let tree = Tree::demo();
    let root = tree.root().to_str().unwrap();
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;

    let existing = tree.root().join("existing.ckpt");
    std::fs::write(&existing, b"old").unwrap();
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o644)).unwrap();
    let fresh = tree.root().join("fresh.ckpt");

    for path in [&existing, &fresh] {
        let args = [
            "--root",
            root,
            "cat",
            "--problem",
            "p1",
            "checkpoint",
            "--output",
            path.to_str().unwrap(),
        ];
        let out = sh(r#"umask 027; exec "$0" "$@""#, &args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(
            std::fs::read(path).unwrap(),
            b"global checkpoint of round 2"
        );
    }
    assert_eq!(mode(&existing), 0o644);
    assert_eq!(mode(&fresh), 0o640);
}
