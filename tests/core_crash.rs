//! A writer killed with SIGKILL at random points: readers only ever get whole,
//! verified versions, and the leftovers can be cleaned up.
//!
//! The writer is this test binary re-run as a child (see `common::child_command`).
//! The random kill points come from a seed printed at the start; set
//! `FEDOTA_CRASH_SEED` to replay a run. The tree lives in `/dev/shm` when it exists:
//! what is tested is a killed process, not lost power, so fsync latency on a busy
//! disk only slows the test down.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use common::{ChildProc, Tree, content_for_round, read_bytes, weight_for_round};
use fedota_store::{ArtifactKind, Error, LockWait, ProblemId, RetryPolicy, Store};

const TEST_NAME: &str = "a_writer_killed_at_random_points_never_shows_a_reader_a_wrong_version";

/// The selector whose aggregate the writer commits beside the global checkpoint.
const SELECTOR: &str = "selector-7d4f9c-x2x9q.selector:50051";

/// Keep killing until the global checkpoint reaches this round and this many kills
/// are done...
const TARGET_ROUNDS: u64 = 500;
const TARGET_KILLS: u32 = 30;
/// ...or until this much time has passed, whichever comes first.
const TIME_BUDGET: Duration = Duration::from_secs(18);
/// The fewest commits of each artifact that make the test meaningful.
const MIN_ROUNDS: u64 = 200;
/// The fewest kill cycles that make the test meaningful.
const MIN_KILLS: u32 = 10;
/// The longest a writer lives after it reports that it started.
const MAX_LIFE_US: u64 = 60_000;

