//! Helpers for the `cli_*` tests: a demo tree made through the library, the built
//! `fedota-store` binary, and JSON parsing of its reports.
//!
//! Each test binary uses only some of these, hence the `dead_code` allowance.

#![allow(dead_code)]

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

use assert_cmd::Command;
use fedota_store::{CreateOptions, LockWait, ProblemId, SelectorId, Store};
use serde_json::Value;

/// The model of every demo problem.
pub const MODEL: &[u8] = b"\x89HDF\r\n\x1a\nthe model";

/// The global checkpoint of round 0.
pub const GLOBAL_0: &[u8] = b"global checkpoint of round 0";

/// The two selectors of the demo problem.
pub const S1: &str = "s1.selector:50051";
pub const S2: &str = "s2.selector:50051";

/// A root in a temporary directory.
#[derive(Debug)]
pub struct Tree {
    pub dir: tempfile::TempDir,
    pub store: Store,
}

impl Tree {
    /// An empty root.
    pub fn empty() -> Self {
        let dir = tempfile::tempdir().expect("create a temporary root");
        let store = Store::open(dir.path()).expect("open the temporary root");
        Self { dir, store }
    }

    /// A root with problem `p1` at round 2: both selectors committed aggregates of
    /// round 1 (weights 120 and 80), s1 has two client updates of round 1.
    pub fn demo() -> Self {
        let tree = Self::empty();
        let p1 = tree.problem_id("p1");
        tree.store
            .create_problem(
                &p1,
                &mut &MODEL[..],
                &mut &GLOBAL_0[..],
                CreateOptions::default(),
            )
            .expect("create p1");

        let coordinator = tree.store.coordinator(&p1, LockWait::Try).unwrap();
        coordinator
            .commit_global_checkpoint(1, &mut &b"global checkpoint of round 1"[..])
            .unwrap();

        let s1 = tree
            .store
            .selector(&p1, &SelectorId::new(S1).unwrap())
            .unwrap();
        let s2 = tree
            .store
            .selector(&p1, &SelectorId::new(S2).unwrap())
            .unwrap();
        s1.commit_client_update(1, 1, 60, &mut &b"update 1 of round 1"[..])
            .unwrap();
        s1.commit_client_update(1, 2, 60, &mut &b"update 2 of round 1"[..])
            .unwrap();
        s1.commit_aggregate(1, 120, &mut &b"aggregate of s1, round 1"[..])
            .unwrap();
        s2.commit_aggregate(1, 80, &mut &b"aggregate of s2, round 1"[..])
            .unwrap();

        coordinator
            .commit_global_checkpoint(2, &mut &b"global checkpoint of round 2"[..])
            .unwrap();
        drop(coordinator);
        tree
    }

    /// Adds problem `id` at round 0.
    pub fn add_problem(&self, id: &str) {
        self.store
            .create_problem(
                &self.problem_id(id),
                &mut &MODEL[..],
                &mut &GLOBAL_0[..],
                CreateOptions::default(),
            )
            .unwrap_or_else(|e| panic!("create {id}: {e}"));
    }

    /// Replaces `<root>/p1/<S2>/roundFiles` with a regular file, so it cannot be
    /// listed (ENOTDIR).
    pub fn break_round_files_of_s2(&self) -> PathBuf {
        let dir = self.p1(&format!("{S2}/roundFiles"));
        fs::remove_dir(&dir).unwrap();
        fs::write(&dir, b"not a directory").unwrap();
        dir
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn problem_id(&self, id: &str) -> ProblemId {
        ProblemId::new(id).unwrap()
    }

    /// `<root>/p1/<rel>`.
    pub fn p1(&self, rel: &str) -> PathBuf {
        self.root().join("p1").join(rel)
    }

    /// The binary with `--root` set to this tree.
    pub fn cmd(&self) -> Command {
        let mut cmd = fedota();
        cmd.arg("--root").arg(self.root());
        cmd
    }
}

/// The built binary, with a clean environment for the variables it reads.
pub fn fedota() -> Command {
    let mut cmd = Command::cargo_bin("fedota-store").expect("the fedota-store binary is built");
    cmd.env_remove("FEDOTA_ROOT").env_remove("RUST_LOG");
    cmd
}

/// Flips one bit of the byte at `offset` in `path`.
pub fn flip_byte(path: &Path, offset: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset] ^= 0x01;
    fs::write(path, bytes).unwrap();
}

/// Sets the modification time of `path` to `age` ago.
pub fn age_file(path: &Path, age: Duration) {
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - age)
        .unwrap();
}

/// Stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Stdout parsed as the JSON report of `command`, checking the envelope.
pub fn json(output: &Output, command: &str) -> Value {
    let value: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("stdout is not JSON ({e}):\n{}", stdout(output));
    });
    assert_eq!(value["command"], command, "{value:#}");
    assert_eq!(value["schema_version"], 1, "{value:#}");
    value
}

/// Asserts that `object` has exactly these keys (present, possibly null).
pub fn assert_keys(object: &Value, keys: &[&str]) {
    let map = object
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {object:#}"));
    let mut found: Vec<&str> = map.keys().map(String::as_str).collect();
    let mut wanted = keys.to_vec();
    found.sort_unstable();
    wanted.sort_unstable();
    assert_eq!(found, wanted, "{object:#}");
}

/// The keys of a checked-file object.
pub const FILE_KEYS: &[&str] = &[
    "artifact",
    "selector",
    "client",
    "path",
    "state",
    "size",
    "round",
    "weight",
    "committed_at",
    "stale",
    "error",
    "error_path",
];

/// Runs `script` with `sh -c`, where `$0` is the binary and `$@` are `args`: for
/// what only a shell sets up, such as `exec "$0" "$@" 2>&-` (stderr closed).
pub fn sh(script: &str, args: &[&str]) -> Output {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_fedota-store"))
        .args(args)
        .env_remove("FEDOTA_ROOT")
        .env_remove("RUST_LOG")
        .output()
        .expect("run sh")
}
