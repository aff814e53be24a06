//! `fedota-store doctor`, on the local disk this machine has, and `doctor --peer`
//! with two processes on this one machine. (The mount judgements on NFS, such as
//! `nolock`, are unit-tested on sample mountinfo lines in `src/mount/tests.rs`.)

mod cli_common;

use std::process::Stdio;
use std::time::Duration;

use cli_common::*;
use serde_json::Value;

/// The finding `check` of a doctor report.
fn finding<'a>(report: &'a Value, check: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == check)
        .unwrap_or_else(|| panic!("no {check} finding in {report:#}"))
}

/// The names of the entries of the root, dot-files included.
fn entries(tree: &Tree) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(tree.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn doctor_passes_every_probe_on_the_local_disk_and_cleans_up() {
    let tree = Tree::demo();
    let before = entries(&tree);

    let out = tree.cmd().args(["doctor", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let report = json(&out, "doctor");
    assert_keys(
        &report,
        &[
            "command",
            "schema_version",
            "root",
            "mount",
            "findings",
            "summary",
        ],
    );
    assert_keys(&report["summary"], &["pass", "warn", "fail"]);
    assert_keys(
        &report["mount"],
        &[
            "mount_point",
            "fs_type",
            "source",
            "mount_options",
            "super_options",
        ],
    );

    for check in [
        "create-exclusive",
        "write-fsync",
        "rename-over",
        "fsync-directory",
        "lock-conflict",
        "clock",
    ] {
        let f = finding(&report, check);
        assert_keys(f, &["check", "severity", "summary", "reason", "fix"]);
        assert_eq!(f["severity"], "pass", "{f:#}");
    }
    assert_eq!(report["summary"]["fail"], 0);

    // The scratch directory is gone, and nothing else changed.
    assert_eq!(entries(&tree), before);
}

#[test]
fn doctor_reports_the_mount_of_the_root() {
    let tree = Tree::empty();
    let canonical = std::fs::canonicalize(tree.root()).unwrap();

    let out = tree.cmd().args(["doctor", "--json"]).output().unwrap();
    let report = json(&out, "doctor");
    let mount_point = report["mount"]["mount_point"].as_str().unwrap();
    assert!(canonical.starts_with(mount_point), "{mount_point}");
    assert!(!report["mount"]["fs_type"].as_str().unwrap().is_empty());
    assert_eq!(
        finding(&report, "filesystem")["summary"]
            .as_str()
            .unwrap()
            .split(' ')
            .next(),
        report["mount"]["fs_type"].as_str()
    );

    let text = stdout(&tree.cmd().arg("doctor").output().unwrap());
    assert!(text.contains("PASS  lock-conflict"), "{text}");
    assert!(text.contains("0 fail"), "{text}");
}

#[test]
fn doctor_refuses_a_root_that_is_a_file_and_names_it() {
    let tree = Tree::empty();
    let file = tree.root().join("a-file");
    std::fs::write(&file, b"").unwrap();

    let out = fedota()
        .arg("--root")
        .arg(&file)
        .arg("doctor")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&file.display().to_string()),
        "{}",
        stderr(&out)
    );
}

/// `fedota-store --root <tree> doctor --peer --json ...`, started in the background.
fn spawn_peer(tree: &Tree, timeout: &str) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_fedota-store"))
        .arg("--root")
        .arg(tree.root())
        .args(["doctor", "--peer", "--timeout", timeout, "--json"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn doctor_peer_proves_each_lock_blocks_the_other_process() {
    let tree = Tree::demo();

    let first = spawn_peer(&tree, "30s");
    std::thread::sleep(Duration::from_millis(300));
    let second = spawn_peer(&tree, "30s");
    let ids = [first.id(), second.id()];
    let outputs = [first, second].map(|child| child.wait_with_output().unwrap());

    let mut went_first = Vec::new();
    for (i, out) in outputs.iter().enumerate() {
        // Two processes on one host: a warning (proves nothing across nodes), no fail.
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}\n{}",
            stdout(out),
            stderr(out)
        );
        let report = json(out, "doctor");

        for check in [
            "peer-rendezvous",
            "peer-lock-held-here",
            "peer-lock-held-there",
            "peer-lock-handover",
        ] {
            assert_eq!(finding(&report, check)["severity"], "pass", "{report:#}");
        }
        assert_eq!(finding(&report, "peer-host")["severity"], "warn");

        // Each met the other process.
        let met = finding(&report, "peer-rendezvous")["summary"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            met.starts_with(&format!("met pid {} on", ids[1 - i])),
            "{met}"
        );
        went_first.push(met.ends_with("locks first"));
    }
    assert_eq!(
        went_first.iter().filter(|f| **f).count(),
        1,
        "{went_first:?}"
    );

    // The rendezvous directory is cleaned up.
    assert!(!tree.root().join(".fedota-doctor-peer").exists());
}

#[test]
fn doctor_peer_alone_fails_after_the_timeout() {
    let tree = Tree::demo();

    let out = spawn_peer(&tree, "1s").wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let report = json(&out, "doctor");
    let rendezvous = finding(&report, "peer-rendezvous");
    assert_eq!(rendezvous["severity"], "fail");
    assert!(
        rendezvous["summary"]
            .as_str()
            .unwrap()
            .contains("no peer appeared"),
        "{rendezvous:#}"
    );
    assert!(
        stderr(&out).contains("waiting up to 1s"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_third_peer_is_turned_away() {
    let tree = Tree::demo();

    // Two hellos already waiting (as from two doctors): a third cannot pair.
    let dir = tree.root().join(".fedota-doctor-peer");
    std::fs::create_dir(&dir).unwrap();
    for (id, pid) in [
        ("00000000000000000000000000000001", 11),
        ("ffffffffffffffffffffffffffffffff", 12),
    ] {
        let hello = format!(r#"{{"id":"{id}","host":"node-x","pid":{pid},"started":"now"}}"#);
        std::fs::write(dir.join(format!("hello.{id}")), hello).unwrap();
    }

    let out = spawn_peer(&tree, "5s").wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let report = json(&out, "doctor");
    let summary = finding(&report, "peer-rendezvous")["summary"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(summary.contains("more than one other"), "{summary}");
    assert!(summary.contains("pid 11 on node-x") && summary.contains("pid 12 on node-x"));
}
