//! `fedota-store init`, and the errors every verb shares: a root that does not
//! exist, an invalid id, and `$FEDOTA_ROOT`.

mod cli_common;

use cli_common::*;
use fedota_store::ArtifactKind;

#[test]
fn init_creates_a_problem_whose_files_read_back_verified() {
    let tree = Tree::empty();
    let model = tree.root().join("upload-model.h5");
    let checkpoint = tree.root().join("upload-ckpt");
    std::fs::write(&model, MODEL).unwrap();
    std::fs::write(&checkpoint, GLOBAL_0).unwrap();

    let out = tree
        .cmd()
        .args(["init", "--problem", "p1", "--model"])
        .arg(&model)
        .arg("--checkpoint")
        .arg(&checkpoint)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("created problem p1"),
        "{}",
        stdout(&out)
    );

    let problem = tree.store.problem(&tree.problem_id("p1")).unwrap();
    assert_eq!(problem.global_round().unwrap(), 0);
    let read = |kind| {
        problem
            .read_artifact(&problem.artifact(kind), |r| {
                let mut v = Vec::new();
                std::io::Read::read_to_end(r, &mut v).map(|_| v)
            })
            .unwrap()
    };
    let model_back = read(ArtifactKind::Model);
    assert!(model_back.is_verified());
    assert_eq!(model_back.value, MODEL);
    assert_eq!(read(ArtifactKind::GlobalCheckpoint).value, GLOBAL_0);
}

#[test]
fn init_without_a_checkpoint_starts_from_an_empty_round_0() {
    let tree = Tree::empty();
    let out = tree
        .cmd()
        .args(["init", "--problem", "p1", "--model", "-", "--json"])
        .write_stdin(MODEL)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let report = json(&out, "init");
    assert_keys(
        &report,
        &[
            "command",
            "schema_version",
            "problem",
            "dir",
            "model",
            "checkpoint",
        ],
    );
    assert_eq!(report["problem"], "p1");
    assert_eq!(report["model"]["size"], MODEL.len());
    assert_eq!(report["model"]["artifact"], "model.h5");
    assert_eq!(report["checkpoint"]["size"], 0);
    assert_eq!(report["checkpoint"]["round"], 0);
    assert_eq!(
        std::fs::read(tree.p1("initFiles/fl_checkpoint")).unwrap(),
        b""
    );
}

#[test]
fn init_refuses_an_existing_problem_unless_forced() {
    let tree = Tree::demo();
    let model = tree.root().join("new-model");
    std::fs::write(&model, b"new model").unwrap();

    let out = tree
        .cmd()
        .args(["init", "--problem", "p1", "--model"])
        .arg(&model)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let dir = tree.root().join("p1").display().to_string();
    assert!(
        stderr(&out).contains(&format!("{dir}:")),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(tree.p1("initFiles/model.h5")).unwrap(), MODEL);

    let out = tree
        .cmd()
        .args(["init", "--force", "--problem", "p1", "--model"])
        .arg(&model)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let problem = tree.store.problem(&tree.problem_id("p1")).unwrap();
    assert_eq!(problem.global_round().unwrap(), 0);
    assert_eq!(
        std::fs::read(tree.p1("initFiles/model.h5")).unwrap(),
        b"new model"
    );
}

#[test]
fn a_missing_model_file_is_an_io_error_naming_it() {
    let tree = Tree::empty();
    let missing = tree.root().join("no-such-model.h5");

    let out = tree
        .cmd()
        .args(["init", "--problem", "p1", "--model"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&missing.display().to_string()),
        "{}",
        stderr(&out)
    );
    assert!(!tree.root().join("p1").exists());
}

