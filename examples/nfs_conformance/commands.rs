//! The subcommands: each is one side of one lab case, run through the crate's
//! public API.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use fedota_store::{
    ArtifactKind, CreateOptions, Error, LockWait, ProblemId, Round, SelectorId, Store,
};

use crate::Outcome;
use crate::observe::{
    aggregate_weight, check_payload, now_ns, payload, read_all, server_clock_offset,
};

/// Creates the problem with its round-0 checkpoint under each root, and with
/// `selector`, that selector's aggregate of round 0.
pub(crate) fn setup(
    roots: &[PathBuf],
    problem: &ProblemId,
    selector: Option<&SelectorId>,
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
        if let Some(selector) = selector {
            store.selector(problem, selector)?.commit_aggregate(
                0,
                aggregate_weight(0),
                &mut &payload(0, size)[..],
            )?;
        }
    }
    Ok(Ok(format!(
        "created problem {problem} under {} root(s)",
        roots.len()
    )))
}

/// Holds the coordinator lock of each root for `secs` seconds (or until file `stop`
/// exists), optionally committing the first root's checkpoint every `every`
/// milliseconds meanwhile.
pub(crate) fn hold(
    roots: &[PathBuf],
    problem: &ProblemId,
    ready: &Path,
    secs: u64,
    stop: Option<&Path>,
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

    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut commits = 0u64;
    while Instant::now() < deadline && !stop.is_some_and(Path::exists) {
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
        "held {} lock(s) for {:.1} s, committing {commits} round(s) meanwhile",
        held.len(),
        started.elapsed().as_secs_f64()
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

/// Who commits in [`commit_loop`].
enum Writer {
    Coordinator(fedota_store::Coordinator),
    Selector(fedota_store::Selector),
}

/// Commits `count` more rounds of the global checkpoint, as coordinator, or with
/// `aggregate`, of that selector's aggregate (with the weight derived from its
/// round). Logs for each round the time its commit returned, by the file server's
/// clock.
pub(crate) fn commit_loop(
    root: &Path,
    problem: &ProblemId,
    aggregate: Option<&SelectorId>,
    count: u64,
    size: usize,
    log: Option<&Path>,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let store = Store::open(root)?;
    let (writer, first) = match aggregate {
        None => {
            let c = store.coordinator(problem, LockWait::Timeout(Duration::from_secs(60)))?;
            let first = c.global_round()? + 1;
            (Writer::Coordinator(c), first)
        }
        Some(id) => {
            let artifact = store
                .problem(problem)?
                .artifact(ArtifactKind::Aggregate(id.clone()));
            let stored = store.problem(problem)?.record(&artifact)?;
            let first = stored.map_or(0, |r| r.round) + 1;
            (Writer::Selector(store.selector(problem, id)?), first)
        }
    };
    let offset = server_clock_offset(root)?;
    let mut lines = String::new();
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut slow = Vec::new();
    for round in first..first + count {
        let t0 = Instant::now();
        let data = payload(round, size);
        let committed = match &writer {
            Writer::Coordinator(c) => c.commit_global_checkpoint(round, &mut &data[..]),
            Writer::Selector(s) => {
                s.commit_aggregate(round, aggregate_weight(round), &mut &data[..])
            }
        };
        if let Err(e) = committed {
            return Ok(Err(format!("commit of round {round} failed: {e}")));
        }
        let took = t0.elapsed();
        slowest = slowest.max(took);
        if took >= Duration::from_secs(1) {
            slow.push(format!("round {round} {} ms", took.as_millis()));
        }
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
        "committed rounds {first}..={} ({count} commits of {size} bytes) in {:.1} s: {:.1} ms each, slowest {} ms; over 1 s: [{}]; clock offset to server {} ms",
        first + count - 1,
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / count as f64,
        slowest.as_millis(),
        slow.join(", "),
        offset / 1_000_000
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

/// Reads the global checkpoint, verified, and checks its content, and with
/// `expect`, that it is of that round.
pub(crate) fn verify(
    root: &Path,
    problem: &ProblemId,
    expect: Option<Round>,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let store = Store::open(root)?;
    let snapshot = store.problem(problem)?.read_global_checkpoint(read_all)?;
    Ok(match check_payload(&snapshot.value) {
        Ok(round) if expect.is_some_and(|e| e != round) => Err(format!(
            "round {round}, verified, but round {} was expected",
            expect.unwrap_or_default()
        )),
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
