//! The commit protocol as the kernel sees it: an `strace -f` of a child that makes
//! one commit of the global checkpoint and one of an aggregate, checked for the
//! documented order of creates, writes, fsyncs and renames.
//!
//! Skipped, saying why, when `strace` is missing or ptrace is not permitted.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use common::{Tree, selector_id};
use fedota_store::{LockWait, ProblemId, Store};

const TEST_NAME: &str = "a_commit_creates_writes_syncs_renames_and_syncs_the_directory_in_order";

#[test]
fn a_commit_creates_writes_syncs_renames_and_syncs_the_directory_in_order() {
    if common::child_role().is_some() {
        let store = Store::open(common::child_root()).unwrap();
        let id = ProblemId::new("p1").unwrap();
        let selector = store.selector(&id, &selector_id("s1")).unwrap();
        let coordinator = store.coordinator(&id, LockWait::Try).unwrap();
        coordinator
            .commit_global_checkpoint(1, &mut &b"global checkpoint of round 1"[..])
            .unwrap();
        selector
            .commit_aggregate(1, 600, &mut &b"aggregate of round 1"[..])
            .unwrap();
        return;
    }

    let tree = Tree::new();
    // The selector's directory exists before the trace, so only commits are traced.
    tree.store.selector(&tree.id, &selector_id("s1")).unwrap();
    let trace = tree.root().join("strace.out");

    let exe = std::env::current_exe().unwrap();
    let output = Command::new("strace")
        .args(["-f", "-y", "-qq", "-s", "64", "-o"])
        .arg(&trace)
        .args([
            "-e",
            "trace=openat,write,fsync,fdatasync,rename,renameat,renameat2,close",
        ])
        .arg(exe)
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(common::CHILD_ROLE_ENV, "strace")
        .env(common::CHILD_ROOT_ENV, tree.root())
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) => {
            eprintln!("skipped {TEST_NAME}: cannot run strace: {e}");
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() && stderr.contains("ptrace") {
        eprintln!(
            "skipped {TEST_NAME}: ptrace is not permitted here: {}",
            stderr.trim()
        );
        return;
    }
    assert!(output.status.success(), "the traced child failed: {stderr}");

    let events = parse(&std::fs::read_to_string(&trace).unwrap());
    let init = tree.init_dir();
    let sel = tree.selector_dir("s1");

    // The global checkpoint: one data file, then its record.
    let after_data = check_publish(&events, 0, &init, "fl_checkpoint", "fl_checkpoint");
    let after_record = check_publish(
        &events,
        after_data,
        &init,
        ".fedota-commit.fl_checkpoint",
        ".fedota-commit.fl_checkpoint",
    );

    // No record is published before its data: a verifying reader trusts the record.
    let record_renamed = |record: &Path| {
        find(&events, 0, |e| {
            e.name.starts_with("rename") && e.path_is(1, record)
        })
    };
    assert!(record_renamed(&init.join(".fedota-commit.fl_checkpoint")) > after_data);

    // The aggregate: data and weight both staged and synced before either rename,
    // one directory sync after both, then the record.
    let data_tmp = staged(&events, after_record, &sel, "fl_agg_checkpoint");
    let weight_tmp = staged(&events, after_record, &sel, "fl_agg_checkpoint_weight");
    let rename_data = find(&events, after_record, |e| {
        e.is_rename(&data_tmp.path, &sel.join("fl_agg_checkpoint"))
    });
    let rename_weight = find(&events, after_record, |e| {
        e.is_rename(&weight_tmp.path, &sel.join("fl_agg_checkpoint_weight"))
    });
    assert!(data_tmp.synced < rename_data && weight_tmp.synced < rename_data);
    assert!(
        rename_data < rename_weight,
        "data is published before its weight"
    );
    assert!(
        weight_tmp
            .written
            .iter()
            .any(|e| events[*e].text.contains("\"600\", 3")),
        "the weight file gets exactly the bytes 600"
    );
    let dir_sync = find(&events, rename_weight, |e| e.is_fsync(&sel));
    assert!(record_renamed(&sel.join(".fedota-commit.fl_agg_checkpoint")) > dir_sync);
    check_publish(
        &events,
        dir_sync,
        &sel,
        ".fedota-commit.fl_agg_checkpoint",
        ".fedota-commit.fl_agg_checkpoint",
    );
}

/// One traced system call.
#[derive(Debug)]
struct Event {
    name: String,
    /// The quoted paths among the arguments, or the path of the descriptor.
    paths: Vec<String>,
    text: String,
    ok: bool,
}

impl Event {
    fn path_is(&self, i: usize, path: &Path) -> bool {
        self.paths.get(i).map(String::as_str) == path.to_str()
    }

