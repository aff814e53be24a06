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