#[test]
fn every_verb_refuses_a_root_that_does_not_exist_and_names_it() {
    let tree = Tree::empty();
    let missing = tree.root().join("not-a-root");
    let model = tree.root().join("m");
    std::fs::write(&model, MODEL).unwrap();
    let model = model.display().to_string();

    for args in [
        vec!["status"],
        vec!["verify"],
        vec!["gc"],
        vec!["doctor"],
        vec!["init", "--problem", "p1", "--model", &model],
        vec!["commit", "--problem", "p1", "--round", "1", &model],
        vec![
            "commit-aggregate",
            "--problem",
            "p1",
            "--selector",
            "s",
            "--round",
            "1",
            "--weight",
            "1",
            &model,
        ],
        vec!["cat", "--problem", "p1", "model"],
        vec!["wait", "--problem", "p1", "--round", "1", "--timeout", "1s"],
    ] {
        let out = fedota()
            .arg("--root")
            .arg(&missing)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&missing.display().to_string()),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn an_error_with_json_is_reported_on_stdout_too() {
    let tree = Tree::empty();
    let missing = tree.root().join("not-a-root");

    let out = fedota()
        .arg("--root")
        .arg(&missing)
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let report = json(&out, "status");
    assert_keys(&report["error"], &["message", "path", "exit_code"]);
    assert_eq!(report["error"]["path"], missing.display().to_string());
    assert_eq!(report["error"]["exit_code"], 2);
}

#[test]
fn an_invalid_problem_id_is_a_usage_error() {
    let tree = Tree::demo();
    let out = tree
        .cmd()
        .args(["status", "--problem", "../etc"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("../etc"), "{}", stderr(&out));
}

#[test]
fn the_root_comes_from_fedota_root_when_no_flag_is_given() {
    let tree = Tree::demo();

    let out = fedota()
        .env("FEDOTA_ROOT", tree.root())
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        json(&out, "status")["root"],
        tree.root().display().to_string()
    );

    // The flag wins over the variable.
    let out = fedota()
        .env("FEDOTA_ROOT", "/no/such/root")
        .arg("--root")
        .arg(tree.root())
        .args(["status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn init_refuses_an_empty_model_and_creates_nothing() {
    let tree = Tree::empty();
    let empty = tree.root().join("empty.h5");
    std::fs::write(&empty, b"").unwrap();

    let out = tree
        .cmd()
        .args(["init", "--problem", "p1", "--model"])
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains(&empty.display().to_string()), "{err}");
    assert!(err.contains("it is empty"), "{err}");
    assert!(!tree.root().join("p1").exists());

    // So is an empty stdin, and a closed one, which reads as /dev/null.
    let out = tree
        .cmd()
        .args(["init", "--problem", "p1", "--model", "-"])
        .write_stdin(&b""[..])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("<stdin>: it is empty"),
        "{}",
        stderr(&out)
    );

    let root = tree.root().to_str().unwrap();
    let out = sh(
        r#"exec "$0" "$@" <&-"#,
        &["--root", root, "init", "--problem", "p1", "--model", "-"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("<stdin>: it is empty"),
        "{}",
        stderr(&out)
    );
    assert!(!tree.root().join("p1").exists());
}

#[test]
fn init_refuses_a_directory_as_its_checkpoint_before_creating_anything() {
    let tree = Tree::empty();
    let model = tree.root().join("model.h5");
    std::fs::write(&model, MODEL).unwrap();
    let dir = tempfile::tempdir().unwrap();

    let out = tree
        .cmd()
        .args(["init", "--problem", "p1", "--model"])
        .arg(&model)
        .arg("--checkpoint")
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
    assert!(!tree.root().join("p1").exists());
}

#[test]
fn without_root_or_fedota_root_the_root_is_data() {
    // Whether or not this machine has a /data, the report or the error names it.
    let problem = format!("no-such-problem-{}", std::process::id());
    let out = fedota()
        .args(["verify", "--problem", &problem, "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let path = json(&out, "verify")["error"]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        path == "/data" || path == format!("/data/{problem}/initFiles"),
        "{path}"
    );
    assert!(stderr(&out).contains("/data"), "{}", stderr(&out));
}

#[test]
fn a_usage_error_with_json_prints_the_error_envelope() {
    let tree = Tree::demo();

    let out = tree
        .cmd()
        .args(["gc", "--older-than", "banana", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let report = json(&out, "gc");
    assert_keys(&report, &["command", "schema_version", "error"]);
    assert_keys(&report["error"], &["message", "path", "exit_code"]);
    assert!(report["error"]["path"].is_null());
    assert_eq!(report["error"]["exit_code"], 2);
    let message = report["error"]["message"].as_str().unwrap();
    assert!(message.contains("--older-than"), "{message}");
    assert!(stderr(&out).contains("banana"), "{}", stderr(&out));

    // Without --json, stdout stays empty.
    let out = tree
        .cmd()
        .args(["gc", "--older-than", "banana"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[cfg(target_os = "linux")]
#[test]
fn an_unwritable_stderr_does_not_turn_an_error_into_a_panic() {
    // Writes to /dev/full fail with ENOSPC; a closed stderr would not show this, as
    // Rust's runtime reopens it on /dev/null.
    let tree = Tree::empty();
    let missing = tree.root().join("not-a-root");

    let root = tree.root().to_str().unwrap();
    for args in [
        vec!["--root", missing.to_str().unwrap(), "status"],
        vec!["--root", root, "gc", "--older-than", "banana"],
    ] {
        let out = sh(r#"exec "$0" "$@" 2>/dev/full"#, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[cfg(unix)]
#[test]
fn a_report_that_cannot_be_json_gives_only_the_error_envelope() {
    use std::os::unix::ffi::OsStrExt;

    let tree = Tree::empty();
    let root = tree
        .root()
        .join(std::ffi::OsStr::from_bytes(b"not-utf8-\xff"));
    std::fs::create_dir(&root).unwrap();

    let out = fedota()
        .arg("--root")
        .arg(&root)
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // One JSON object, the error: nothing of the report before it.
    let report = json(&out, "status");
    assert_keys(&report, &["command", "schema_version", "error"]);
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .contains("UTF-8"),
        "{report:#}"
    );
}
