//! `doctor --peer`: prove, with a second node, that a lock taken on one node keeps the
//! other out.
//!
//! Run `fedota-store doctor --peer` on two nodes at about the same time (within
//! `--timeout`), against the same root. They meet through files in
//! `<root>/.fedota-doctor-peer/`, then take turns:
//!
//! 1. Each writes `hello.<id>` (a random id, its host and pid) and waits until it
//!    sees exactly one other fresh hello. The side with the smaller id goes first.
//! 2. The first side creates `run.<ids>.lock`, takes an OFD lock on it (the kind the
//!    coordinator takes), and signals `a-locked`.
//! 3. The second side tries to lock the same file and signals what happened
//!    (`b-tried`): it must be refused.
//! 4. The first side releases and signals `a-released`; the second side must now get
//!    the lock (`b-locked`), and holds it.
//! 5. The first side tries and signals what happened (`a-tried`): it must be refused.
//!    The second side releases and signals `b-done`; the first removes the run's
//!    files.
//!
//! A signal is a small JSON file, written to a temporary name and renamed, and found
//! by polling every 100 ms. Each poll first opens the rendezvous directory, which makes
//! an NFS client revalidate it (close-to-open) instead of trusting its cached "no such
//! file" for up to `acdirmin`. Each wait gives up after `--timeout` (default 2
//! minutes, longer than NFS's default `acdirmax` of 60 s, in case a mount does not
//! revalidate on open, as with `nocto`).
//!
//! Both sides report the same five findings: `peer-rendezvous`, `peer-host` (a warning
//! when both run on one host, which proves nothing across nodes), `peer-lock-held-here`
//! (this side's lock refused the peer), `peer-lock-held-there` (the peer's lock
//! refused this side) and `peer-lock-handover` (the lock passed from one to the other
//! once released).
//!
//! # Caveats
//!
//! A hello is fresh when its modification time is within `--timeout` of this side's
//! own hello; both times come from the file server's clock. A hello from a doctor
//! that was killed while waiting can look fresh for that long, and a third doctor
//! makes the meeting fail: run exactly two at once. Files of runs older than ten
//! timeouts are removed when a new run meets.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use fedota_store::mount::{Finding, Severity};
use fedota_store::os;
use serde::{Deserialize, Serialize};

use crate::output;
use crate::probes::TryLock;

/// The rendezvous directory under the root.
pub const RENDEZVOUS_DIR: &str = ".fedota-doctor-peer";

/// How often a waiting side looks for the other's files.
const POLL: Duration = Duration::from_millis(100);

/// Slack for the difference between two hellos' times.
const FRESH_SLACK: Duration = Duration::from_secs(5);

/// Who a side is: what its hello file says.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Hello {
    id: String,
    host: String,
    pid: u32,
    started: String,
}

/// One step's signal to the other side.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Signal {
    /// `locked`, `blocked`, `acquired`, `released`, `done` or `error`.
    outcome: String,
    /// Why, for `error`; how long, for a handover.
    detail: Option<String>,
}

impl Signal {
    fn new(outcome: &str, detail: Option<String>) -> Self {
        Self {
            outcome: outcome.to_owned(),
            detail,
        }
    }
}

/// Two sides that have met.
struct Pair {
    dir: PathBuf,
    me: Hello,
    peer: Hello,
    first: bool,
    session: String,
    timeout: Duration,
    try_lock: TryLock,
}

/// What to do when the two doctors cannot meet or exchange signals.
const RENDEZVOUS_FIX: &str = "make the root writable by this user on both nodes, check \
                              that both mount the same export, and run `doctor` alone on \
                              each node first";

/// What to do when the lock cannot be taken at all.
const LOCK_FIX: &str = "on NFSv3, run rpc.statd on every client and the lock manager on the \
                        server; or mount with vers=4.2";

