//! The coordinator lock: one holder at a time, across processes and across the
//! commits that replace `fl_checkpoint`, with a generation that only grows.
//!
//! The multi-process tests re-run this test binary as child coordinators (see
//! `common::child_command`); each test dispatches on `common::child_role()`.

mod common;

use std::fs;
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{ChildProc, Tree, read_bytes};
use fedota_store::{Error, LockStatus, LockWait, Store};

/// How many rounds the holder commits while the contender keeps trying.
const HOLDER_ROUNDS: u64 = 12;

/// How a holder process ends in a contention test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HolderEnd {
    /// SIGKILL: the kernel closes its descriptors, which releases the OFD lock.
    Killed,
    /// It drops its coordinator and exits normally.
    Exits,
}

#[test]
fn a_second_coordinator_process_gets_the_lock_only_after_the_holder_is_killed() {
    if let Some(role) = common::child_role() {
        return run_child(&role);
    }
    contend(
        "a_second_coordinator_process_gets_the_lock_only_after_the_holder_is_killed",
        HolderEnd::Killed,
    );
}

#[test]
fn a_second_coordinator_process_gets_the_lock_only_after_the_holder_exits() {
    if let Some(role) = common::child_role() {
        return run_child(&role);
    }
    contend(
        "a_second_coordinator_process_gets_the_lock_only_after_the_holder_exits",
        HolderEnd::Exits,
    );
}

/// Runs a holder and a contender, two processes, and checks that the contender gets
/// the lock only once the holder is gone, with a higher generation.
fn contend(test_name: &str, end: HolderEnd) {
    let tree = Tree::new();
    let wait = Duration::from_secs(20);

    // The holder takes the lock and reports who it is.
    let mut holder_cmd = common::child_command(test_name, "holder", tree.root());
    holder_cmd.stdin(Stdio::piped());
    let mut holder = ChildProc::spawn("holder", holder_cmd);
    let acquired = holder.expect_event("acquired ", wait);
    let (holder_gen, holder_pid) = parse_acquired(&acquired);
    assert_eq!(holder_pid, holder.pid());

    // A third process, this one, is refused too, and told who holds the lock.
    let err = tree.store.coordinator(&tree.id, LockWait::Try).unwrap_err();
    let Error::LockHeld {
        holder: Some(seen), ..
    } = &err
    else {
        panic!("expected LockHeld with a holder, got {err:?}");
    };
    assert_eq!((seen.pid, seen.generation), (holder_pid, holder_gen));
    assert!(
        err.to_string().contains(&format!("pid {holder_pid}")),
        "{err}"
    );
    let status = tree.store.problem(&tree.id).unwrap().lock_status().unwrap();
    assert!(
        matches!(&status, LockStatus::Held(Some(h)) if h.pid == holder_pid),
        "{status:?}"
    );

    // The contender keeps trying while the holder commits round after round.
    holder.expect_event("ready", wait);
    let mut contender = ChildProc::spawn(
        "contender",
        common::child_command(test_name, "contender", tree.root()),
    );
    contender.expect_event("held ", wait);
    holder_start(&mut holder);
    for round in 1..=HOLDER_ROUNDS {
        assert_eq!(
            holder.expect_event("committed ", wait),
            format!("committed {round}")
        );
    }
    holder.expect_event("done", wait);

    // Every attempt so far was refused, naming the holder; none succeeded.
    let attempts = contender.drain_events();
    let refusals: Vec<&String> = attempts.iter().filter(|e| e.starts_with("held ")).collect();
    assert!(
        !attempts.iter().any(|e| e.starts_with("acquired")),
        "the contender got the lock while the holder held it: {attempts:?}"
    );
    assert!(
        refusals.len() >= 5,
        "the contender should have kept trying during the commits: {attempts:?}"
    );
    let host = &seen.host;
    for refusal in &refusals {
        assert_eq!(
            **refusal,
            format!("held {holder_pid} {host} {holder_gen}"),
            "each refusal names the holder"
        );
    }

    // Once the holder is gone, the contender takes over with a higher generation and
    // can commit the next round.
    match end {
        HolderEnd::Killed => holder.kill(),
        HolderEnd::Exits => {
            drop(holder.child.stdin.take());
            holder.expect_event("released", wait);
            holder.wait_success(wait);
        }
    }
    let acquired = contender.expect_event("acquired ", wait);
    let (contender_gen, contender_pid) = parse_acquired(&acquired);
    assert_eq!(contender_pid, contender.pid());
    assert!(
        contender_gen > holder_gen,
        "generation {contender_gen} after {holder_gen}"
    );
    assert_eq!(
        contender.expect_event("committed ", wait),
        format!("committed {}", HOLDER_ROUNDS + 1)
    );
    contender.wait_success(wait);

    // What the two processes committed is all there, in order.
    let problem = tree.store.problem(&tree.id).unwrap();
    let read = problem.read_global_checkpoint(read_bytes).unwrap();
    let record = read.record.unwrap();
    assert_eq!(record.round, HOLDER_ROUNDS + 1);
    assert_eq!(record.generation, Some(contender_gen));
    assert_eq!(record.writer.pid, contender_pid);
    assert_eq!(read.value, common::content_for_round(0, HOLDER_ROUNDS + 1));
}

