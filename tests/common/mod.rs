//! Helpers shared by the integration tests: a problem in a temporary directory,
//! deterministic content, and child processes re-invoked from the test binary.
//!
//! Each test binary uses only some of these, hence the `dead_code` allowance.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use fedota_store::{CreateOptions, Error, ProblemId, RetryPolicy, SelectorId, Store};

/// The environment variable that tells a re-invoked test binary which child role to
/// play.
pub const CHILD_ROLE_ENV: &str = "FEDOTA_TEST_CHILD_ROLE";

/// The environment variable that passes the store's root to a child.
pub const CHILD_ROOT_ENV: &str = "FEDOTA_TEST_ROOT";

/// The prefix of the lines a child reports on, so the parent can tell them from the
/// test harness's own output.
pub const EVENT_PREFIX: &str = "@event ";

/// The model every test problem is created with.
pub const MODEL: &[u8] = b"\x89HDF\r\n\x1a\nmodel bytes";

/// The global checkpoint of round 0 of every test problem.
pub const GLOBAL_0: &[u8] = b"\x89HDF\r\n\x1a\nglobal checkpoint of round 0";

/// A store in a temporary directory, with one problem created in it.
#[derive(Debug)]
pub struct Tree {
    /// Kept so the directory lives as long as the tree.
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub id: ProblemId,
}

impl Tree {
    /// A new store with problem `p1`, created with [`MODEL`] and [`GLOBAL_0`].
    pub fn new() -> Self {
        Self::with_retry(RetryPolicy::default())
    }

    /// As [`Tree::new`], with reads retrying as `policy` says.
    pub fn with_retry(policy: RetryPolicy) -> Self {
        Self::in_dir(
            tempfile::tempdir().expect("create a temporary directory"),
            policy,
        )
    }

    /// As [`Tree::new`], in memory (`/dev/shm`) when there is one: for tests about
    /// killed processes rather than lost power, whose speed should not depend on how
    /// busy the disk is.
    pub fn in_memory() -> Self {
        let dir = match Path::new("/dev/shm").is_dir() {
            true => tempfile::tempdir_in("/dev/shm"),
            false => tempfile::tempdir(),
        };
        Self::in_dir(
            dir.expect("create a temporary directory"),
            RetryPolicy::default(),
        )
    }

    fn in_dir(dir: tempfile::TempDir, policy: RetryPolicy) -> Self {
        let store = Store::open(dir.path())
            .expect("open the store")
            .with_retry_policy(policy);
        let id = ProblemId::new("p1").unwrap();
        store
            .create_problem(
                &id,
                &mut &MODEL[..],
                &mut &GLOBAL_0[..],
                CreateOptions::default(),
            )
            .expect("create the problem");
        Self { dir, store, id }
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `<root>/p1/initFiles`.
    pub fn init_dir(&self) -> PathBuf {
        self.root().join("p1").join("initFiles")
    }

    /// `<root>/p1/<selector>`.
    pub fn selector_dir(&self, selector: &str) -> PathBuf {
        self.root().join("p1").join(selector)
    }
}

/// A retry policy that gives up quickly, so tests of mismatches run fast.
pub fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
    }
}

/// A selector id from text known to be valid.
pub fn selector_id(text: &str) -> SelectorId {
    SelectorId::new(text).expect("a valid selector id")
}

/// A read closure that collects everything.
pub fn read_bytes(r: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The content of a checkpoint of `round` for `stream` (0 for the global checkpoint,
/// 1 for an aggregate, ...): every byte depends on both, so a reader can tell any two
/// rounds apart, and a torn or mixed file from a whole one. Four rounds in a row have
/// the same length, so that only the checksum tells them apart.
pub fn content_for_round(stream: u64, round: u64) -> Vec<u8> {
    let len = 512 + ((round / 4).wrapping_mul(7919) % 40_000) as usize;
    let mut bytes = Vec::with_capacity(len + 32);
    bytes.extend_from_slice(format!("stream {stream} round {round}\n").as_bytes());

    let mut state = seed_state(stream, round);
    while bytes.len() < len {
        state = xorshift(state);
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// The weight committed with an aggregate of `round`: different for every round.
pub fn weight_for_round(round: u64) -> u64 {
    1000 + round * 37
}

fn seed_state(stream: u64, round: u64) -> u64 {
    (stream.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ round.wrapping_mul(0xD1B5_4A32_D192_ED03)) | 1
}

/// One step of xorshift64.
pub fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// A reader of `len` deterministic pseudo-random bytes, produced as they are read,
/// so a large checkpoint never exists in memory.
#[derive(Debug)]
pub struct Generated {
    state: u64,
    remaining: u64,
    block: Vec<u8>,
    offset: usize,
}

impl Generated {
    /// `len` bytes generated from `seed`.
    pub fn new(seed: u64, len: u64) -> Self {
        Self {
            state: seed | 1,
            remaining: len,
            block: Vec::new(),
            offset: 0,
        }
    }

    /// The crc32c and length of what `Generated::new(seed, len)` produces, computed
    /// by streaming it.
    pub fn crc32c(seed: u64, len: u64) -> u32 {
        let mut r = Self::new(seed, len);
        let mut crc = 0;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                return crc;
            }
            crc = crc32c::crc32c_append(crc, &buf[..n]);
        }
    }

    fn refill(&mut self) {
        // A 64 KiB block per step keeps generation cheap even in a debug build: one
        // xorshift per block, mixed into a fixed pattern.
        const BLOCK: usize = 1 << 16;
        self.state = xorshift(self.state);
        let key = self.state.to_le_bytes();

        self.block.clear();
        self.block.reserve(BLOCK);
        for i in 0..BLOCK / 8 {
            let word = (i as u64).wrapping_mul(0x0100_0000_01B3) ^ u64::from_le_bytes(key);
            self.block.extend_from_slice(&word.to_le_bytes());
        }
        self.offset = 0;
    }
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        if self.offset == self.block.len() {
            self.refill();
        }

        let n = buf
            .len()
            .min(self.block.len() - self.offset)
            .min(self.remaining.try_into().unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&self.block[self.offset..self.offset + n]);
        self.offset += n;
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// The crate's temporary files (`.fedota-tmp.*`) in `dir`, sorted.
pub fn temporaries_in(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".fedota-tmp."))
        })
        .collect();
    found.sort();
    found
}