/// Meets a peer under `root` and runs the lock exchange, giving up on each wait after
/// `timeout`. Locks are taken with `try_lock` ([`os::try_lock`] outside tests).
pub fn run(root: &Path, timeout: Duration, try_lock: TryLock) -> Vec<Finding> {
    let pair = match meet(root, timeout, try_lock) {
        Ok(pair) => pair,
        Err(finding) => return vec![finding],
    };

    let mut findings = vec![
        Finding::new(
            "peer-rendezvous",
            Severity::Pass,
            format!(
                "met pid {} on {} in {}; this side locks {}",
                pair.peer.pid,
                pair.peer.host,
                pair.dir.display(),
                if pair.first { "first" } else { "second" }
            ),
            "both doctors see each other's files under the root",
        ),
        host_finding(&pair),
    ];

    let exchanged = if pair.first {
        pair.run_first(&mut findings)
    } else {
        pair.run_second(&mut findings)
    };
    if let Err(finding) = exchanged {
        findings.push(finding);
    }

    pair.clean_up();
    findings
}

fn host_finding(pair: &Pair) -> Finding {
    if pair.peer.host == pair.me.host {
        return Finding::new(
            "peer-host",
            Severity::Warn,
            format!("the peer runs on this host too ({})", pair.me.host),
            "two processes on one node share the kernel's lock table, so this shows that \
             locks exclude between processes, not between nodes",
        )
        .with_fix("run the two doctors on two different nodes");
    }
    Finding::new(
        "peer-host",
        Severity::Pass,
        format!("the peer runs on another host ({})", pair.peer.host),
        "the exchange below goes through the file server",
    )
}

/// Writes our hello and waits until exactly one other fresh hello appears.
fn meet(root: &Path, timeout: Duration, try_lock: TryLock) -> Result<Pair, Finding> {
    let dir = root.join(RENDEZVOUS_DIR);
    fs::create_dir_all(&dir)
        .map_err(|e| io_failure("create the rendezvous directory", &dir, &e))?;

    let me = Hello {
        id: uuid::Uuid::new_v4().simple().to_string(),
        host: os::hostname().to_owned(),
        pid: std::process::id(),
        started: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
    };
    let hello_path = dir.join(format!("hello.{}", me.id));
    write_atomic(&dir, &hello_path, &me)?;
    let mine = modified(&hello_path).map_err(|e| io_failure("stat", &hello_path, &e))?;

    say(&format!(
        "waiting up to {} for a peer in {}",
        output::age(timeout),
        dir.display()
    ));
    let started = Instant::now();

    let peer = loop {
        let others = match fresh_hellos(&dir, &me.id, mine, timeout) {
            Ok(others) => others,
            Err(e) => {
                let _ = fs::remove_file(&hello_path);
                return Err(io_failure("list", &dir, &e));
            }
        };

        match others.as_slice() {
            [one] => break one.clone(),
            [] if started.elapsed() < timeout => std::thread::sleep(POLL),
            [] => {
                let _ = fs::remove_file(&hello_path);
                return Err(Finding::new(
                    "peer-rendezvous",
                    Severity::Fail,
                    format!(
                        "no peer appeared in {} within {}",
                        dir.display(),
                        output::age(timeout)
                    ),
                    "the two-node lock test needs a second doctor --peer on the same root",
                )
                .with_fix(
                    "start `fedota-store doctor --peer` on another node within the timeout; if \
                     it runs and still is not seen, this node does not see its files",
                ));
            }
            many => {
                let _ = fs::remove_file(&hello_path);
                let who: Vec<String> = many
                    .iter()
                    .map(|h| format!("pid {} on {}", h.pid, h.host))
                    .collect();
                return Err(Finding::new(
                    "peer-rendezvous",
                    Severity::Fail,
                    format!(
                        "more than one other doctor --peer is waiting: {}",
                        who.join(", ")
                    ),
                    "the test pairs exactly two doctors",
                )
                .with_fix(format!(
                    "run exactly two at once; if none is running, remove {}",
                    dir.display()
                )));
            }
        }
    };

    let first = me.id < peer.id;
    let session = if first {
        format!("run.{}.{}", me.id, peer.id)
    } else {
        format!("run.{}.{}", peer.id, me.id)
    };
    say(&format!(
        "met pid {} on {}; this side locks {}",
        peer.pid,
        peer.host,
        if first { "first" } else { "second" }
    ));

    Ok(Pair {
        dir,
        me,
        peer,
        first,
        session,
        timeout,
        try_lock,
    })
}

/// Tells the operator on stderr what the peer test is doing; a closed stderr is
/// ignored.
fn say(message: &str) {
    let _ = writeln!(io::stderr(), "doctor --peer: {message}");
}