/// Tells the holder to start committing.
fn holder_start(holder: &mut ChildProc) {
    use std::io::Write;
    let stdin = holder.child.stdin.as_mut().unwrap();
    stdin.write_all(b"go\n").unwrap();
    stdin.flush().unwrap();
}

/// Parses `acquired <generation> <pid>`.
fn parse_acquired(event: &str) -> (u64, u32) {
    let mut parts = event.split_whitespace().skip(1);
    let generation = parts.next().unwrap().parse().unwrap();
    let pid = parts.next().unwrap().parse().unwrap();
    (generation, pid)
}

/// The child roles of the contention tests.
fn run_child(role: &str) {
    let store = Store::open(common::child_root()).unwrap();
    let id = fedota_store::ProblemId::new("p1").unwrap();

    match role {
        "holder" => {
            let coordinator = store.coordinator(&id, LockWait::Try).unwrap();
            common::report(format!(
                "acquired {} {}",
                coordinator.generation(),
                std::process::id()
            ));
            common::report("ready");

            // Wait for the parent's go, then commit while the contender tries.
            let mut stdin = std::io::stdin();
            let mut line = [0u8; 3];
            stdin.read_exact(&mut line).unwrap();
            for round in 1..=HOLDER_ROUNDS {
                let data = common::content_for_round(0, round);
                coordinator
                    .commit_global_checkpoint(round, &mut &data[..])
                    .unwrap();
                common::report(format!("committed {round}"));
                std::thread::sleep(Duration::from_millis(20));
            }
            common::report("done");

            // Hold the lock until the parent closes stdin (or kills this process).
            let mut rest = Vec::new();
            let _ = stdin.read_to_end(&mut rest);
            drop(coordinator);
            common::report("released");
        }
        "contender" => {
            let deadline = Instant::now() + Duration::from_secs(30);
            let coordinator = loop {
                match store.coordinator(&id, LockWait::Try) {
                    Ok(c) => break c,
                    Err(Error::LockHeld {
                        holder: Some(h), ..
                    }) => common::report(format!("held {} {} {}", h.pid, h.host, h.generation)),
                    Err(e) => panic!("unexpected error while contending: {e}"),
                }
                assert!(Instant::now() < deadline, "never got the lock");
                std::thread::sleep(Duration::from_millis(5));
            };
            common::report(format!(
                "acquired {} {}",
                coordinator.generation(),
                std::process::id()
            ));

            let round = coordinator.global_round().unwrap() + 1;
            let data = common::content_for_round(0, round);
            coordinator
                .commit_global_checkpoint(round, &mut &data[..])
                .unwrap();
            common::report(format!("committed {round}"));
        }
        other => panic!("unknown child role {other}"),
    }
}