/// The names in `dir`, sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Asserts that `err`'s message names `path` and contains every word of `op`.
pub fn assert_names_path_and_op(err: &Error, path: &Path, op: &[&str]) {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "the message does not name {}: {msg}",
        path.display()
    );
    for word in op {
        assert!(
            msg.contains(word),
            "the message does not say {word:?}: {msg}"
        );
    }
}

/// The role this process plays if the test binary was re-invoked as a child.
pub fn child_role() -> Option<String> {
    std::env::var(CHILD_ROLE_ENV).ok()
}

/// The store root passed to a child.
pub fn child_root() -> PathBuf {
    PathBuf::from(std::env::var(CHILD_ROOT_ENV).expect("the parent passes the root"))
}

/// Reports an event to the parent, on a line of its own.
pub fn report(event: impl std::fmt::Display) {
    println!("{EVENT_PREFIX}{event}");
}

/// A command that re-runs this test binary as a child playing `role`, running only
/// the test `test_name` (which must dispatch on [`child_role`]).
pub fn child_command(test_name: &str, role: &str, root: &Path) -> Command {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = Command::new(exe);
    cmd.args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ROLE_ENV, role)
        .env(CHILD_ROOT_ENV, root);
    cmd
}

/// A child process whose event lines arrive on a channel.
#[derive(Debug)]
pub struct ChildProc {
    pub name: String,
    pub child: Child,
    events: Receiver<String>,
    seen: VecDeque<String>,
}

impl ChildProc {
    /// Spawns `cmd` with its stdout piped to a reader thread.
    pub fn spawn(name: &str, mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn child {name}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || forward_events(stdout, tx));

        Self {
            name: name.to_owned(),
            child,
            events: rx,
            seen: VecDeque::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next event, waiting at most `timeout`. `None` on timeout or end of output.
    pub fn next_event(&mut self, timeout: Duration) -> Option<String> {
        if let Some(e) = self.seen.pop_front() {
            return Some(e);
        }
        self.events.recv_timeout(timeout).ok()
    }

    /// Every event that has arrived so far, without waiting.
    pub fn drain_events(&mut self) -> Vec<String> {
        let mut all: Vec<String> = self.seen.drain(..).collect();
        all.extend(self.events.try_iter());
        all
    }

    /// Waits for an event starting with `prefix`, skipping others, and returns it.
    /// Panics after `timeout`.
    pub fn expect_event(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left) {
                Some(e) if e.starts_with(prefix) => {
                    // Keep what was skipped for later readers.
                    for s in skipped.into_iter().rev() {
                        self.seen.push_front(s);
                    }
                    return e;
                }
                Some(e) => skipped.push(e),
                None => panic!(
                    "child {} gave no event {prefix:?} within {timeout:?}; saw {skipped:?}",
                    self.name
                ),
            }
        }
    }

    /// Kills the child with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the child to exit and asserts that it succeeded.
    pub fn wait_success(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "child {} failed: {status}", self.name);
                return;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!("child {} did not exit within {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        // Never leave a child running after a failed test.
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

fn forward_events(stdout: ChildStdout, tx: mpsc::Sender<String>) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { return };
        // The harness may print "test name ... " on the same line, before the
        // first event.
        if let Some(at) = line.find(EVENT_PREFIX)
            && tx.send(line[at + EVENT_PREFIX.len()..].to_owned()).is_err()
        {
            return;
        }
    }
}

/// Whether this process runs as root, which bypasses permission checks.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