/// The other hellos in `dir` whose time is within `timeout` of ours; removes files
/// of runs far older than that.
fn fresh_hellos(
    dir: &Path,
    my_id: &str,
    mine: SystemTime,
    timeout: Duration,
) -> io::Result<Vec<Hello>> {
    let fresh_after = mine.checked_sub(timeout.saturating_add(FRESH_SLACK));
    let abandoned_before = mine.checked_sub(timeout.saturating_mul(10));
    let mut others = Vec::new();

    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(time) = modified(&entry.path()) else {
            continue;
        };

        if abandoned_before.is_some_and(|limit| time < limit) {
            let _ = fs::remove_file(entry.path());
            continue;
        }
        let Some(id) = name.strip_prefix("hello.") else {
            continue;
        };
        if id == my_id || fresh_after.is_some_and(|limit| time < limit) {
            continue;
        }
        if let Ok(hello) = fs::read(entry.path())
            .map_err(|_| ())
            .and_then(|b| serde_json::from_slice::<Hello>(&b).map_err(|_| ()))
        {
            others.push(hello);
        }
    }
    Ok(others)
}

impl Pair {
    fn path(&self, step: &str) -> PathBuf {
        self.dir.join(format!("{}.{step}", self.session))
    }

    fn send(&self, step: &str, signal: &Signal) -> Result<(), Finding> {
        write_atomic(&self.dir, &self.path(step), signal)
    }