#[test]
fn try_lock_in_the_same_process_fails_naming_the_holder_and_the_lock_file() {
    let tree = Tree::new();
    let first = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();

    let err = tree.store.coordinator(&tree.id, LockWait::Try).unwrap_err();

    let lock_path = tree.init_dir().join(".fedota-coordinator.lock");
    match &err {
        Error::LockHeld {
            path,
            holder: Some(h),
            ..
        } => {
            assert_eq!(path, &lock_path);
            assert_eq!(**h, *first.holder());
            assert_eq!(h.pid, std::process::id());
        }
        other => panic!("expected LockHeld, got {other:?}"),
    }
    let msg = err.to_string();
    for part in [
        format!("pid {}", std::process::id()),
        first.holder().host.clone(),
        first.holder().since.clone(),
        format!("generation {}", first.generation()),
    ] {
        assert!(msg.contains(&part), "{msg:?} lacks {part:?}");
    }
    common::assert_names_path_and_op(&err, &lock_path, &["take the coordinator lock"]);
}

#[test]
fn a_timed_wait_gives_up_with_lock_timeout_naming_the_holder() {
    let tree = Tree::new();
    let first = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    let limit = Duration::from_millis(300);

    let started = Instant::now();
    let err = tree
        .store
        .coordinator(&tree.id, LockWait::Timeout(limit))
        .unwrap_err();

    assert!(
        started.elapsed() >= limit,
        "gave up after {:?}",
        started.elapsed()
    );
    match &err {
        Error::LockTimeout {
            waited,
            holder: Some(h),
            ..
        } => {
            assert!(*waited >= limit);
            assert_eq!(h.generation, first.generation());
        }
        other => panic!("expected LockTimeout, got {other:?}"),
    }
}

#[test]
fn a_timed_wait_gets_the_lock_once_the_holder_lets_go() {
    let tree = Tree::new();
    let first = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    let first_gen = first.generation();

    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        drop(first);
    });
    let second = tree
        .store
        .coordinator(&tree.id, LockWait::Timeout(Duration::from_secs(10)))
        .unwrap();
    releaser.join().unwrap();

    assert_eq!(second.generation(), first_gen + 1);
}

#[test]
fn every_acquisition_raises_the_generation_and_commits_carry_it() {
    let tree = Tree::new();
    let mut last = 0;

    for round in 1..=3 {
        let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
        assert!(coordinator.generation() > last);
        last = coordinator.generation();

        let committed = coordinator
            .commit_global_checkpoint(round, &mut &b"x"[..])
            .unwrap();
        assert_eq!(committed.generation, Some(last));
    }

    // The holder record on disk says the same, as JSON.
    let holder: serde_json::Value = serde_json::from_slice(
        &fs::read(tree.init_dir().join(".fedota-coordinator.holder")).unwrap(),
    )
    .unwrap();
    assert_eq!(holder["generation"], last);
    assert_eq!(holder["pid"], std::process::id());
}

#[test]
fn the_generation_stays_above_the_last_commit_even_without_a_holder_record() {
    let tree = Tree::new();
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    coordinator
        .commit_global_checkpoint(1, &mut &b"x"[..])
        .unwrap();
    let committed_gen = coordinator.generation();
    drop(coordinator);

    // Losing the holder record must not let a generation be handed out twice.
    fs::remove_file(tree.init_dir().join(".fedota-coordinator.holder")).unwrap();
    let next = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();

    assert!(
        next.generation() > committed_gen,
        "{} after {committed_gen}",
        next.generation()
    );
    next.commit_global_checkpoint(2, &mut &b"y"[..]).unwrap();
}

#[test]
fn the_lock_is_free_again_once_the_coordinator_is_dropped() {
    let tree = Tree::new();
    let problem = tree.store.problem(&tree.id).unwrap();

    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
    assert!(matches!(
        problem.lock_status().unwrap(),
        LockStatus::Held(Some(_))
    ));
    drop(coordinator);

    assert_eq!(problem.lock_status().unwrap(), LockStatus::Free);
    tree.store.coordinator(&tree.id, LockWait::Try).unwrap();
}

#[test]
fn setting_a_problem_up_again_is_refused_while_a_coordinator_runs() {
    let tree = Tree::new();
    let coordinator = tree.store.coordinator(&tree.id, LockWait::Try).unwrap();

    let err = tree
        .store
        .create_problem(
            &tree.id,
            &mut &b"new model"[..],
            &mut &b"new global"[..],
            fedota_store::CreateOptions::force(),
        )
        .unwrap_err();

    assert!(matches!(err, Error::LockHeld { .. }), "{err:?}");
    let model = coordinator.read_model(read_bytes).unwrap();
    assert_eq!(model.value, common::MODEL);
}