    fn is_rename(&self, from: &Path, to: &Path) -> bool {
        self.name.starts_with("rename") && self.path_is(0, from) && self.path_is(1, to)
    }

    fn is_fsync(&self, path: &Path) -> bool {
        matches!(self.name.as_str(), "fsync" | "fdatasync") && self.path_is(0, path)
    }
}

/// Where a temporary file was created, written and synced.
#[derive(Debug)]
struct Staged {
    path: std::path::PathBuf,
    written: Vec<usize>,
    synced: usize,
}

/// Finds the O_EXCL create of a temporary file for `name` in `dir` after `from`, its
/// writes, its fsync and its close, in that order.
fn staged(events: &[Event], from: usize, dir: &Path, name: &str) -> Staged {
    let prefix = format!("{}/.fedota-tmp.{name}.", dir.display());
    let open = find(events, from, |e| {
        e.name == "openat" && e.paths.first().is_some_and(|p| p.starts_with(&prefix))
    });
    let path = std::path::PathBuf::from(&events[open].paths[0]);
    assert!(
        events[open].text.contains("O_CREAT|O_EXCL"),
        "created without O_EXCL: {}",
        events[open].text
    );

    let written: Vec<usize> = (open..events.len())
        .filter(|i| events[*i].name == "write" && events[*i].path_is(0, &path))
        .collect();
    assert!(!written.is_empty(), "nothing written to {}", path.display());
    let synced = find(events, open, |e| e.is_fsync(&path));
    assert!(
        written.iter().all(|w| *w < synced),
        "a write after the fsync of {}",
        path.display()
    );
    let closed = find(events, synced, |e| e.name == "close" && e.path_is(0, &path));
    assert!(closed > synced);

    Staged {
        path,
        written,
        synced,
    }
}

/// Checks the full sequence for one file: O_EXCL create, write, fsync, close, rename
/// over `target`, fsync of the directory; and that `target` itself is never opened
/// meanwhile. Returns the index of the directory fsync.
fn check_publish(
    events: &[Event],
    from: usize,
    dir: &Path,
    temp_name: &str,
    target: &str,
) -> usize {
    let temp = staged(events, from, dir, temp_name);
    let target = dir.join(target);

    let renamed = find(events, temp.synced, |e| e.is_rename(&temp.path, &target));
    let dir_synced = find(events, renamed, |e| e.is_fsync(dir));
    assert!(events[renamed].ok && events[dir_synced].ok);

    let opened_target =
        (from..renamed).find(|i| events[*i].name == "openat" && events[*i].path_is(0, &target));
    assert!(
        opened_target.is_none(),
        "the target is opened while it is being replaced: {}",
        events[opened_target.unwrap()].text
    );
    dir_synced
}

/// The index of the first event at or after `from` that matches, or a panic listing
/// what was traced.
fn find(events: &[Event], from: usize, pred: impl Fn(&Event) -> bool) -> usize {
    (from..events.len())
        .find(|i| pred(&events[*i]))
        .unwrap_or_else(|| {
            let tail: Vec<&str> = events[from..].iter().map(|e| e.text.as_str()).collect();
            panic!(
                "expected event not found after #{from}; traced after it:\n{}",
                tail.join("\n")
            )
        })
}

/// Parses `strace -f -y -o` output, joining calls split by other threads.
fn parse(trace: &str) -> Vec<Event> {
    let mut pending: HashMap<String, String> = HashMap::new();
    let mut events = Vec::new();

    for line in trace.lines() {
        let (pid, rest) = line.split_once(' ').unwrap_or(("", line));
        let rest = rest.trim_start();

        let text = if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
            pending.insert(pid.to_owned(), head.to_owned());
            continue;
        } else if rest.starts_with("<...") {
            let Some((_, tail)) = rest.split_once("resumed>") else {
                continue;
            };
            pending.remove(pid).unwrap_or_default() + tail
        } else {
            rest.to_owned()
        };
        let Some((name, args)) = text.split_once('(') else {
            continue;
        };

        let paths = if name == "openat" || name.starts_with("rename") {
            quoted(args)
        } else {
            descriptor_path(args).into_iter().collect()
        };
        let ok = text
            .rsplit_once(" = ")
            .is_some_and(|(_, r)| !r.starts_with('-'));
        events.push(Event {
            name: name.to_owned(),
            paths,
            text: text.clone(),
            ok,
        });
    }
    events
}

/// The quoted strings in `args`, in order.
fn quoted(args: &str) -> Vec<String> {
    args.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The path strace -y shows for the first argument, `3</the/path>`.
fn descriptor_path(args: &str) -> Option<String> {
    let start = args.find('<')?;
    let end = args[start..].find('>')?;
    Some(args[start + 1..start + end].to_owned())
}