    /// Polls for the peer's signal `step` until the timeout.
    fn wait_for(&self, step: &str) -> Result<Signal, Finding> {
        let path = self.path(step);
        let started = Instant::now();

        loop {
            revalidate(&self.dir);
            match fs::read(&path) {
                Ok(bytes) => {
                    return serde_json::from_slice(&bytes).map_err(|e| {
                        io_failure("parse the peer's signal", &path, &io::Error::other(e))
                    });
                }
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_failure("read the peer's signal", &path, &e));
                }
                Err(_) if started.elapsed() >= self.timeout => {
                    return Err(Finding::new(
                        "peer-rendezvous",
                        Severity::Fail,
                        format!(
                            "no {step} signal from pid {} on {} within {} ({})",
                            self.peer.pid,
                            self.peer.host,
                            output::age(self.timeout),
                            path.display()
                        ),
                        "the peer stopped, or this node does not see its new files",
                    )
                    .with_fix("run both doctors again; check `doctor` on each node first"));
                }
                Err(_) => std::thread::sleep(POLL),
            }
        }
    }

    /// The side that locks first.
    fn run_first(&self, findings: &mut Vec<Finding>) -> Result<(), Finding> {
        let lock_path = self.path("lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&lock_path);
        let file = match file.and_then(|f| (self.try_lock)(&f).map(|taken| (f, taken))) {
            Ok((f, true)) => f,
            Ok((_, false)) => {
                let detail = "a new lock file was already locked".to_owned();
                self.send("a-locked", &Signal::new("error", Some(detail.clone())))?;
                return Err(lock_failure(&lock_path, &detail));
            }
            Err(e) => {
                self.send("a-locked", &Signal::new("error", Some(e.to_string())))?;
                return Err(lock_failure(&lock_path, &e.to_string()));
            }
        };
        self.send("a-locked", &Signal::new("locked", None))?;

        let tried = self.wait_for("b-tried")?;
        findings.push(held_here(&tried, &self.peer));

        os::unlock(&file).map_err(|e| io_failure("unlock", &lock_path, &e))?;
        self.send("a-released", &Signal::new("released", None))?;

        let taken = self.wait_for("b-locked")?;
        findings.push(handover(&taken, "the peer"));
        let attempt = if taken.outcome == "locked" {
            let attempt = attempt(&file, self.try_lock);
            findings.push(held_there(&attempt, &self.peer));
            attempt
        } else {
            Signal::new(
                "error",
                Some("skipped: the peer never held the lock".to_owned()),
            )
        };
        self.send("a-tried", &attempt)?;

        self.wait_for("b-done").map(|_| ())
    }

    /// The side that locks second.
    fn run_second(&self, findings: &mut Vec<Finding>) -> Result<(), Finding> {
        let lock_path = self.path("lock");
        let locked = self.wait_for("a-locked")?;
        if locked.outcome != "locked" {
            let detail = locked.detail.unwrap_or_default();
            let _ = self.send("b-done", &Signal::new("done", None));
            return Err(lock_failure(&lock_path, &format!("on the peer: {detail}")));
        }

        let file = OpenOptions::new().read(true).write(true).open(&lock_path);
        let file = match file {
            Ok(f) => f,
            Err(e) => {
                self.send("b-tried", &Signal::new("error", Some(e.to_string())))?;
                return Err(io_failure("open", &lock_path, &e));
            }
        };
        let tried = attempt(&file, self.try_lock);
        findings.push(held_there(&tried, &self.peer));
        self.send("b-tried", &tried)?;

        self.wait_for("a-released")?;
        let taken = take_within(&file, self.timeout, self.try_lock);
        findings.push(handover(&taken, "this side"));
        self.send("b-locked", &taken)?;

        if taken.outcome == "locked" {
            let attempt = self.wait_for("a-tried")?;
            findings.push(held_here(&attempt, &self.peer));
            let _ = os::unlock(&file);
        }
        self.send("b-done", &Signal::new("done", None))
    }

    /// Removes this side's hello and, on the first side, the run's files.
    fn clean_up(&self) {
        let _ = fs::remove_file(self.dir.join(format!("hello.{}", self.me.id)));
        if !self.first {
            return;
        }

        if let Ok(entries) = fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(&self.session)
                {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        // Another run may be using the directory; then it stays.
        let _ = fs::remove_dir(&self.dir);
    }
}

/// One try at the lock, released at once if taken: `blocked`, `acquired` or `error`.
fn attempt(file: &File, try_lock: TryLock) -> Signal {
    match try_lock(file) {
        Ok(false) => Signal::new("blocked", None),
        Ok(true) => {
            let _ = os::unlock(file);
            Signal::new("acquired", None)
        }
        Err(e) => Signal::new("error", Some(e.to_string())),
    }
}

/// Tries the lock until it is granted or `timeout` passes; keeps it if granted.
fn take_within(file: &File, timeout: Duration, try_lock: TryLock) -> Signal {
    let started = Instant::now();
    loop {
        match try_lock(file) {
            Ok(true) => {
                let ms = started.elapsed().as_millis();
                return Signal::new(
                    "locked",
                    Some(format!("{ms} ms after the release was seen")),
                );
            }
            Ok(false) if started.elapsed() < timeout => std::thread::sleep(POLL),
            Ok(false) => {
                return Signal::new(
                    "error",
                    Some(format!(
                        "still refused {} after the release",
                        output::age(timeout)
                    )),
                );
            }
            Err(e) => return Signal::new("error", Some(e.to_string())),
        }
    }
}

/// The finding for the peer's try while this side held the lock.
fn held_here(tried: &Signal, peer: &Hello) -> Finding {
    lock_finding(
        "peer-lock-held-here",
        tried,
        format!(
            "while this side held the lock, pid {} on {}",
            peer.pid, peer.host
        ),
    )
}

/// The finding for this side's try while the peer held the lock.
fn held_there(tried: &Signal, peer: &Hello) -> Finding {
    lock_finding(
        "peer-lock-held-there",
        tried,
        format!(
            "while pid {} on {} held the lock, this side",
            peer.pid, peer.host
        ),
    )
}

fn lock_finding(check: &str, tried: &Signal, context: String) -> Finding {
    let why = "the coordinator lock must keep a coordinator on another node out";
    match tried.outcome.as_str() {
        "blocked" => Finding::new(
            check,
            Severity::Pass,
            format!("{context} was refused the {}", os::LOCK_KIND),
            why,
        ),
        "acquired" => Finding::new(
            check,
            Severity::Fail,
            format!("{context} also got the {}", os::LOCK_KIND),
            "two coordinators on these nodes could both hold the lock and both write \
             fl_checkpoint",
        )
        .with_fix(
            "mount without nolock and with local_lock=none on every node; on NFSv4 servers \
             whose clients share one host, turn delegations off",
        ),
        _ => Finding::new(
            check,
            Severity::Fail,
            format!(
                "{context} could not try the lock: {}",
                tried.detail.as_deref().unwrap_or("unknown error")
            ),
            why,
        )
        .with_fix(LOCK_FIX),
    }
}

fn handover(taken: &Signal, who: &str) -> Finding {
    let detail = taken.detail.as_deref().unwrap_or("");
    if taken.outcome == "locked" {
        return Finding::new(
            "peer-lock-handover",
            Severity::Pass,
            format!("after the first holder released the lock, {who} got it ({detail})"),
            "a coordinator that stops lets its successor in",
        );
    }
    Finding::new(
        "peer-lock-handover",
        Severity::Fail,
        format!("after the first holder released the lock, {who} could not get it: {detail}"),
        "a coordinator that stops would keep its successor out",
    )
    .with_fix(
        "check that no third process holds the lock file (lslocks on each node); on NFSv3, \
         check that the lock manager and rpc.statd answer on both nodes and the server",
    )
}

fn lock_failure(path: &Path, detail: &str) -> Finding {
    Finding::new(
        "peer-lock-held-here",
        Severity::Fail,
        format!("could not take the lock on {}: {detail}", path.display()),
        "without a working lock the two-node test cannot run",
    )
    .with_fix(LOCK_FIX)
}

fn io_failure(step: &str, path: &Path, e: &io::Error) -> Finding {
    Finding::new(
        "peer-rendezvous",
        Severity::Fail,
        format!("{step} {}: {e}", path.display()),
        "the two-node test meets through files under the root",
    )
    .with_fix(RENDEZVOUS_FIX)
}

/// Writes `value` as JSON to a temporary name in `dir`, then renames it to `path`, so
/// the peer never reads half a file.
fn write_atomic<T: Serialize>(dir: &Path, path: &Path, value: &T) -> Result<(), Finding> {
    let bytes = serde_json::to_vec(value).expect("signals always serialize");
    let temp = dir.join(format!("tmp.{}", uuid::Uuid::new_v4().simple()));

    fs::write(&temp, bytes).map_err(|e| io_failure("write", &temp, &e))?;
    fs::rename(&temp, path).map_err(|e| {
        let _ = fs::remove_file(&temp);
        io_failure("rename into place", path, &e)
    })
}

/// Makes this node ask the file server about `dir` again before the next lookup in it.
///
/// An NFS client remembers that a name was missing until the directory's attributes
/// expire from its cache (`acdirmin`, 30 s by default), so a poll for the peer's next
/// signal could miss it for that long. Opening the directory revalidates its
/// attributes (close-to-open), and a changed directory drops the remembered misses.
/// Errors are left to the lookup that follows.
fn revalidate(dir: &Path) {
    let _ = File::open(dir);
}

fn modified(path: &Path) -> io::Result<SystemTime> {
    fs::metadata(path)?.modified()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lock that every open file description gets, as with `nolock`.
    fn never_conflicts(_: &File) -> io::Result<bool> {
        Ok(true)
    }

    /// Runs both sides of the exchange in two threads of this process.
    fn exchange(try_lock: TryLock) -> [Vec<Finding>; 2] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let timeout = Duration::from_secs(20);

        let other = {
            let root = root.clone();
            std::thread::spawn(move || run(&root, timeout, try_lock))
        };
        let this = run(&root, timeout, try_lock);
        [this, other.join().unwrap()]
    }

    fn severity(findings: &[Finding], check: &str) -> Severity {
        findings
            .iter()
            .find(|f| f.check == check)
            .unwrap_or_else(|| panic!("no {check} in {findings:#?}"))
            .severity
    }

    #[test]
    fn a_lock_that_never_conflicts_fails_both_sides() {
        for findings in exchange(never_conflicts) {
            assert_eq!(
                severity(&findings, "peer-lock-held-here"),
                Severity::Fail,
                "{findings:#?}"
            );
            assert_eq!(
                severity(&findings, "peer-lock-held-there"),
                Severity::Fail,
                "{findings:#?}"
            );
            for f in findings.iter().filter(|f| f.severity != Severity::Pass) {
                assert!(f.fix.is_some(), "{f:?}");
            }
        }
    }

    #[test]
    fn the_coordinators_lock_passes_both_sides() {
        for findings in exchange(os::try_lock) {
            for check in [
                "peer-rendezvous",
                "peer-lock-held-here",
                "peer-lock-held-there",
                "peer-lock-handover",
            ] {
                assert_eq!(severity(&findings, check), Severity::Pass, "{findings:#?}");
            }
        }
    }
}
