//! The subcommands: each is one side of one lab case, run through the crate's
//! public API.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::thread::sleep;
use std::time::{Duration, Instant};

use fedota_store::{CreateOptions, Error, LockWait, ProblemId, Round, Store};

use crate::Outcome;
use crate::observe::{
    RETRY_MISMATCH, RETRY_NOT_FOUND, RETRY_STALE, check_payload, now_ns, payload, read_all,
    server_clock_offset,
};

/// Creates the problem with its round-0 checkpoint under each root.
pub(crate) fn setup(
    roots: &[PathBuf],
    problem: &ProblemId,
    size: usize,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    for root in roots {
        fs::create_dir_all(root)?;
        let store = Store::open(root)?;
        store.create_problem(
            problem,
            &mut &b"lab model"[..],
            &mut &payload(0, size)[..],
            CreateOptions::default(),
        )?;
    }
    Ok(Ok(format!(
        "created problem {problem} under {} root(s)",
        roots.len()
    )))
}

/// Holds the coordinator lock of each root for `secs` seconds, optionally
/// committing the first root's checkpoint every `every` milliseconds meanwhile.
pub(crate) fn hold(
    roots: &[PathBuf],
    problem: &ProblemId,
    ready: &Path,
    secs: u64,
    every: Option<u64>,
    size: usize,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let mut held = Vec::new();
    for root in roots {
        let store = Store::open(root)?;
        match store.coordinator(problem, LockWait::Try) {
            Ok(c) => held.push(c),
            Err(e) => {
                return Ok(Err(format!(
                    "could not take the lock under {}: {e}",
                    root.display()
                )));
            }
        }
    }
    fs::write(ready, b"held\n")?;
    println!(
        "held {} lock(s) as generation(s) {:?}",
        held.len(),
        held.iter().map(|c| c.generation()).collect::<Vec<_>>()
    );
    io::stdout().flush()?;

    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut commits = 0u64;
    while Instant::now() < deadline {
        match every {
            Some(ms) => {
                let coordinator = &held[0];
                let round = coordinator.global_round()? + 1;
                if let Err(e) =
                    coordinator.commit_global_checkpoint(round, &mut &payload(round, size)[..])
                {
                    return Ok(Err(format!(
                        "commit of round {round} while holding the lock failed: {e}"
                    )));
                }
                commits += 1;
                sleep(Duration::from_millis(ms));
            }
            None => sleep(Duration::from_millis(200)),
        }
    }
    Ok(Ok(format!(
        "held {} lock(s) for {secs} s, committing {commits} round(s) meanwhile",
        held.len()
    )))
}

/// Tries to become coordinator of each root's problem without waiting, `repeat`
/// times. Prints `blocked ROOT` or `acquired ROOT` for every try.
pub(crate) fn try_lock(
    roots: &[PathBuf],
    problem: &ProblemId,
    repeat: u32,
    interval_ms: u64,
    expect_host: Option<&str>,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let (mut blocked, mut acquired, mut wrong_holder) = (0u32, 0u32, Vec::new());
    for attempt in 0..repeat {
        if attempt > 0 {
            sleep(Duration::from_millis(interval_ms));
        }
        for root in roots {
            let store = Store::open(root)?;
            match store.coordinator(problem, LockWait::Try) {
                Ok(c) => {
                    acquired += 1;
                    println!(
                        "acquired {} (generation {})",
                        root.display(),
                        c.generation()
                    );
                }
                Err(Error::LockHeld { holder, .. }) => {
                    blocked += 1;
                    let who = holder
                        .as_ref()
                        .map_or("an unknown holder".to_owned(), |h| h.to_string());
                    if repeat == 1 {
                        println!("blocked {} (held by {who})", root.display());
                    }
                    if let Some(host) = expect_host
                        && holder.as_ref().is_none_or(|h| h.host != host)
                    {
                        wrong_holder.push(who);
                    }
                }
                Err(e) => {
                    return Ok(Err(format!(
                        "try-lock under {}: unexpected error: {e}",
                        root.display()
                    )));
                }
            }
        }
    }
    let summary = format!("{blocked} blocked, {acquired} acquired");
    if let Some(who) = wrong_holder.first() {
        return Ok(Err(format!(
            "{summary}; the lock-held error named {who}, not host {}",
            expect_host.unwrap_or("?")
        )));
    }
    Ok(if acquired == 0 {
        Ok(summary)
    } else {
        Err(summary)
    })
}

