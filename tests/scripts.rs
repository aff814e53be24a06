//! The shell scripts in `examples/`, run against the `fedota-store` binary this
//! build made: `cli_tour.sh` and `script_round.sh`.
//!
//! They need bash and python3; without either, or without the binary (the `cli`
//! feature off), each test prints why it skipped and passes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary under test, if the `cli` feature built it.
const FEDOTA_STORE: Option<&str> = option_env!("CARGO_BIN_EXE_fedota-store");

/// Why the scripts cannot run here, if they cannot.
fn missing_tool() -> Option<String> {
    if FEDOTA_STORE.is_none() {
        return Some("the fedota-store binary was not built (the cli feature is off)".into());
    }
    for tool in ["bash", "python3"] {
        if Command::new(tool).arg("--version").output().is_err() {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

/// `examples/<name>`.
fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// Runs `examples/<name>` with bash, with `FEDOTA_STORE` set to `binary`.
fn run_script(name: &str, binary: &Path, args: &[&str]) -> Output {
    Command::new("bash")
        .arg(script(name))
        .args(args)
        .env("FEDOTA_STORE", binary)
        .env_remove("FEDOTA_ROOT")
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"))
}

fn explain(output: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn script_round_averages_the_aggregates_by_weight_through_the_cli() {
    if let Some(why) = missing_tool() {
        eprintln!("skipped: {why}, so examples/script_round.sh cannot run");
        return;
    }
    let output = run_script("script_round.sh", Path::new(FEDOTA_STORE.unwrap()), &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", explain(&output));

    // Each round moves each selector halfway to its target (1 with weight 300, -1
    // with weight 100), so the weighted mean goes 0.25, 0.375, 0.4375; a plain mean
    // would stay at 0.
    for (round, value) in [(1, "0.2500"), (2, "0.3750"), (3, "0.4375")] {
        let line = format!("global checkpoint of round {round}: {value} {value} {value} {value}");
        assert!(stdout.contains(&line), "no {line:?}\n{}", explain(&output));
    }
    assert!(
        stdout.contains("verify: ok: 4 files"),
        "{}",
        explain(&output)
    );
}

#[test]
fn script_round_fails_when_a_selector_fails() {
    if let Some(why) = missing_tool() {
        eprintln!("skipped: {why}, so examples/script_round.sh cannot run");
        return;
    }

    // A fedota-store that commits s2's aggregate of the last round, then reports a
    // failure: the coordinator has all it needs, so only the script's wait for the
    // selector can notice.
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("fedota-store");
    std::fs::write(
        &wrapper,
        format!(
            "#!/usr/bin/env bash\n\
             {:?} \"$@\" || exit\n\
             case \" $* \" in\n  \
             *' commit-aggregate '*' --selector s2.selector:50051 --round 2 '*)\n    \
             echo 'wrapper: failing on purpose' >&2; exit 3 ;;\n\
             esac\n",
            FEDOTA_STORE.unwrap()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    let output = run_script("script_round.sh", &wrapper, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    assert!(stderr.contains("wrapper: failing on purpose"), "{stderr}");
    assert!(
        stderr.contains("selector s2.selector:50051 failed"),
        "{stderr}"
    );
}

#[test]
fn cli_tour_shows_a_healthy_tree_then_finds_every_damage() {
    if let Some(why) = missing_tool() {
        eprintln!("skipped: {why}, so examples/cli_tour.sh cannot run");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let output = run_script(
        "cli_tour.sh",
        Path::new(FEDOTA_STORE.unwrap()),
        &[root.path().to_str().unwrap()],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", explain(&output));

    // The exit code of each command, in the order the tour runs them: the healthy
    // tree passes everything; the damaged one fails verify and status, and gc and
    // doctor still work.
    let exits: Vec<&str> = stdout.lines().filter(|l| l.starts_with("(exit ")).collect();
    let expected = [
        "(exit 0)", // init
        "(exit 0)", // commit-aggregate s1
        "(exit 0)", // commit-aggregate s2
        "(exit 0)", // wait
        "(exit 0)", // commit
        "(exit 0)", // status
        "(exit 0)", // verify
        "(exit 1)", // verify, damaged
        "(exit 1)", // status, damaged
        "(exit 0)", // gc --dry-run
        "(exit 0)", // gc
        "(exit 0)", // doctor
    ];
    assert_eq!(exits, expected, "{}", explain(&output));

    // verify names each damage; gc removes fedota-store's leftover temporary file
    // and leaves the NFS client's .nfs file alone.
    for needle in [
        "verify: ok: 4 files",
        "corrupt ",
        "checksum mismatch",
        "bad-weight ",
        "corrupt weight \"eighty\"",
        "removed ",
    ] {
        assert!(
            stdout.contains(needle),
            "no {needle:?}\n{}",
            explain(&output)
        );
    }
    let init = root.path().join("mnist/initFiles");
    let left: Vec<String> = std::fs::read_dir(&init)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        left.iter().any(|n| n.starts_with(".nfs")),
        "the .nfs file is gone: {left:?}"
    );
    assert!(
        !left.iter().any(|n| n.starts_with(".fedota-tmp.")),
        "the temporary file is still there: {left:?}"
    );
}
