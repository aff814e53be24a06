//! The demo end to end: `fl_round` runs a coordinator and selectors as separate
//! processes over one tree, and the tree it leaves is checked with the library.
//!
//! # How the example programs get built
//!
//! `cargo test` builds the examples only when no target is named; `cargo test --test
//! demo` does not. So this file builds the three it runs (`fl_round`, `selector`,
//! `coordinator`) itself, once per test binary, with the cargo that is building it
//! (`env!("CARGO")`), this crate's manifest, and this test's profile (release when
//! debug assertions are off, as under `cargo test --release`). Cargo's JSON messages
//! say where the executables are, so a custom `CARGO_TARGET_DIR` works too. On a
//! clean checkout the first test waits for that build.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fedota_store::{ArtifactKind, Problem, ProblemId, SelectorId, Store};
use serde_json::Value;

// The examples' shared code, for the unit tests of the model at the end.
#[path = "../examples/common/mod.rs"]
mod common;

/// Longer than any demo here takes, even on a loaded machine; a hang fails the test.
const DEADLINE: Duration = Duration::from_secs(300);

/// The example executables, by name.
fn examples() -> &'static HashMap<String, PathBuf> {
    static BUILT: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut command = Command::new(env!("CARGO"));
        command
            .args(["build", "--message-format=json-render-diagnostics"])
            .args([
                "--manifest-path",
                concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
            ])
            .args(["--example", "fl_round"])
            .args(["--example", "selector"])
            .args(["--example", "coordinator"])
            .stderr(Stdio::inherit());
        if !cfg!(debug_assertions) {
            command.arg("--release");
        }
        let output = command.output().expect("run cargo build for the examples");
        assert!(output.status.success(), "building the examples failed");

        let mut found = HashMap::new();
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Ok(message) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if let (Some(name), Some(exe)) = (
                message["target"]["name"].as_str(),
                message["executable"].as_str(),
            ) {
                found.insert(name.to_owned(), PathBuf::from(exe));
            }
        }
        for name in ["fl_round", "selector", "coordinator"] {
            assert!(found.contains_key(name), "cargo built no {name} executable");
        }
        found
    })
}

/// Runs `command` to completion, killing it after [`DEADLINE`].
fn run(mut command: Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");

    // Read the pipes on threads so a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut buf).map(|_| buf)
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut buf).map(|_| buf)
    });

    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the command") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("{command:?} did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };

    Output {
        status,
        stdout: out.join().unwrap().unwrap(),
        stderr: err.join().unwrap().unwrap(),
    }
}

/// A finished run of `fl_round`: its tree, its output and its JSON summary.
struct Demo {
    _dir: tempfile::TempDir,
    root: PathBuf,
    output: Output,
    summary: Value,
}

impl Demo {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    fn explain(&self) -> String {
        format!(
            "status {}\n--- stdout\n{}\n--- stderr\n{}",
            self.output.status,
            self.stdout(),
            String::from_utf8_lossy(&self.output.stderr)
        )
    }
}

/// Runs `fl_round` with `args` in a new root and parses its summary.
fn run_demo(args: &[&str], self_build: bool) -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let summary_path = dir.path().join("summary.json");

    let mut command = Command::new(&examples()["fl_round"]);
    command
        .arg("--root")
        .arg(&root)
        .arg("--json-summary")
        .arg(&summary_path)
        .args(args);
    if self_build {
        // As under `cargo run`: fl_round asks cargo for the other two programs.
        command.env("CARGO", env!("CARGO"));
    } else {
        command.arg("--no-build");
    }

    let output = run(command);
    let text = std::fs::read_to_string(&summary_path).unwrap_or_default();
    let summary = serde_json::from_str(&text).unwrap_or(Value::Null);
    let demo = Demo {
        _dir: dir,
        root,
        output,
        summary,
    };
    assert!(
        demo.summary.is_object(),
        "no JSON summary\n{}",
        demo.explain()
    );
    demo
}

/// The small demo of the issue: 2 rounds, 2 selectors of 2 clients each. Shared by
/// the tests that only read its results.
fn small_demo() -> &'static Demo {
    static DEMO: OnceLock<Demo> = OnceLock::new();
    DEMO.get_or_init(|| {
        run_demo(
            &["--rounds", "2", "--selectors", "2", "--clients", "2"],
            true,
        )
    })
}