/// Commits `count` more rounds of the global checkpoint, logging for each round the
/// time its commit returned, by the file server's clock.
pub(crate) fn commit_loop(
    root: &Path,
    problem: &ProblemId,
    count: u64,
    size: usize,
    log: Option<&Path>,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let store = Store::open(root)?;
    let coordinator = store.coordinator(problem, LockWait::Timeout(Duration::from_secs(60)))?;
    let offset = server_clock_offset(root)?;
    let mut lines = String::new();
    let first = coordinator.global_round()? + 1;
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for round in first..first + count {
        let t0 = Instant::now();
        if let Err(e) = coordinator.commit_global_checkpoint(round, &mut &payload(round, size)[..])
        {
            return Ok(Err(format!("commit of round {round} failed: {e}")));
        }
        slowest = slowest.max(t0.elapsed());
        writeln!(lines, "{round} {}", now_ns() + offset)?;
        if round % 100 == 0 {
            eprintln!(
                "commit-loop: round {round} after {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    let elapsed = started.elapsed();
    if let Some(log) = log {
        fs::write(log, lines)?;
    }
    Ok(Ok(format!(
        "committed rounds {first}..={} ({count} commits of {size} bytes) in {:.1} s: {:.1} ms each, slowest {} ms; clock offset to server {} ms",
        first + count - 1,
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / count as f64,
        slowest.as_millis(),
        offset / 1_000_000
    )))
}

/// How `read_loop` counts reads that still mismatched after the library's retries.
const GAVE_UP: &str = "inconsistent after retries";

/// Reads the global checkpoint over and over until it reaches `until`, checking
/// every read byte for byte. Logs, for each read, the time and the round seen.
pub(crate) fn read_loop(
    root: &Path,
    problem: &ProblemId,
    until: Round,
    timeout: Duration,
    log: Option<&Path>,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let store = Store::open(root)?;
    let problem = store.problem(problem)?;
    let offset = server_clock_offset(root)?;
    let deadline = Instant::now() + timeout;

    let (mut reads, mut torn, mut unverified, mut backwards) = (0u64, Vec::new(), 0u64, 0u64);
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut last = 0;
    let mut lines = String::new();
    let started = Instant::now();
    let mut progress = started;
    while last < until && Instant::now() < deadline {
        if progress.elapsed() >= Duration::from_secs(10) {
            progress = Instant::now();
            eprintln!(
                "read-loop: {reads} reads, newest round {last}, {:?} errors, after {:.0} s",
                errors,
                started.elapsed().as_secs_f64()
            );
        }
        match problem.read_global_checkpoint(read_all) {
            Ok(snapshot) => {
                reads += 1;
                let t = now_ns() + offset;
                if !snapshot.is_verified() {
                    unverified += 1;
                }
                let recorded = snapshot.round();
                match check_payload(&snapshot.value) {
                    Ok(round) if Some(round) == recorded => {
                        if round < last {
                            backwards += 1;
                        }
                        last = last.max(round);
                        writeln!(lines, "{t} {round}")?;
                    }
                    Ok(round) => torn.push(format!(
                        "content of round {round} under a record of round {recorded:?}"
                    )),
                    Err(e) => torn.push(e),
                }
            }
            Err(e) => {
                let class = match &e {
                    Error::Inconsistent { .. } => GAVE_UP.to_owned(),
                    e if e.io_kind() == Some(io::ErrorKind::StaleNetworkFileHandle) => {
                        "ESTALE".to_owned()
                    }
                    e if e.is_not_found() => "ENOENT".to_owned(),
                    e => format!("other: {e}"),
                };
                *errors.entry(class).or_default() += 1;
            }
        }
    }
    if let Some(log) = log {
        fs::write(log, lines)?;
    }

    // ESTALE, ENOENT and a mismatch must be retried inside the library; giving up
    // after its retries is a slow writer (reported, not failed), anything else is
    // an error a reader should never see while a healthy writer commits.
    let unretried: u64 = errors
        .iter()
        .filter(|(class, _)| class.as_str() != GAVE_UP)
        .map(|(_, n)| n)
        .sum();
    let summary = format!(
        "{reads} verified reads up to round {last}; retries inside the library: {} ESTALE, {} ENOENT, {} mismatch; errors returned: {errors:?}; clock offset to server {} ms",
        RETRY_STALE.load(Ordering::Relaxed),
        RETRY_NOT_FOUND.load(Ordering::Relaxed),
        RETRY_MISMATCH.load(Ordering::Relaxed),
        offset / 1_000_000
    );
    Ok(if !torn.is_empty() {
        Err(format!(
            "{} torn or mixed reads, first: {}; {summary}",
            torn.len(),
            torn[0]
        ))
    } else if unretried > 0 {
        Err(format!(
            "{unretried} reads returned an error other than {GAVE_UP:?}; {summary}"
        ))
    } else if unverified > 0 || backwards > 0 {
        Err(format!(
            "{unverified} unverified reads, {backwards} reads went back in rounds; {summary}"
        ))
    } else if last < until {
        Err(format!(
            "never saw round {until} within {} s; {summary}",
            timeout.as_secs()
        ))
    } else {
        Ok(summary)
    })
}

/// Parses a log of two numbers per line.
pub(crate) fn parse_log(path: &Path) -> Result<Vec<(i128, i128)>, Box<dyn std::error::Error>> {
    let text = fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let mut rows = Vec::new();
    for line in text.lines() {
        let mut it = line.split_whitespace().map(str::parse::<i128>);
        match (it.next(), it.next()) {
            (Some(Ok(a)), Some(Ok(b))) => rows.push((a, b)),
            _ => return Err(format!("{}: bad line {line:?}", path.display()).into()),
        }
    }
    Ok(rows)
}

/// Compares the reader's log with the writer's: for each read, how many commits
/// had completed that the reader did not see yet, and for how long the next version
/// had been committed.
pub(crate) fn staleness(
    writer: &Path,
    reader: &Path,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let commits = parse_log(writer)?; // (round, done at)
    let reads = parse_log(reader)?; // (at, round)
    let done: BTreeMap<i128, i128> = commits.iter().copied().collect();
    if reads.is_empty() || commits.is_empty() {
        return Ok(Err("an empty log".to_owned()));
    }

    let (mut lag_commits, mut lag_ns) = (Vec::new(), Vec::new());
    for &(at, round) in &reads {
        let newest = commits
            .iter()
            .take_while(|(_, t)| *t <= at)
            .map(|(r, _)| *r)
            .last()
            .unwrap_or(0);
        lag_commits.push((newest - round).max(0));
        lag_ns.push(match done.get(&(round + 1)) {
            Some(&next) if newest > round => (at - next).max(0),
            _ => 0,
        });
    }
    lag_commits.sort_unstable();
    lag_ns.sort_unstable();
    let pct = |v: &[i128], p: usize| v[(v.len() - 1) * p / 100];
    let ms = |ns: i128| ns as f64 / 1e6;
    let current = lag_commits.iter().filter(|l| **l == 0).count();
    Ok(Ok(format!(
        "{} reads during {} commits: {current} saw the newest commit; behind by commits p50 {} p95 {} max {}; behind by time p50 {:.0} ms p95 {:.0} ms max {:.0} ms",
        reads.len(),
        commits.len(),
        pct(&lag_commits, 50),
        pct(&lag_commits, 95),
        lag_commits[lag_commits.len() - 1],
        ms(pct(&lag_ns, 50)),
        ms(pct(&lag_ns, 95)),
        ms(lag_ns[lag_ns.len() - 1]),
    )))
}

/// Commits large checkpoints until killed, printing each round before its commit.
pub(crate) fn crash_loop(
    root: &Path,
    problem: &ProblemId,
    size: usize,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let store = Store::open(root)?;
    let coordinator = store.coordinator(problem, LockWait::Try)?;
    println!("generation {}", coordinator.generation());
    loop {
        let round = coordinator.global_round()? + 1;
        println!("committing round {round}");
        io::stdout().flush()?;
        if let Err(e) = coordinator.commit_global_checkpoint(round, &mut &payload(round, size)[..])
        {
            return Ok(Err(format!("commit of round {round} failed: {e}")));
        }
        println!("committed round {round}");
    }
}

/// Waits for the coordinator lock, checks the checkpoint left behind, and commits
/// the next round.
pub(crate) fn takeover(
    root: &Path,
    problem: &ProblemId,
    wait: Duration,
    size: usize,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let store = Store::open(root)?;
    let started = Instant::now();
    let coordinator = match store.coordinator(problem, LockWait::Timeout(wait)) {
        Ok(c) => c,
        Err(e) => return Ok(Err(format!("no takeover: {e}"))),
    };
    let waited = started.elapsed();

    // What the old coordinator left: a whole verified version, or (if it died
    // between its renames and its record) an inconsistency, never torn data.
    let left = match coordinator.read_global_checkpoint(read_all) {
        Ok(s) => match check_payload(&s.value) {
            Ok(round) if Some(round) == s.round() => format!("verified round {round}"),
            Ok(round) => {
                return Ok(Err(format!(
                    "content of round {round} under a record of round {:?}",
                    s.round()
                )));
            }
            Err(e) => return Ok(Err(format!("torn checkpoint accepted as verified: {e}"))),
        },
        Err(e @ Error::Inconsistent { .. }) => format!("an unfinished commit ({e})"),
        Err(e) => return Ok(Err(format!("reading the checkpoint left behind: {e}"))),
    };

    let round = coordinator.global_round()? + 1;
    if let Err(e) = coordinator.commit_global_checkpoint(round, &mut &payload(round, size)[..]) {
        return Ok(Err(format!(
            "the new coordinator could not commit round {round}: {e}"
        )));
    }
    let after = coordinator.read_global_checkpoint(read_all)?;
    if check_payload(&after.value) != Ok(round) {
        return Ok(Err(format!(
            "after committing round {round}, read back {:?}",
            after.round()
        )));
    }
    Ok(Ok(format!(
        "took the lock after {} ms as generation {}; found {left}; committed round {round}",
        waited.as_millis(),
        coordinator.generation()
    )))
}

/// Becomes coordinator, signals `ready`, waits for `go`, then tries to commit the
/// next round. The case arranges for another coordinator to have taken over in
/// between; the commit must then be refused with `Error::Fenced`.
pub(crate) fn stale_commit(
    root: &Path,
    problem: &ProblemId,
    ready: &Path,
    go: &Path,
    timeout: Duration,
    size: usize,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let store = Store::open(root)?;
    let coordinator = store.coordinator(problem, LockWait::Timeout(Duration::from_secs(60)))?;
    let ours = coordinator.generation();
    fs::write(ready, format!("generation {ours}\n"))?;
    println!(
        "coordinator with generation {ours}; waiting for {}",
        go.display()
    );
    io::stdout().flush()?;

    let deadline = Instant::now() + timeout;
    while !go.exists() {
        if Instant::now() > deadline {
            return Ok(Err(format!("no go signal within {} s", timeout.as_secs())));
        }
        sleep(Duration::from_millis(100));
    }

    let round = coordinator.global_round().unwrap_or(0) + 1;
    Ok(
        match coordinator.commit_global_checkpoint(round, &mut &payload(round, size)[..]) {
            Err(Error::Fenced { ours, current, .. }) => Ok(format!(
                "the late commit of round {round} by generation {ours} was refused: generation {current} had taken over"
            )),
            Err(e) => Err(format!(
                "the late commit of round {round} failed, but not by the fencing check: {e}"
            )),
            Ok(_) => Err(format!(
                "the late commit of round {round} by generation {ours} was accepted"
            )),
        },
    )
}

/// Reads the global checkpoint, verified, and checks its content.
pub(crate) fn verify(
    root: &Path,
    problem: &ProblemId,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let store = Store::open(root)?;
    let snapshot = store.problem(problem)?.read_global_checkpoint(read_all)?;
    Ok(match check_payload(&snapshot.value) {
        Ok(round) if Some(round) == snapshot.round() => Ok(format!(
            "round {round}, {} bytes, verified",
            snapshot.value.len()
        )),
        Ok(round) => Err(format!(
            "content of round {round} under a record of round {:?}",
            snapshot.round()
        )),
        Err(e) => Err(e),
    })
}

/// Lists every file under `dir`, recursively.
pub(crate) fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            walk(&entry.path(), out)?;
        } else {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// Removes the crate's leftover temporary files and checks that nothing else went.
pub(crate) fn gc(root: &Path) -> Result<Outcome, Box<dyn std::error::Error>> {
    let is_temp = |p: &PathBuf| {
        p.file_name().is_some_and(|n| {
            n.to_string_lossy()
                .starts_with(fedota_store::layout::TEMP_PREFIX)
        })
    };
    let mut before = Vec::new();
    walk(root, &mut before)?;
    let removed = Store::open(root)?.remove_temporaries(Duration::ZERO)?;
    let mut after = Vec::new();
    walk(root, &mut after)?;

    let left: Vec<_> = after.iter().filter(|p| is_temp(p)).collect();
    let lost: Vec<_> = before
        .iter()
        .filter(|p| !is_temp(p) && !after.contains(p))
        .collect();
    let summary = format!(
        "removed {} temporary file(s) of {} files",
        removed.len(),
        before.len()
    );
    Ok(if !left.is_empty() {
        Err(format!("{summary}; still there: {left:?}"))
    } else if !lost.is_empty() {
        Err(format!("{summary}; also gone: {lost:?}"))
    } else {
        Ok(summary)
    })
}