#[test]
fn a_writer_killed_at_random_points_never_shows_a_reader_a_wrong_version() {
    if let Some(role) = common::child_role() {
        return run_child(&role);
    }

    let tree = Tree::in_memory();
    let selector = common::selector_id(SELECTOR);
    let seed = seed();
    eprintln!("crash test seed: {seed} (set FEDOTA_CRASH_SEED to replay)");

    // Round 0 of the aggregate exists before the readers start, so they never meet
    // a missing file.
    tree.store
        .selector(&tree.id, &selector)
        .unwrap()
        .commit_aggregate(0, weight_for_round(0), &mut &content_for_round(1, 0)[..])
        .unwrap();

    // Readers in this process, writers in child processes.
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = [
        ArtifactKind::GlobalCheckpoint,
        ArtifactKind::Aggregate(selector.clone()),
    ]
    .into_iter()
    .map(|kind| {
        let (root, id, stop) = (tree.root().to_owned(), tree.id.clone(), Arc::clone(&stop));
        std::thread::spawn(move || read_until_stopped(root, id, kind, stop))
    })
    .collect();

    // Kill the writer at random points, again and again.
    let started = Instant::now();
    let mut rng = seed;
    let mut kills = 0;
    let problem = tree.store.problem(&tree.id).unwrap();
    while started.elapsed() < TIME_BUDGET
        && (kills < TARGET_KILLS || problem.global_round().unwrap() < TARGET_ROUNDS)
    {
        let mut writer = ChildProc::spawn(
            "writer",
            common::child_command(TEST_NAME, "writer", tree.root()),
        );
        writer.expect_event("started", Duration::from_secs(20));

        rng = common::xorshift(rng);
        std::thread::sleep(Duration::from_micros(1_000 + rng % MAX_LIFE_US));
        writer.kill();
        kills += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let stats: Vec<ReadStats> = readers.into_iter().map(|r| r.join().unwrap()).collect();

    let rounds = problem.global_round().unwrap();
    eprintln!(
        "{kills} kills, {rounds} rounds committed in {:?}",
        started.elapsed()
    );
    for s in &stats {
        eprintln!(
            "reader of {}: {} verified reads of {} distinct rounds, {} inconsistent (allowed)",
            s.what,
            s.ok,
            s.rounds.len(),
            s.inconsistent
        );
    }

    // A wrong Ok, or any error other than Inconsistent, is a failure.
    for s in &stats {
        assert!(s.wrong.is_empty(), "reader of {}: {:#?}", s.what, s.wrong);
        assert!(
            s.ok > 0 && s.rounds.len() > 1,
            "reader of {} saw no progress",
            s.what
        );
    }
    assert!(kills >= MIN_KILLS, "only {kills} kills");
    assert!(
        rounds >= MIN_ROUNDS,
        "only {rounds} rounds in {TIME_BUDGET:?}"
    );

    check_recovery_and_cleanup(&tree, &selector);
}

/// After the kills: one clean commit repairs whatever a kill left half-published, a
/// writer killed mid-stream leaves a temporary file that readers ignore, and cleanup
/// removes exactly the crate's temporary files.
fn check_recovery_and_cleanup(tree: &Tree, selector: &fedota_store::SelectorId) {
    let mut finisher = ChildProc::spawn(
        "finisher",
        common::child_command(TEST_NAME, "finisher", tree.root()),
    );
    let done = finisher.expect_event("finished ", Duration::from_secs(20));
    finisher.wait_success(Duration::from_secs(20));
    let last: u64 = done["finished ".len()..].parse().unwrap();

    let problem = tree.store.problem(&tree.id).unwrap();
    let aggregate = problem.artifact(ArtifactKind::Aggregate(selector.clone()));
    let global = problem.read_global_checkpoint(read_bytes).unwrap();
    assert_eq!(
        (global.round(), global.value),
        (Some(last), content_for_round(0, last))
    );
    let agg = problem.read_artifact(&aggregate, read_bytes).unwrap();
    assert_eq!(agg.round(), Some(last));
    assert_eq!(agg.value, content_for_round(1, last));
    assert_eq!(agg.weight, Some(weight_for_round(last)));

    // A writer killed while streaming leaves its temporary file; readers never see it.
    let mut staller = ChildProc::spawn(
        "staller",
        common::child_command(TEST_NAME, "staller", tree.root()),
    );
    let staged = staller.expect_event("staged ", Duration::from_secs(20));
    let stalled_temp = PathBuf::from(&staged["staged ".len()..]);
    staller.kill();
    assert!(
        stalled_temp.exists(),
        "{} should be left",
        stalled_temp.display()
    );
    let agg = problem.read_artifact(&aggregate, read_bytes).unwrap();
    assert_eq!(agg.value, content_for_round(1, last));

    // Every leftover, from the kills and from the staller.
    let init = tree.init_dir();
    let sel_dir = tree.selector_dir(SELECTOR);
    let dirs = [init.clone(), sel_dir.clone(), sel_dir.join("roundFiles")];
    let leftovers: BTreeSet<PathBuf> = dirs
        .iter()
        .flat_map(|d| common::temporaries_in(d))
        .collect();
    eprintln!(
        "{} leftover temporary files after the kills",
        leftovers.len()
    );
    assert!(leftovers.contains(&stalled_temp));

    // Files cleanup must never touch, planted beside the leftovers.
    let planted = [
        init.join(".nfs0000abcd"),
        sel_dir.join(".nfs000000000000beef0001"),
        init.join("unrelated.txt"),
        sel_dir.join(".fedota-tmpish"),
    ];
    for p in &planted {
        fs::write(p, b"keep me").unwrap();
    }
    let before: Vec<Vec<String>> = dirs.iter().map(|d| common::names_in(d)).collect();

    let removed = tree.store.remove_temporaries(Duration::ZERO).unwrap();

    let removed: BTreeSet<PathBuf> = removed.into_iter().map(|l| l.path).collect();
    assert_eq!(removed, leftovers, "cleanup removes exactly the leftovers");
    for p in &planted {
        assert_eq!(fs::read(p).unwrap(), b"keep me", "{} survives", p.display());
    }
    for (dir, names) in dirs.iter().zip(before) {
        let expected: Vec<String> = names
            .into_iter()
            .filter(|n| !n.starts_with(".fedota-tmp."))
            .collect();
        assert_eq!(common::names_in(dir), expected, "in {}", dir.display());
    }
    assert!(
        problem
            .read_global_checkpoint(read_bytes)
            .unwrap()
            .is_verified()
    );
    assert!(problem.verify(&aggregate).unwrap().is_verified());
    tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
}

/// What one reader thread saw.
#[derive(Debug, Default)]
struct ReadStats {
    what: String,
    ok: u64,
    inconsistent: u64,
    rounds: BTreeSet<u64>,
    /// Anything that must never happen: a wrong Ok, a round going back, another error.
    wrong: Vec<String>,
}

fn read_until_stopped(
    root: PathBuf,
    id: ProblemId,
    kind: ArtifactKind,
    stop: Arc<AtomicBool>,
) -> ReadStats {
    // Few, short retries, so readers also give up while a kill leaves a mismatch.
    let policy = RetryPolicy {
        attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
    };
    let store = Store::open(root).unwrap().with_retry_policy(policy);
    let problem = store.problem(&id).unwrap();
    let artifact = problem.artifact(kind.clone());
    let stream = u64::from(matches!(kind, ArtifactKind::Aggregate(_)));
    let mut stats = ReadStats {
        what: kind.to_string(),
        ..ReadStats::default()
    };
    let mut last_round = 0;

    while !stop.load(Ordering::Relaxed) {
        match problem.read_artifact(&artifact, read_bytes) {
            Ok(snapshot) => {
                let Some(round) = snapshot.round() else {
                    stats
                        .wrong
                        .push("an unverified read of a recorded file".into());
                    continue;
                };
                if snapshot.value != expected_content(stream, round) {
                    stats
                        .wrong
                        .push(format!("round {round}: content of another version"));
                }
                if stream == 1 && snapshot.weight != Some(weight_for_round(round)) {
                    stats
                        .wrong
                        .push(format!("round {round}: weight {:?}", snapshot.weight));
                }
                if round < last_round {
                    stats
                        .wrong
                        .push(format!("round {round} after round {last_round}"));
                }
                last_round = round;
                stats.ok += 1;
                stats.rounds.insert(round);
            }
            Err(Error::Inconsistent { .. }) => stats.inconsistent += 1,
            Err(e) => stats.wrong.push(format!("unexpected error: {e}")),
        }
    }
    stats
}

/// The child roles: a writer that commits until killed, one that finishes a round
/// cleanly, and one that stalls in the middle of a commit.
fn run_child(role: &str) {
    let store = Store::open(common::child_root()).unwrap();
    let id = ProblemId::new("p1").unwrap();
    let selector = store.selector(&id, &common::selector_id(SELECTOR)).unwrap();

    match role {
        "writer" | "finisher" => {
            // The previous writer was killed, so the lock is free at once.
            let coordinator = store
                .coordinator(&id, LockWait::Timeout(Duration::from_secs(10)))
                .unwrap();
            common::report("started");

            let first = coordinator.global_round().unwrap() + 1;
            let last = if role == "finisher" {
                first
            } else {
                first + 100_000
            };
            for round in first..=last {
                coordinator
                    .commit_global_checkpoint(round, &mut &content_for_round(0, round)[..])
                    .unwrap();
                selector
                    .commit_aggregate(
                        round,
                        weight_for_round(round),
                        &mut &content_for_round(1, round)[..],
                    )
                    .unwrap();
            }
            common::report(format!("finished {last}"));
        }
        "staller" => {
            let round = selector.global_round().unwrap() + 1;
            let mut writer = selector.aggregate_writer(round, 1).unwrap();
            writer.write_all(b"the first half of an aggregate").unwrap();
            writer.flush().unwrap();
            common::report(format!("staged {}", writer.temp_path().display()));
            std::thread::sleep(Duration::from_secs(60));
        }
        other => panic!("unknown child role {other}"),
    }
}

/// What a verified read of `stream` at `round` must return. The global checkpoint of
/// round 0 is the one the problem was created with.
fn expected_content(stream: u64, round: u64) -> Vec<u8> {
    if stream == 0 && round == 0 {
        return common::GLOBAL_0.to_vec();
    }
    content_for_round(stream, round)
}

fn seed() -> u64 {
    if let Ok(s) = std::env::var("FEDOTA_CRASH_SEED") {
        return s.parse().expect("FEDOTA_CRASH_SEED is a number");
    }
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    u64::from(nanos) | 1
}