/// The selectors whose aggregates the coordinator used in round `round`.
fn used_in(summary: &Value, round: u64) -> Vec<String> {
    let rounds = summary["rounds"].as_array().expect("rounds");
    let entry = rounds
        .iter()
        .find(|r| r["round"] == round)
        .unwrap_or_else(|| panic!("no report of round {round}"));
    entry["used"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            // Every aggregate used is of the round being averaged: nothing stale.
            assert_eq!(u["round"], round, "aggregate of another round used: {u}");
            u["selector"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// The whole content of a file: the closure given to the verified reads.
fn read_all(r: &mut dyn std::io::Read) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes).map(|_| bytes)
}

/// A checkpoint's numbers, `weight` then `bias`, read verified by the library from
/// the artifact `kind` of exactly round `round`, with the artifact's weight.
///
/// The test parses the safetensors file itself, so a bug in the examples' model code
/// cannot hide in both the files and their check.
fn tensors_of(problem: &Problem, kind: ArtifactKind, round: u64) -> (Vec<f64>, Option<u64>) {
    let artifact = problem.artifact(kind);
    let snapshot = problem
        .read_artifact_of(&artifact, round, read_all)
        .unwrap_or_else(|e| {
            panic!(
                "read {} of round {round}: {e}",
                artifact.data_path().display()
            )
        });
    assert!(snapshot.is_verified(), "{}", artifact.data_path().display());

    let tensors = safetensors::SafeTensors::deserialize(&snapshot.value).expect("safetensors");
    let mut values = Vec::new();
    for name in ["weight", "bias"] {
        let view = tensors.tensor(name).expect("tensor");
        assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
        values.extend(
            view.data()
                .chunks_exact(4)
                .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        );
    }
    (values, snapshot.weight)
}

/// The mean of `parts`, each counted `weight` times.
fn weighted_mean(parts: &[(Vec<f64>, u64)]) -> Vec<f64> {
    let total: f64 = parts.iter().map(|(_, w)| *w as f64).sum();
    let mut mean = vec![0.0; parts[0].0.len()];
    for (values, weight) in parts {
        for (m, v) in mean.iter_mut().zip(values) {
            *m += v * *weight as f64 / total;
        }
    }
    mean
}

/// The largest difference between two checkpoints' numbers.
fn max_difference(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Checks that `actual` is the weighted mean of `parts` (to within the rounding to
/// f32 of the stored files), and that this check can tell it from the plain mean,
/// which would be wrong.
fn assert_weighted_mean(actual: &[f64], parts: &[(Vec<f64>, u64)], what: &str) {
    let expected = weighted_mean(parts);
    let diff = max_difference(actual, &expected);
    assert!(
        diff < 1e-6,
        "{what} is not the weighted mean of its parts (off by {diff:e}):\n  \
         found    {actual:?}\n  expected {expected:?}\n  parts {parts:?}"
    );

    let equal_shares: Vec<(Vec<f64>, u64)> = parts.iter().map(|(v, _)| (v.clone(), 1)).collect();
    let plain = max_difference(actual, &weighted_mean(&equal_shares));
    assert!(
        parts.len() < 2 || plain > 1e-4,
        "{what}: the weighted and the plain mean are too close ({plain:e}) for this check \
         to tell them apart; {parts:?}"
    );
}

/// The tensors and metadata of a safetensors file.
fn safetensors_metadata(bytes: &[u8]) -> HashMap<String, String> {
    let (_, metadata) = safetensors::SafeTensors::read_metadata(bytes).expect("safetensors");
    safetensors::SafeTensors::deserialize(bytes).expect("safetensors tensors");
    metadata.metadata().clone().unwrap_or_default()
}

#[test]
fn a_small_federated_run_lowers_the_loss_and_leaves_a_verified_tree() {
    let demo = small_demo();
    assert!(demo.output.status.success(), "{}", demo.explain());
    assert_eq!(demo.summary["ok"], true, "{}", demo.explain());

    // The held-out loss falls with every round.
    let start = demo.summary["start"]["loss"].as_f64().unwrap();
    let losses: Vec<f64> = demo.summary["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["evaluation"]["loss"].as_f64().unwrap())
        .collect();
    assert_eq!(losses.len(), 2, "{}", demo.explain());
    assert!(
        start > losses[0] && losses[0] > losses[1],
        "loss did not fall: {start} then {losses:?}"
    );

    // And the accuracy rose from the all-zero model's.
    let start_accuracy = demo.summary["start"]["accuracy"].as_f64().unwrap();
    let final_accuracy = demo.summary["rounds"][1]["evaluation"]["accuracy"]
        .as_f64()
        .unwrap();
    assert!(
        final_accuracy > start_accuracy,
        "accuracy did not rise: {start_accuracy} then {final_accuracy}"
    );

    // Both selectors took part in both rounds, and every process ran as its own.
    for round in 0..2 {
        assert_eq!(used_in(&demo.summary, round), ["selector-1", "selector-2"]);
    }
    let processes = demo.summary["processes"].as_array().unwrap();
    assert_eq!(processes.len(), 3);
    assert!(
        processes.iter().all(|p| p["success"] == true),
        "{processes:?}"
    );

    // The library, reading the tree on its own, verifies every artifact.
    let store = Store::open(&demo.root).unwrap();
    let problem = store.problem(&ProblemId::new("fl-demo").unwrap()).unwrap();
    let artifacts = problem.artifacts().unwrap();
    assert_eq!(artifacts.len(), 2 + 2 * (1 + 2), "{artifacts:?}");
    for artifact in &artifacts {
        let snapshot = problem
            .verify(artifact)
            .unwrap_or_else(|e| panic!("{} does not verify: {e}", artifact.data_path().display()));
        assert!(snapshot.is_verified(), "{:?}", artifact.kind());
    }
    assert_eq!(problem.global_round().unwrap(), 2);

    // Each aggregate weighs what its clients' updates weigh, all of the last round.
    for selector in ["selector-1", "selector-2"] {
        let selector = SelectorId::new(selector).unwrap();
        let aggregate = problem
            .verify(&problem.artifact(ArtifactKind::Aggregate(selector.clone())))
            .unwrap();
        assert_eq!(aggregate.round(), Some(1));
        let clients: u64 = (1..=2)
            .map(|c| {
                let update = problem
                    .verify(&problem.artifact(ArtifactKind::ClientUpdate(selector.clone(), c)))
                    .unwrap();
                assert_eq!(update.round(), Some(1));
                update.weight.unwrap()
            })
            .sum();
        assert_eq!(aggregate.weight, Some(clients));
    }

    // FedAvg by sample count, checked from the files of the last round, which are
    // still in the tree: each aggregate is the mean of its clients' updates weighted
    // by their sample counts, and checkpoint 2 is the mean of the aggregates weighted
    // by theirs.
    let mut aggregates = Vec::new();
    for selector in ["selector-1", "selector-2"] {
        let id = SelectorId::new(selector).unwrap();
        let updates: Vec<(Vec<f64>, u64)> = (1..=2)
            .map(|c| {
                let (values, weight) =
                    tensors_of(&problem, ArtifactKind::ClientUpdate(id.clone(), c), 1);
                (values, weight.unwrap())
            })
            .collect();
        let (aggregate, weight) = tensors_of(&problem, ArtifactKind::Aggregate(id), 1);
        assert_weighted_mean(
            &aggregate,
            &updates,
            &format!("{selector}'s aggregate of round 1"),
        );
        aggregates.push((aggregate, weight.unwrap()));
    }
    let (checkpoint, _) = tensors_of(&problem, ArtifactKind::GlobalCheckpoint, 2);
    assert_weighted_mean(&checkpoint, &aggregates, "the global checkpoint of round 2");

    // The global checkpoint is a safetensors file naming the commits it averaged.
    let global = problem
        .read_global_checkpoint(|r| {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(r, &mut bytes).map(|_| bytes)
        })
        .unwrap();
    let metadata = safetensors_metadata(&global.value);
    assert_eq!(metadata["round"], "2");
    for used in demo.summary["rounds"][1]["used"].as_array().unwrap() {
        let source = format!(
            "{}@{}",
            used["selector"].as_str().unwrap(),
            used["commit_id"].as_str().unwrap()
        );
        assert!(metadata["aggregates"].contains(&source), "{metadata:?}");
    }
}

#[test]
fn a_selector_killed_mid_round_is_left_out_and_its_stale_aggregate_never_used() {
    let demo = run_demo(
        &[
            "--rounds",
            "3",
            "--selectors",
            "2",
            "--clients",
            "2",
            "--kill-selector-at-round",
            "1",
            "--aggregate-timeout",
            "1",
        ],
        false,
    );
    assert!(demo.output.status.success(), "{}", demo.explain());
    assert_eq!(demo.summary["ok"], true, "{}", demo.explain());

    // selector-2 died after a client update of round 1, with its aggregate of round 0
    // still on disk: a stale aggregate the coordinator could have picked up.
    let killed = &demo.summary["killed"];
    assert_eq!(killed["selector"], "selector-2", "{}", demo.explain());
    assert_eq!(killed["round"], 1);
    assert_eq!(killed["client_updates_committed"], 1);
    assert_eq!(killed["aggregate_round_on_disk"], 0);

    // The coordinator used it in round 0, waited for it in round 1 until the timeout,
    // then went on without it, naming it and why; it stayed out in round 2.
    assert_eq!(used_in(&demo.summary, 0), ["selector-1", "selector-2"]);
    assert_eq!(used_in(&demo.summary, 1), ["selector-1"]);
    assert_eq!(used_in(&demo.summary, 2), ["selector-1"]);
    let round_1 = &demo.summary["rounds"][1];
    assert_eq!(round_1["timed_out"], true);
    let skipped = round_1["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0]["selector"], "selector-2");
    let reason = skipped[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("stale") && reason.contains("round 0"),
        "{reason}"
    );

    // The run still finished all rounds, and the loss still fell.
    let start = demo.summary["start"]["loss"].as_f64().unwrap();
    let last = demo.summary["rounds"][2]["evaluation"]["loss"]
        .as_f64()
        .unwrap();
    assert!(last < start, "loss {start} -> {last}");

    // The stale aggregate is still in the tree, intact and of round 0, and the kill
    // fell mid-round: client 1's update is of round 1, client 2's of round 0.
    let store = Store::open(&demo.root).unwrap();
    let problem = store.problem(&ProblemId::new("fl-demo").unwrap()).unwrap();
    let victim = SelectorId::new("selector-2").unwrap();
    let stale = problem
        .verify(&problem.artifact(ArtifactKind::Aggregate(victim.clone())))
        .unwrap();
    assert_eq!(stale.round(), Some(0));
    for (client, round) in [(1, 1), (2, 0)] {
        let update = problem
            .verify(&problem.artifact(ArtifactKind::ClientUpdate(victim.clone(), client)))
            .unwrap();
        assert_eq!(update.round(), Some(round), "client {client}");
    }

    // Whatever the coordinator reported, the files say what it averaged: the final
    // global checkpoint is the weighted mean of the aggregates of round 2 on disk,
    // which is selector-1's alone, and not a mean that takes in the stale one.
    let (survivor, weight) = tensors_of(
        &problem,
        ArtifactKind::Aggregate(SelectorId::new("selector-1").unwrap()),
        2,
    );
    let survivors = [(survivor, weight.unwrap())];
    let (checkpoint, _) = tensors_of(&problem, ArtifactKind::GlobalCheckpoint, 3);
    assert_weighted_mean(&checkpoint, &survivors, "the global checkpoint of round 3");
    let (stale_values, stale_weight) =
        tensors_of(&problem, ArtifactKind::Aggregate(victim.clone()), 0);
    let with_stale = weighted_mean(&[survivors[0].clone(), (stale_values, stale_weight.unwrap())]);
    assert!(
        max_difference(&checkpoint, &with_stale) > 1e-4,
        "the check cannot tell the survivor's aggregate from a mean with the stale one"
    );
    assert_eq!(problem.global_round().unwrap(), 3);
    for artifact in problem.artifacts().unwrap() {
        problem.verify(&artifact).unwrap();
    }
    let global = problem
        .read_global_checkpoint(|r| {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(r, &mut bytes).map(|_| bytes)
        })
        .unwrap();
    let metadata = safetensors_metadata(&global.value);
    assert!(
        metadata["aggregates"].starts_with("selector-1@"),
        "{metadata:?}"
    );
    assert!(
        !metadata["aggregates"].contains("selector-2"),
        "{metadata:?}"
    );

    // And the demo said so on its output.
    let stdout = demo.stdout();
    assert!(
        stdout.contains("killed selector-2 (SIGKILL) in round 1"),
        "{stdout}"
    );
    assert!(stdout.contains("selector-2 (stale"), "{stdout}");
}

#[test]
fn the_demo_fails_when_the_coordinator_fails() {
    // With no patience at all and clients that take a second to start, the
    // coordinator finds no aggregate of round 0 and gives up.
    let demo = run_demo(
        &[
            "--rounds",
            "2",
            "--selectors",
            "2",
            "--clients",
            "1",
            "--aggregate-timeout",
            "0",
            "--client-delay-ms",
            "1000",
        ],
        false,
    );
    assert_eq!(demo.output.status.code(), Some(1), "{}", demo.explain());
    assert_eq!(demo.summary["ok"], false);

    let failures = demo.summary["failures"].as_array().unwrap();
    assert!(
        failures[0]
            .as_str()
            .unwrap()
            .starts_with("coordinator exited with"),
        "{failures:?}"
    );
    let stderr = String::from_utf8_lossy(&demo.output.stderr);
    assert!(
        stderr.contains("no usable aggregate of round 0"),
        "{stderr}"
    );

    // The selectors were stopped rather than left waiting for a checkpoint.
    let processes = demo.summary["processes"].as_array().unwrap();
    for selector in &processes[1..] {
        assert_eq!(selector["killed_by_demo"], true, "{processes:?}");
    }
}

#[test]
fn python_reads_the_tree_like_the_existing_services() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipped: python3 is not installed, so examples/read_tree.py cannot run");
        return;
    }
    let demo = small_demo();
    assert!(demo.output.status.success(), "{}", demo.explain());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/read_tree.py");

    let mut command = Command::new("python3");
    command.arg(&script).arg(&demo.root).arg("fl-demo");
    let output = run(command);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("read 2 selectors; every file parsed"),
        "{stdout}"
    );

    // It found the weights the library reads, parsing them with int().
    let problem = Store::open(&demo.root)
        .unwrap()
        .problem(&ProblemId::new("fl-demo").unwrap())
        .unwrap();
    for selector in ["selector-1", "selector-2"] {
        let id = SelectorId::new(selector).unwrap();
        let weight = problem
            .verify(&problem.artifact(ArtifactKind::Aggregate(id)))
            .unwrap()
            .weight
            .unwrap();
        let line = format!("{selector}/fl_agg_checkpoint: weight {weight}, round 1");
        assert!(stdout.contains(&line), "no {line:?} in\n{stdout}");
    }
    assert!(stdout.contains("fl_checkpoint: round 2, bias F32 [1], weight F32 [10]"));

    // Weights follow the stricter rule of the Go services, which parse them with
    // strconv.ParseInt(s, 10, 64), as fedota-store does: int() would take "12\n" and
    // "1_2", ParseInt would not; and ParseInt stops at 2^63 - 1.
    let copy = tempfile::tempdir().unwrap();
    let problem_copy = copy.path().join("fl-demo");
    copy_dir(&demo.root.join("fl-demo"), &problem_copy);
    for text in ["12\n", "1_2", "9223372036854775808"] {
        std::fs::write(
            problem_copy.join("selector-1/fl_agg_checkpoint_weight"),
            text,
        )
        .unwrap();
        let mut command = Command::new("python3");
        command.arg(&script).arg(&problem_copy);
        let output = run(command);
        assert_eq!(output.status.code(), Some(1), "{text:?}: {output:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("not a plain decimal weight"),
            "{text:?}: {output:?}"
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn weighted_average_counts_each_model_by_its_samples() {
    use common::model::LogReg;

    let a = LogReg {
        w: vec![1.0, 0.0],
        b: 1.0,
    };
    let b = LogReg {
        w: vec![5.0, 4.0],
        b: -3.0,
    };
    let avg = LogReg::weighted_average(&[(a, 3), (b, 1)]).unwrap();
    assert_eq!(avg.w, [2.0, 1.0]);
    assert_eq!(avg.b, 0.0);
}

#[test]
fn weighted_average_of_nothing_or_of_zero_weights_is_none() {
    use common::model::LogReg;

    assert_eq!(LogReg::weighted_average(&[]), None);
    assert_eq!(LogReg::weighted_average(&[(LogReg::zeros(3), 0)]), None);
}

#[test]
fn weighted_average_sums_weights_beyond_u64() {
    use common::model::LogReg;

    let one = LogReg {
        w: vec![1.0],
        b: 2.0,
    };
    let three = LogReg {
        w: vec![3.0],
        b: 6.0,
    };
    let avg = LogReg::weighted_average(&[(one, u64::MAX), (three, u64::MAX)]).unwrap();
    assert_eq!(avg.w, [2.0]);
    assert_eq!(avg.b, 4.0);
}

#[test]
fn fl_round_refuses_a_learning_rate_that_is_not_a_positive_number() {
    for rate in ["nan", "inf", "0", "-0.1"] {
        let output = run({
            let mut command = Command::new(&examples()["fl_round"]);
            command.args(["--no-build", "--learning-rate", rate]);
            command
        });
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{rate}: {stderr}");
        assert!(
            stderr.contains("--learning-rate")
                && stderr.contains("must be a finite number above 0"),
            "{rate}: {stderr}"
        );
    }
}
