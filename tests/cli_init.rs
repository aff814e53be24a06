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
