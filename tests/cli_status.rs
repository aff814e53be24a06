//! `fedota-store status`.

mod cli_common;

use std::time::Duration;

use cli_common::*;
use fedota_store::LockWait;

#[test]
fn status_shows_round_lock_files_selectors_and_leftovers() {
    let tree = Tree::demo();
    let leftover = tree.p1("initFiles/.fedota-tmp.fl_checkpoint.somehost.99.abcdef");
    std::fs::write(&leftover, b"half a checkpoint").unwrap();
    age_file(&leftover, Duration::from_secs(30 * 60));

    let out = tree.cmd().args(["status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);

    assert!(text.contains("problem p1"), "{text}");
    assert!(text.contains("round        2"), "{text}");
    assert!(text.contains("lock         free"), "{text}");
    assert!(text.contains(S1) && text.contains(S2), "{text}");
    assert!(
        text.contains("weight 120") && text.contains("weight 80"),
        "{text}"
    );
    assert!(text.contains("2 client updates"), "{text}");
    assert!(text.contains(&leftover.display().to_string()), "{text}");
}

#[test]
fn status_json_has_the_documented_fields() {
    let tree = Tree::demo();

    let out = tree.cmd().args(["status", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out, "status");
    assert_keys(&report, &["command", "schema_version", "root", "problems"]);

    let p = &report["problems"][0];
    assert_keys(
        p,
        &[
            "problem",
            "dir",
            "layout_version",
            "round",
            "lock",
            "model",
            "checkpoint",
            "selectors",
            "temporaries",
            "errors",
        ],
    );
    assert_eq!(p["problem"], "p1");
    assert_eq!(p["round"], 2);
    assert_eq!(p["layout_version"], 1);
    assert_eq!(p["lock"]["state"], "free");
    assert!(p["lock"]["holder"].is_null());

    assert_keys(&p["checkpoint"], FILE_KEYS);
    assert_eq!(p["checkpoint"]["state"], "ok");
    assert_eq!(p["checkpoint"]["round"], 2);
    assert_eq!(
        p["checkpoint"]["size"],
        b"global checkpoint of round 2".len()
    );
    assert_eq!(p["model"]["state"], "ok");
    assert_eq!(p["model"]["round"], 0);

    let selectors = p["selectors"].as_array().unwrap();
    assert_eq!(selectors.len(), 2);
    assert_keys(&selectors[0], &["selector", "aggregate", "round_files"]);
    assert_eq!(selectors[0]["selector"], S1);
    assert_eq!(selectors[0]["aggregate"]["weight"], 120);
    assert_eq!(selectors[0]["aggregate"]["round"], 1);
    assert_eq!(selectors[0]["aggregate"]["stale"], false);
    assert_eq!(selectors[0]["round_files"], 2);
    assert_eq!(selectors[1]["round_files"], 0);
    assert_eq!(p["temporaries"].as_array().unwrap().len(), 0);
    assert_eq!(p["errors"].as_array().unwrap().len(), 0);
}

#[test]
fn status_names_the_lock_holder() {
    let tree = Tree::demo();
    let coordinator = tree
        .store
        .coordinator(&tree.problem_id("p1"), LockWait::Try)
        .unwrap();

    let out = tree.cmd().args(["status", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lock = &json(&out, "status")["problems"][0]["lock"];
    assert_eq!(lock["state"], "held");
    assert_keys(
        &lock["holder"],
        &["host", "pid", "since", "generation", "role"],
    );
    assert_eq!(lock["holder"]["pid"], std::process::id());
    assert_eq!(lock["holder"]["role"], "coordinator");
    assert_eq!(lock["holder"]["generation"], coordinator.generation());

    let text = stdout(&tree.cmd().arg("status").output().unwrap());
    assert!(
        text.contains(&format!("held by coordinator pid {}", std::process::id())),
        "{text}"
    );

    drop(coordinator);
    let text = stdout(&tree.cmd().arg("status").output().unwrap());
    assert!(text.contains("lock         free"), "{text}");
}

#[test]
fn status_of_an_unknown_problem_is_an_io_error_naming_its_path() {
    let tree = Tree::demo();

    let out = tree
        .cmd()
        .args(["status", "--problem", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let expected = tree.root().join("nope").join("initFiles");
    assert!(
        stderr(&out).contains(&expected.display().to_string()),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_weight_file_with_text_in_it_makes_status_exit_1_and_name_it() {
    let tree = Tree::demo();
    let weight = tree.p1(&format!("{S2}/fl_agg_checkpoint_weight"));
    std::fs::write(&weight, b"eighty").unwrap();

    let out = tree.cmd().args(["status", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let aggregate = &json(&out, "status")["problems"][0]["selectors"][1]["aggregate"];
    assert_eq!(aggregate["state"], "bad-weight");
    assert_eq!(aggregate["error_path"], weight.display().to_string());
    assert!(aggregate["error"].as_str().unwrap().contains("eighty"));
}

#[test]
fn a_selector_without_an_aggregate_yet_is_absent_not_a_problem() {
    let tree = Tree::demo();
    std::fs::create_dir_all(tree.p1("s3.selector:50051/roundFiles")).unwrap();

    let out = tree.cmd().args(["status", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let selectors = &json(&out, "status")["problems"][0]["selectors"];
    assert_eq!(selectors[2]["selector"], "s3.selector:50051");
    assert_eq!(selectors[2]["aggregate"]["state"], "absent");
}

#[test]
fn status_of_an_empty_root_says_so() {
    let tree = Tree::empty();
    let out = tree.cmd().arg("status").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("no problems under"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_flipped_byte_in_fl_checkpoint_makes_status_exit_1_and_say_corrupt() {
    let tree = Tree::demo();
    let checkpoint = tree.p1("initFiles/fl_checkpoint");
    flip_byte(&checkpoint, 3);

    let out = tree.cmd().args(["status", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let file = &json(&out, "status")["problems"][0]["checkpoint"];
    assert_eq!(file["state"], "corrupt", "{file:#}");
    assert_eq!(file["path"], checkpoint.display().to_string());
    assert!(
        file["error"]
            .as_str()
            .unwrap()
            .contains("checksum mismatch"),
        "{file:#}"
    );

    let text = stdout(&tree.cmd().arg("status").output().unwrap());
    assert!(text.contains("checkpoint   corrupt"), "{text}");
}

#[test]
fn a_problem_status_cannot_read_is_reported_and_the_others_still_shown() {
    let tree = Tree::demo();
    tree.add_problem("p2");
    let round_files = tree.break_round_files_of_s2();

    let out = tree.cmd().args(["status", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let report = json(&out, "status");
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2);

    // p1 is shown as far as it can be read, with the error against its selector.
    let p1 = &problems[0];
    assert_eq!(p1["model"]["state"], "ok");
    assert_eq!(p1["selectors"][0]["round_files"], 2);
    assert!(p1["selectors"][1]["round_files"].is_null());
    let errors = p1["errors"].as_array().unwrap();
    let listing = errors
        .iter()
        .find(|e| e["selector"] == S2)
        .unwrap_or_else(|| panic!("no error for {S2}: {errors:#?}"));
    assert_keys(listing, &["problem", "selector", "path", "error"]);
    assert_eq!(listing["path"], round_files.display().to_string());

    // p2 is untouched by p1's trouble.
    assert_eq!(problems[1]["problem"], "p2");
    assert_eq!(problems[1]["checkpoint"]["state"], "ok");
    assert_eq!(problems[1]["errors"].as_array().unwrap().len(), 0);

    let text = stdout(&tree.cmd().arg("status").output().unwrap());
    assert!(text.contains("problem p2"), "{text}");
    assert!(text.contains("client updates unknown"), "{text}");
}

#[test]
fn a_malformed_layout_marker_is_named_as_such_and_exits_1() {
    let tree = Tree::demo();
    tree.add_problem("p2");
    let marker = tree.root().join("p2/initFiles/.fedota-layout");
    std::fs::write(&marker, b"garbage").unwrap();

    let out = tree.cmd().args(["status", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let report = json(&out, "status");
    assert_eq!(report["problems"][0]["model"]["state"], "ok");

    let p2 = &report["problems"][1];
    assert!(p2["model"].is_null() && p2["lock"].is_null(), "{p2:#}");
    let error = &p2["errors"][0];
    assert_eq!(error["path"], marker.display().to_string());
    let message = error["error"].as_str().unwrap();
    assert!(message.contains("malformed layout marker"), "{message}");
    assert!(!message.contains("commit record"), "{message}");

    // verify says the same, and checks p1 all the same.
    let out = tree.cmd().arg("verify").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("problem p1: round 2, 6 files"), "{text}");
    assert!(text.contains("problem p2: could not be opened"), "{text}");
    assert!(text.contains("malformed layout marker"), "{text}");
}

#[test]
fn a_lost_commit_record_of_fl_checkpoint_makes_status_exit_1() {
    let tree = Tree::demo();
    std::fs::remove_file(tree.p1("initFiles/.fedota-commit.fl_checkpoint")).unwrap();

    let out = tree.cmd().args(["status", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let file = &json(&out, "status")["problems"][0]["checkpoint"];
    assert_eq!(file["state"], "missing", "{file:#}");
}
