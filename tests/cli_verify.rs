//! `fedota-store verify`.

mod cli_common;

use cli_common::*;
use fedota_store::{LockWait, SelectorId};

#[test]
fn a_sound_tree_verifies_with_exit_0() {
    let tree = Tree::demo();

    let out = tree.cmd().arg("verify").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("verify: ok: 6 files"), "{text}");
    assert!(text.contains("0 problems"), "{text}");
}

#[test]
fn a_flipped_byte_in_fl_checkpoint_exits_1_and_names_the_file() {
    let tree = Tree::demo();
    let checkpoint = tree.p1("initFiles/fl_checkpoint");
    flip_byte(&checkpoint, 3);

    let out = tree.cmd().arg("verify").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("corrupt     {}", checkpoint.display())),
        "{text}"
    );
    assert!(text.contains("checksum mismatch"), "{text}");
    assert!(text.contains("1 problem,"), "{text}");
}

#[test]
fn verify_json_has_the_documented_fields_and_the_corrupt_file() {
    let tree = Tree::demo();
    let checkpoint = tree.p1("initFiles/fl_checkpoint");
    flip_byte(&checkpoint, 0);

    let out = tree.cmd().args(["verify", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out, "verify");
    assert_keys(
        &report,
        &["command", "schema_version", "root", "problems", "summary"],
    );
    assert_keys(
        &report["summary"],
        &["files", "bytes", "problems", "warnings", "errors"],
    );
    assert_eq!(report["summary"]["files"], 6);
    assert_eq!(report["summary"]["problems"], 1);

    let p = &report["problems"][0];
    assert_keys(p, &["problem", "round", "files", "errors"]);
    assert_eq!(p["round"], 2);
    let files = p["files"].as_array().unwrap();
    for f in files {
        assert_keys(f, FILE_KEYS);
    }
    let corrupt: Vec<_> = files.iter().filter(|f| f["state"] != "ok").collect();
    assert_eq!(corrupt.len(), 1, "{files:#?}");
    assert_eq!(corrupt[0]["state"], "corrupt");
    assert_eq!(corrupt[0]["artifact"], "checkpoint");
    assert_eq!(corrupt[0]["path"], checkpoint.display().to_string());
    assert_eq!(corrupt[0]["round"], 2);
}

#[test]
fn a_weight_file_with_text_in_it_is_a_bad_weight() {
    let tree = Tree::demo();
    let weight = tree.p1(&format!("{S1}/roundFiles/checkpoint_weight_2"));
    std::fs::write(&weight, b"60\n").unwrap();

    let out = tree.cmd().args(["verify", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let files = json(&out, "verify")["problems"][0]["files"].clone();
    let bad: Vec<_> = files
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["state"] != "ok")
        .collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0]["state"], "bad-weight");
    assert_eq!(bad[0]["artifact"], "update");
    assert_eq!(bad[0]["client"], 2);
    assert_eq!(bad[0]["error_path"], weight.display().to_string());
}

