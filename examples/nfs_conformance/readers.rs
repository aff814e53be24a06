//! The reading side of the reader-during-commits cases: a verified read loop, and
//! how stale its reads were against the writer's log.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fedota_store::{ArtifactKind, Error, ProblemId, Round, SelectorId, Store};

use crate::Outcome;
use crate::observe::{
    HEADER_LEN, RETRY_MISMATCH, RETRY_NOT_FOUND, RETRY_STALE, aggregate_weight, check_payload,
    now_ns, parse_header, read_all, server_clock_offset,
};

/// Reads the global checkpoint (or, with `aggregate`, that selector's aggregate) over
/// and over until it reaches round `until`, checking every read byte for byte, and an
/// aggregate's weight against its round. Logs, for each read, the time and the round.
///
/// Fails on a torn or mixed read, an unverified or backwards one, and on any error
/// the library returned: ESTALE, ENOENT and a mismatch must be retried inside it, and
/// with records keeping the commits before them a healthy writer leaves nothing that
/// its retries cannot ride out.
pub(crate) fn read_loop(
    root: &Path,
    problem: &ProblemId,
    aggregate: Option<&SelectorId>,
    until: Round,
    timeout: Duration,
    log: Option<&Path>,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let store = Store::open(root)?;
    let problem = store.problem(problem)?;
    let artifact = problem.artifact(match aggregate {
        Some(s) => ArtifactKind::Aggregate(s.clone()),
        None => ArtifactKind::GlobalCheckpoint,
    });
    let offset = server_clock_offset(root)?;
    let deadline = Instant::now() + timeout;

    let (mut reads, mut torn, mut unverified, mut backwards) = (0u64, Vec::new(), 0u64, 0u64);
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut first_error = None;
    let mut last = 0;
    let mut lines = String::new();
    let started = Instant::now();
    let mut progress = started;
    while last < until && Instant::now() < deadline {
        if progress.elapsed() >= Duration::from_secs(10) {
            progress = Instant::now();
            eprintln!(
                "read-loop: {reads} reads, newest round {last}, {errors:?} errors, after {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
        let snapshot = match problem.read_artifact(&artifact, read_all) {
            Ok(snapshot) => snapshot,
            Err(e) => {
                let class = match &e {
                    Error::Inconsistent { .. } => "inconsistent after retries".to_owned(),
                    e if e.io_kind() == Some(io::ErrorKind::StaleNetworkFileHandle) => {
                        "ESTALE".to_owned()
                    }
                    e if e.is_not_found() => "ENOENT".to_owned(),
                    _ => "other".to_owned(),
                };
                *errors.entry(class).or_default() += 1;
                eprintln!(
                    "read-loop: error at {} ns (server clock): {e}",
                    now_ns() + offset
                );
                first_error.get_or_insert_with(|| e.to_string());
                continue;
            }
        };

        // The content names its round; the record and the weight must agree with it.
        reads += 1;
        let t = now_ns() + offset;
        if !snapshot.is_verified() {
            unverified += 1;
        }
        let recorded = snapshot.round();
        match check_payload(&snapshot.value) {
            Err(e) => torn.push(e),
            Ok(round) if Some(round) != recorded => torn.push(format!(
                "content of round {round} under a record of round {recorded:?}"
            )),
            Ok(round)
                if aggregate.is_some() && snapshot.weight != Some(aggregate_weight(round)) =>
            {
                torn.push(format!(
                    "content of round {round} with weight {:?}, but that round's weight is {}",
                    snapshot.weight,
                    aggregate_weight(round)
                ));
            }
            Ok(round) => {
                if round < last {
                    backwards += 1;
                }
                last = last.max(round);
                writeln!(lines, "{t} {round}")?;
            }
        }
    }
    if let Some(log) = log {
        fs::write(log, lines)?;
    }

    let returned: u64 = errors.values().sum();
    let summary = format!(
        "{reads} verified reads up to round {last} in {:.0} s; retries inside the library: {} ESTALE, {} ENOENT, {} mismatch; errors returned: {errors:?}; clock offset to server {} ms",
        started.elapsed().as_secs_f64(),
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
    } else if returned > 0 {
        Err(format!(
            "{returned} reads returned an error, first: {}; {summary}",
            first_error.unwrap_or_default()
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

/// Watches, on the file server's own filesystem, how long the data file and its
/// commit record named different rounds: the window between a commit's renames
/// that a verifying reader cannot bridge, as the server saw it. Polls every 5 ms
/// until the record reaches round `until`.
pub(crate) fn watch(
    root: &Path,
    problem: &ProblemId,
    aggregate: Option<&SelectorId>,
    until: Round,
    timeout: Duration,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    use std::io::Read as _;

    let store = Store::open(root)?;
    let problem = store.problem(problem)?;
    let artifact = problem.artifact(match aggregate {
        Some(s) => ArtifactKind::Aggregate(s.clone()),
        None => ArtifactKind::GlobalCheckpoint,
    });
    let deadline = Instant::now() + timeout;

    // Each window: (data round, when it began, how long it lasted).
    let mut windows: Vec<(Round, i128, i128)> = Vec::new();
    let mut open: Option<(Round, i128)> = None;
    let mut recorded = 0;
    while recorded < until && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        let record = problem.record(&artifact)?.map_or(0, |r| r.round);
        let mut header = vec![0; HEADER_LEN];
        fs::File::open(artifact.data_path())?.read_exact(&mut header)?;
        let (data, _) = parse_header(&header)?;
        let now = now_ns();
        recorded = record;
        match open {
            None if data != record => open = Some((data, now)),
            Some((round, since)) if data == record => {
                windows.push((round, since, now - since));
                open = None;
            }
            _ => {}
        }
    }

    // Every window of a second or more, with its start by the server's clock (the
    // time a reader's error line gives), then a summary line.
    for (round, since, ns) in windows.iter().filter(|w| w.2 >= 1_000_000_000) {
        println!(
            "round {round}: data without its record from {since} ns for {} ms",
            ns / 1_000_000
        );
    }
    let over_1s = windows.iter().filter(|w| w.2 >= 1_000_000_000).count();
    windows.sort_by_key(|w| std::cmp::Reverse(w.2));
    let longest: Vec<_> = windows
        .iter()
        .take(3)
        .map(|(round, _, ns)| format!("round {round} {} ms", ns / 1_000_000))
        .collect();
    Ok(Ok(format!(
        "data and record named different rounds {} times, {over_1s} of them for 1 s or more; longest: {}",
        windows.len(),
        longest.join(", ")
    )))
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

/// Compares the reader's log with the writer's (see [`lag`]).
pub(crate) fn staleness(
    writer: &Path,
    reader: &Path,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    Ok(lag(&parse_log(writer)?, &parse_log(reader)?))
}

/// For each read made while the writer was committing (between the end of its first
/// commit and the end of its last), how many commits had completed that the reader
/// did not see yet, and for how long the next version had been committed.
///
/// `commits` holds (round, done at) in commit order, `reads` (at, round seen); all
/// times by the file server's clock, in nanoseconds.
pub(crate) fn lag(commits: &[(i128, i128)], reads: &[(i128, i128)]) -> Outcome {
    let (Some(&(_, first)), Some(&(_, end))) = (commits.first(), commits.last()) else {
        return Err("the writer's log is empty".to_owned());
    };
    let during: Vec<_> = reads
        .iter()
        .filter(|(at, _)| (first..=end).contains(at))
        .copied()
        .collect();
    if during.is_empty() {
        return Err(format!(
            "none of the {} reads was made while the writer committed",
            reads.len()
        ));
    }

    let done: BTreeMap<i128, i128> = commits.iter().copied().collect();
    let (mut lag_commits, mut lag_ns) = (Vec::new(), Vec::new());
    for &(at, round) in &during {
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
    Ok(format!(
        "{} of {} reads were made during the {} commits ({:.1} s): {current} saw the newest commit; behind by commits p50 {} p95 {} max {}; behind by time p50 {:.0} ms p95 {:.0} ms max {:.0} ms",
        during.len(),
        reads.len(),
        commits.len(),
        ms(end - first) / 1000.0,
        pct(&lag_commits, 50),
        pct(&lag_commits, 95),
        lag_commits[lag_commits.len() - 1],
        ms(pct(&lag_ns, 50)),
        ms(pct(&lag_ns, 95)),
        ms(lag_ns[lag_ns.len() - 1]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i128 = 1_000_000;

    #[test]
    fn reads_outside_the_commits_are_not_counted() {
        // Commits of rounds 1..=3 done at 100, 200 and 300 ms.
        let commits = [(1, 100 * MS), (2, 200 * MS), (3, 300 * MS)];
        // Before the first commit and after the last, round 0 and round 3: left out.
        // Between: one current read, and one two commits behind.
        let reads = [
            (10 * MS, 0),
            (50 * MS, 0),
            (150 * MS, 1),
            (250 * MS, 0),
            (400 * MS, 3),
        ];
        let out = lag(&commits, &reads).unwrap();
        assert!(
            out.starts_with("2 of 5 reads were made during the 3 commits"),
            "{out}"
        );
        assert!(out.contains("1 saw the newest commit"), "{out}");
        assert!(out.contains("max 2;"), "{out}");
        // Round 1 had been committed for 150 ms when round 0 was read at 250 ms.
        assert!(out.contains("max 150 ms"), "{out}");
    }

    #[test]
    fn no_read_during_the_commits_is_an_error() {
        let commits = [(1, 100 * MS), (2, 200 * MS)];
        assert!(lag(&commits, &[(50 * MS, 0), (250 * MS, 2)]).is_err());
        assert!(lag(&[], &[(50 * MS, 0)]).is_err());
    }
}