#[test]
fn a_truncated_file_is_torn_and_a_deleted_one_missing() {
    let tree = Tree::demo();
    let aggregate = tree.p1(&format!("{S2}/fl_agg_checkpoint"));
    let update = tree.p1(&format!("{S1}/roundFiles/checkpoint_1"));
    std::fs::write(&aggregate, b"aggr").unwrap();
    std::fs::remove_file(&update).unwrap();

    let out = tree.cmd().args(["verify", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out, "verify");
    let state_of = |path: &std::path::Path| {
        report["problems"][0]["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == path.display().to_string())
            .map(|f| f["state"].clone())
    };
    assert_eq!(state_of(&aggregate).unwrap(), "torn");
    assert_eq!(state_of(&update).unwrap(), "missing");
    assert_eq!(report["summary"]["problems"], 2);
}

#[test]
fn a_weight_from_another_commit_is_mismatched() {
    let tree = Tree::demo();
    std::fs::write(tree.p1(&format!("{S1}/fl_agg_checkpoint_weight")), b"121").unwrap();

    let out = tree.cmd().arg("verify").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("mismatched"), "{}", stdout(&out));
}

#[test]
fn legacy_files_and_stale_aggregates_are_warnings_not_problems() {
    let tree = Tree::demo();
    let p1 = tree.problem_id("p1");

    // An older service wrote s3's aggregate: no record.
    let s3 = tree.p1("s3.selector:50051");
    std::fs::create_dir_all(s3.join("roundFiles")).unwrap();
    std::fs::write(s3.join("fl_agg_checkpoint"), b"legacy aggregate").unwrap();
    std::fs::write(s3.join("fl_agg_checkpoint_weight"), b"10").unwrap();

    // Move the global checkpoint two rounds past s2's aggregate of round 1, while s1
    // keeps up.
    let coordinator = tree.store.coordinator(&p1, LockWait::Try).unwrap();
    coordinator
        .commit_global_checkpoint(3, &mut &b"round 3"[..])
        .unwrap();
    drop(coordinator);
    let s1 = tree
        .store
        .selector(&p1, &SelectorId::new(S1).unwrap())
        .unwrap();
    s1.commit_aggregate(3, 100, &mut &b"s1 round 3"[..])
        .unwrap();

    let out = tree.cmd().args(["verify", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let report = json(&out, "verify");
    let files = report["problems"][0]["files"].as_array().unwrap();
    let aggregate = |selector: &str| {
        files
            .iter()
            .find(|f| f["artifact"] == "aggregate" && f["selector"] == selector)
            .unwrap()
    };
    assert_eq!(aggregate(S1)["stale"], false);
    assert_eq!(aggregate(S2)["stale"], true);
    assert_eq!(aggregate("s3.selector:50051")["state"], "legacy");
    assert_eq!(report["summary"]["problems"], 0);

    // s2's aggregate, s1's two client updates of round 1, and the legacy file.
    assert_eq!(report["summary"]["warnings"], 4);

    let text = stdout(&tree.cmd().arg("verify").output().unwrap());
    assert!(text.contains("stale"), "{text}");
    assert!(text.contains("legacy"), "{text}");
    assert!(text.contains("verify: ok"), "{text}");
}

#[test]
fn a_missing_global_checkpoint_is_a_problem() {
    let tree = Tree::demo();
    std::fs::remove_file(tree.p1("initFiles/fl_checkpoint")).unwrap();
    std::fs::remove_file(tree.p1("initFiles/.fedota-commit.fl_checkpoint")).unwrap();

    let out = tree.cmd().arg("verify").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("missing"), "{}", stdout(&out));
}

#[test]
fn verify_of_one_problem_checks_only_that_one() {
    let tree = Tree::demo();
    tree.store
        .create_problem(
            &tree.problem_id("p2"),
            &mut &MODEL[..],
            &mut &GLOBAL_0[..],
            Default::default(),
        )
        .unwrap();
    flip_byte(&tree.p1("initFiles/model.h5"), 1);

    let out = tree
        .cmd()
        .args(["verify", "--problem", "p2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = tree.cmd().arg("verify").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
}

#[cfg(target_os = "linux")]
#[test]
fn an_unwritable_stderr_does_not_crash_the_librarys_warnings() {
    // A corrupt file makes the library log a warning, which cannot be written to
    // /dev/full: verify still reports and exits 1.
    let tree = Tree::demo();
    flip_byte(&tree.p1("initFiles/fl_checkpoint"), 3);
    let root = tree.root().to_str().unwrap();

    let out = sh(
        r#"exec "$0" "$@" 2>/dev/full"#,
        &["--root", root, "verify", "--read-attempts", "1"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("corrupt"), "{}", stdout(&out));
}

#[test]
fn a_lost_commit_record_of_the_model_is_missing_in_a_tree_fedota_store_made() {
    let tree = Tree::demo();
    let record = tree.p1("initFiles/.fedota-commit.model.h5");
    std::fs::remove_file(&record).unwrap();

    let out = tree.cmd().args(["verify", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let report = json(&out, "verify");
    let model = &report["problems"][0]["files"][0];
    assert_eq!(model["artifact"], "model");
    assert_eq!(model["state"], "missing", "{model:#}");
    assert_eq!(model["error_path"], record.display().to_string());
    assert!(
        model["error"]
            .as_str()
            .unwrap()
            .contains("the commit record is gone"),
        "{model:#}"
    );

    // Without the layout marker, the tree is the older services': legacy, exit 0.
    std::fs::remove_file(tree.p1("initFiles/.fedota-layout")).unwrap();
    let out = tree.cmd().args(["verify", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(
        json(&out, "verify")["problems"][0]["files"][0]["state"],
        "legacy"
    );
}

#[test]
fn verify_goes_on_past_a_selector_it_cannot_list_and_exits_2() {
    let tree = Tree::demo();
    tree.add_problem("p2");
    let round_files = tree.break_round_files_of_s2();

    let out = tree.cmd().args(["verify", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let report = json(&out, "verify");

    // Everything else in p1 and all of p2 was checked.
    let p1 = &report["problems"][0];
    assert_eq!(p1["files"].as_array().unwrap().len(), 6);
    assert_eq!(p1["errors"][0]["selector"], S2);
    assert_eq!(p1["errors"][0]["path"], round_files.display().to_string());
    assert_eq!(report["problems"][1]["files"].as_array().unwrap().len(), 2);
    assert_eq!(report["summary"]["errors"], 1);
    assert_eq!(report["summary"]["problems"], 0);

    let text = stdout(&tree.cmd().arg("verify").output().unwrap());
    assert!(text.contains("verify: FAILED"), "{text}");
}

#[test]
fn read_attempts_sets_how_often_a_damaged_file_is_read() {
    let tree = Tree::demo();
    flip_byte(&tree.p1("initFiles/model.h5"), 2);

    let out = tree
        .cmd()
        .args(["verify", "--read-attempts", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("(read 1 time)"), "{}", stdout(&out));

    let out = tree
        .cmd()
        .args(["verify", "--read-attempts", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
